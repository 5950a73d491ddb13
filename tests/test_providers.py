"""What every call's provider services share, and what each gets of its own."""

from __future__ import annotations

from frontdesk.call.providers import Providers
from frontdesk.runtime.breaker import BreakerState, CircuitBreaker
from frontdesk.runtime.config import load_config
from tests.support import base_env


def providers(tmp_path, monkeypatch) -> Providers:
    for key, value in base_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    breaker = CircuitBreaker("inworld", failure_threshold=3, reset_seconds=5)
    return Providers(load_config(None).settings, tts_breaker=breaker)


def deepgram_http_client(stt):
    return stt._client._client_wrapper.httpx_client.httpx_client


def test_every_call_transcribes_through_one_deepgram_http_client(tmp_path, monkeypatch):
    built = providers(tmp_path, monkeypatch)
    first, second = built.stt("CA1"), built.stt("CA2")

    assert first is not second
    assert first._client is not second._client  # each call its own socket and settings
    assert deepgram_http_client(first) is deepgram_http_client(second)


def test_every_call_asks_the_llm_through_the_process_client(tmp_path, monkeypatch):
    built = providers(tmp_path, monkeypatch)

    assert built.llm("CA1")._client is built.llm("CA2")._client is built.completions
    assert built.completions.chat.completions._client is built.openai


def test_a_call_that_ends_before_inworld_spoke_gives_the_probe_back(tmp_path, monkeypatch):
    now = [100.0]
    built = providers(tmp_path, monkeypatch)
    breaker = built.tts_breaker = CircuitBreaker(
        "inworld", failure_threshold=3, reset_seconds=5, clock=lambda: now[0]
    )
    for _ in range(3):
        breaker.record_failure()
    now[0] += 5  # its reset time is over: the next call probes Inworld

    first = built.voice_lineup()
    assert first.inworld is not None and first.inworld.probe
    assert built.voice_lineup().inworld is None, "meanwhile other calls start on Deepgram"
    first.inworld.release()  # the caller hung up before the greeting was voiced

    second = built.voice_lineup()
    assert second.inworld is not None and second.inworld.probe, "the next call probes"
    second.inworld.succeeded()
    assert breaker.state is BreakerState.CLOSED

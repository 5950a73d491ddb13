"""Measure whether Frontdesk should end the caller's turn on Deepgram's ``UtteranceEnd``.

Every caller line the scenarios speak (8 kHz μ-law phone audio) is followed by silence
and played, in audio time, through both ways of noticing that the caller finished:

- ``vad``: what Frontdesk does today. Silero VAD with Frontdesk's ``stop_secs`` turns
  the caller quiet, and Frontdesk then sends ``Finalize`` (answered at once).
- ``utterance_end``: Deepgram's ``UtteranceEnd`` with ``utterance_end_ms`` (1000, the
  value Deepgram's docs use), as the loopback emulator sends it.

For each, per line: how long after the caller's last sound the turn ends (latency), and
whether it ended too early (inside the line) or never. Lines are played clean and over
a phone line's noise floor. The emulator finds words by energy, as Deepgram does not,
so ``utterance_end`` figures are the protocol's floor (``utterance_end_ms`` plus
detection), not Deepgram's accuracy on noisy audio.

Run: ``python -m bench.utterance_end [--json OUT]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

from emulators import audio
from emulators.calls import CallRegistry
from emulators.deepgram_listen import SPEECH_RMS, ListenSession
from emulators.scenario import Scenario, all_scenarios, load_scenario
from emulators.speech import mulaw
from emulators.speech.clips import load_clip

RATE = 8000
FRAME = RATE // 50
TAIL_SECONDS = 2.5
UTTERANCE_END_MS = 1000
VAD_STOP_SECONDS = 0.5
"""Frontdesk's default ``VAD_STOP_SECONDS``."""
NOISE_RMS = {"clean": 0.0, "line_noise": 120.0}
"""White noise under the line: none, and a phone line's floor (about -49 dBFS)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one way of ending the turn did on one line."""

    path: str
    condition: str
    line: str
    latency: float | None
    early: int


def caller_lines() -> list[str]:
    """Every distinct line the scenarios speak, in a stable order."""
    seen: dict[str, None] = {}
    for name in all_scenarios():
        for line in load_scenario(name).lines:
            seen.setdefault(line, None)
    return list(seen)


def speech_end(samples: np.ndarray) -> float:
    """Seconds into ``samples`` where the last 20 ms window with speech energy ends."""
    voiced = [
        i
        for i in range(0, len(samples) - FRAME + 1, FRAME)
        if audio.rms(samples[i : i + FRAME]) > SPEECH_RMS
    ]
    return (voiced[-1] + FRAME) / RATE if voiced else 0.0


def played(line: str, noise_rms: float, rng: np.random.Generator) -> np.ndarray:
    """The line's clip, then silence, over white noise of ``noise_rms``."""
    clip = mulaw.decode(load_clip(line)).astype(np.float64)
    samples = np.concatenate([clip, np.zeros(int(TAIL_SECONDS * RATE))])
    if noise_rms:
        samples += rng.normal(0.0, noise_rms, len(samples))
    return np.clip(samples, -32768, 32767).astype(np.int16)


async def vad_turn_end(samples: np.ndarray, end: float) -> tuple[float | None, int]:
    """(seconds after ``end`` Silero turns quiet, quiet turns inside the line)."""
    vad = SileroVADAnalyzer(params=VADParams(stop_secs=VAD_STOP_SECONDS))
    vad.set_sample_rate(RATE)
    state = VADState.QUIET
    early = 0
    for start in range(0, len(samples) - FRAME + 1, FRAME):
        now = (start + FRAME) / RATE
        new = await vad.analyze_audio(audio.pcm16_bytes(samples[start : start + FRAME]))
        if state is VADState.SPEAKING and new is VADState.QUIET:
            if now < end:
                early += 1
            else:
                return now - end, early
        if new in (VADState.SPEAKING, VADState.QUIET):
            state = new
    return None, early


def utterance_end(line: str, samples: np.ndarray, end: float) -> tuple[float | None, int]:
    """(seconds after ``end`` the emulator sends ``UtteranceEnd``, ones inside the line)."""
    scenario = Scenario.model_validate(
        {"name": "bench", "description": "one line", "caller": [{"say": line}]}
    )
    session = ListenSession(
        script=CallRegistry().register("CAbench", scenario),
        sample_rate=RATE,
        clock=time.monotonic,
        utterance_end_ms=UTTERANCE_END_MS,
    )
    early = 0
    for start in range(0, len(samples) - FRAME + 1, FRAME):
        out = session.feed(audio.pcm16_bytes(samples[start : start + FRAME]))
        if any(o.message["type"] == "UtteranceEnd" for o in out):
            now = session.audio_seconds
            if now < end:
                early += 1
            else:
                return now - end, early
    return None, early


async def measure() -> list[Outcome]:
    """Every line, in every condition, through both paths."""
    rng = np.random.default_rng(7)
    outcomes: list[Outcome] = []
    for line in caller_lines():
        end = speech_end(mulaw.decode(load_clip(line)))
        for condition, noise in NOISE_RMS.items():
            samples = played(line, noise, rng)
            latency, early = await vad_turn_end(samples, end)
            outcomes.append(Outcome("vad", condition, line, latency, early))
            latency, early = utterance_end(line, samples, end)
            outcomes.append(Outcome("utterance_end", condition, line, latency, early))
    return outcomes


def summary(outcomes: list[Outcome]) -> list[dict[str, object]]:
    """Per path and condition: median and worst latency (ms), early and missed counts."""
    rows: list[dict[str, object]] = []
    for path in ("vad", "utterance_end"):
        for condition in NOISE_RMS:
            mine = [o for o in outcomes if o.path == path and o.condition == condition]
            latencies = sorted(o.latency for o in mine if o.latency is not None)
            rows.append(
                {
                    "path": path,
                    "condition": condition,
                    "lines": len(mine),
                    "median_ms": round(statistics.median(latencies) * 1000) if latencies else None,
                    "worst_ms": round(latencies[-1] * 1000) if latencies else None,
                    "ended_inside_a_line": sum(o.early for o in mine),
                    "never_ended": sum(o.latency is None for o in mine),
                }
            )
    return rows


def main() -> None:
    """Measure, print the summary, optionally write every outcome as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    outcomes = asyncio.run(measure())
    rows = summary(outcomes)
    for row in rows:
        print(
            f"{row['path']:<14} {row['condition']:<11} lines={row['lines']:<3} "
            f"median={row['median_ms']} ms worst={row['worst_ms']} ms "
            f"inside-a-line={row['ended_inside_a_line']} never={row['never_ended']}"
        )
    if args.json is not None:
        data = {"summary": rows, "outcomes": [asdict(o) for o in outcomes]}
        args.json.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()

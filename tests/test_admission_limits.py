"""Stream admission and media limits as pure rules, on a clock the test turns."""

from __future__ import annotations

import pytest

from frontdesk.telephony.admission import TOKEN_PARAMETER, Admission, CallState, Refusal
from frontdesk.telephony.limits import MediaLimit, MediaLimits, frame_bytes

ACCOUNT = "AC" + "a" * 32
CALL_A = "CA" + "a" * 32
CALL_B = "CA" + "b" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def admission(clock: Clock, **limits: float) -> Admission:
    return Admission(key=lambda: b"auth-token", clock=clock, **limits)


PARAMETERS = {"from": "+14155550100", "to": "+14155550199"}


def tokened(table: Admission, call_sid: str, **extra: str) -> dict[str, str]:
    """The custom parameters a stream of ``call_sid`` carries back, token included."""
    parameters = {**PARAMETERS, **extra}
    return {**parameters, TOKEN_PARAMETER: table.reserve(call_sid, ACCOUNT, parameters)}


def test_a_token_admits_one_stream_of_its_own_call_once():
    clock = Clock()
    table = admission(clock)
    params_a = tokened(table, CALL_A)
    tokened(table, CALL_B)

    assert table.reserved == 2
    assert table.admit(CALL_B, ACCOUNT, params_a) is Refusal.BAD_TOKEN
    assert table.admit(CALL_A, ACCOUNT, PARAMETERS) is Refusal.NO_TOKEN
    assert table.admit(CALL_A, "AC" + "b" * 32, params_a) is Refusal.BAD_TOKEN
    assert table.admit(CALL_A, ACCOUNT, params_a) is None
    assert table.admit(CALL_A, ACCOUNT, params_a) is Refusal.TOKEN_REUSED
    assert (table.state(CALL_A), table.state(CALL_B)) == (CallState.ADMITTED, CallState.RESERVED)
    assert table.reserved == 1


def test_any_process_with_the_key_admits_a_stream_announced_by_another():
    clock = Clock()
    answered_here = admission(clock)
    stream_lands_here = admission(clock)
    parameters = tokened(answered_here, CALL_A, resume="handoff_no-answer")

    assert stream_lands_here.state(CALL_A) is CallState.UNKNOWN
    assert stream_lands_here.admit(CALL_A, ACCOUNT, parameters) is None
    assert stream_lands_here.admit(CALL_A, ACCOUNT, parameters) is Refusal.TOKEN_REUSED


def test_every_custom_parameter_is_covered_by_the_token():
    clock = Clock()
    table = admission(clock)
    genuine = tokened(table, CALL_A, business="bayside", resume="handoff_busy")
    tampered = [
        {**genuine, "from": "+19005550100"},
        {**genuine, "business": "rival"},
        {**genuine, "resume": ""},
        {**genuine, "address": "1 Injected Way"},
        {k: v for k, v in genuine.items() if k != "business"},
    ]

    assert [table.admit(CALL_A, ACCOUNT, p) for p in tampered] == [Refusal.BAD_TOKEN] * 5
    assert table.admit(CALL_A, ACCOUNT, genuine) is None


def test_parameters_a_stream_would_cut_are_refused_when_issuing():
    table = admission(Clock())
    with pytest.raises(ValueError, match="exceed"):
        table.reserve(CALL_A, ACCOUNT, {"problem": "x" * 257})
    with pytest.raises(ValueError, match="exceed"):
        table.reserve(CALL_A, ACCOUNT, {f"p{i}": "v" for i in range(32)})


def test_tokens_expire_and_reservations_lapse():
    clock = Clock()
    table = admission(clock, reservation_seconds=15, token_seconds=60)
    parameters = tokened(table, CALL_A)
    clock.now += 16
    assert table.reserved == 0, "a reservation is only a capacity hint"
    assert table.admit(CALL_A, ACCOUNT, parameters) is None

    short = admission(clock, reservation_seconds=600, token_seconds=30)
    parameters = tokened(short, CALL_B)
    clock.now += 31
    assert short.admit(CALL_B, ACCOUNT, parameters) is Refusal.EXPIRED_TOKEN


def test_another_key_forges_nothing():
    clock = Clock()
    table = admission(clock)
    forged = tokened(Admission(key=lambda: b"guess", clock=clock), CALL_A)

    assert table.admit(CALL_A, ACCOUNT, forged) is Refusal.BAD_TOKEN
    assert table.admit(CALL_A, ACCOUNT, {**PARAMETERS, TOKEN_PARAMETER: "x"}) is Refusal.BAD_TOKEN


def test_media_is_held_to_the_size_and_pace_twilio_sends():
    assert frame_bytes("audio/x-mulaw", 8000) == 160
    assert frame_bytes("audio/x-l16", 16000) == 640
    assert frame_bytes("audio/opus", 8000) is None

    real_time = MediaLimits(frame=160)
    assert all(real_time.admit(160, i * 0.02) is None for i in range(1000))  # 20 s
    assert MediaLimits(frame=160).admit(321, 0.0) is MediaLimit.PAYLOAD_SIZE

    flood = MediaLimits(frame=160)
    verdicts = [flood.admit(160, i * 0.005) for i in range(400)]  # 200 a second
    assert MediaLimit.RATE in verdicts
    tiny = MediaLimits(frame=160)
    assert MediaLimit.RATE in [tiny.admit(1, i * 0.001) for i in range(400)]

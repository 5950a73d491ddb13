"""Stream admission and media limits as pure rules, on a clock the test turns."""

from __future__ import annotations

from frontdesk.telephony.admission import Admission, CallState, Refusal
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


def test_a_token_admits_one_stream_of_its_own_reserved_call():
    clock = Clock()
    table = admission(clock)
    token_a = table.reserve(CALL_A, ACCOUNT)
    table.reserve(CALL_B, ACCOUNT)

    assert table.reserved == 2
    assert table.admit(CALL_B, ACCOUNT, token_a) is Refusal.BAD_TOKEN
    assert table.admit(CALL_A, ACCOUNT, None) is Refusal.NO_TOKEN
    assert table.admit(CALL_A, "AC" + "b" * 32, token_a) is Refusal.ACCOUNT
    assert table.admit(CALL_A, ACCOUNT, token_a) is None
    assert table.admit(CALL_A, ACCOUNT, token_a) is Refusal.TOKEN_REUSED
    assert (table.state(CALL_A), table.state(CALL_B)) == (CallState.ADMITTED, CallState.RESERVED)
    assert table.reserved == 1


def test_tokens_expire_and_reservations_lapse():
    clock = Clock()
    table = admission(clock, reservation_seconds=60, token_seconds=120)
    token = table.reserve(CALL_A, ACCOUNT)
    clock.now += 61
    assert table.reserved == 0
    assert table.admit(CALL_A, ACCOUNT, token) is Refusal.NOT_RESERVED

    short = admission(clock, reservation_seconds=600, token_seconds=30)
    token = short.reserve(CALL_B, ACCOUNT)
    clock.now += 31
    assert short.admit(CALL_B, ACCOUNT, token) is Refusal.EXPIRED_TOKEN


def test_another_key_forges_nothing():
    clock = Clock()
    table = admission(clock)
    table.reserve(CALL_A, ACCOUNT)
    forged = Admission(key=lambda: b"guess", clock=clock).reserve(CALL_A, ACCOUNT)

    assert table.admit(CALL_A, ACCOUNT, forged) is Refusal.BAD_TOKEN
    assert table.admit(CALL_A, ACCOUNT, "not-a-token") is Refusal.BAD_TOKEN


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

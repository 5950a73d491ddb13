"""CPU to drain one call's queued caller audio through the shared VAD.

Run from the repository root::

    PYTHONPATH=. .venv/bin/python bench/vad_backlog.py [--seconds 200,800]

For each length: the scenario clips, with pauses between them (so the model is reset
every couple of seconds, as on a real call), are queued for one call in 60 ms frames
while the batcher cannot run, then the batcher drains them. Printed per length: the
windows queued, kept and scored, the windows dropped, and the process CPU seconds
(every thread) the drain took — with the production bound on a call's backlog, and
without one (each window still scored exactly once).
"""

from __future__ import annotations

import argparse
import audioop
import time

import anyio

from actors.vad_batcher import MAX_BACKLOG_WINDOWS, VADBatcher
from emulators.speech import clips
from frontdesk.call.vad import SAMPLE_RATE, BatchedSileroVAD

FRAME_ULAW_BYTES = 480
PAUSE_SECONDS = 1.5
POLL_SECONDS = 0.01
DRAIN_TIMEOUT_SECONDS = 600.0
UNBOUNDED = 10**9  # to show the work of every window scored once


def caller_pcm(seconds: float) -> bytes:
    """``seconds`` of the clips in turn, between pauses, as 16-bit PCM."""
    line = bytearray()
    for path in clips.committed_clips().values():
        line += path.read_bytes() + b"\xff" * round(PAUSE_SECONDS * SAMPLE_RATE)
    wanted = round(seconds * SAMPLE_RATE)
    ulaw = (bytes(line) * (wanted // len(line) + 1))[:wanted]
    return audioop.ulaw2lin(ulaw, 2)


async def drain(seconds: float, bound: int) -> tuple[int, int, int, float]:
    """Queue ``seconds`` of audio, drain it; (queued, scored, dropped, CPU seconds)."""
    pcm = caller_pcm(seconds)
    frame = FRAME_ULAW_BYTES * 2
    batcher = VADBatcher(max_backlog_windows=bound)
    vad = BatchedSileroVAD(batcher=batcher)
    vad.set_sample_rate(SAMPLE_RATE)
    async with anyio.create_task_group() as tg:
        await tg.start(batcher.run)
        for i in range(0, len(pcm), frame):
            await vad.analyze_audio(pcm[i : i + frame])
        queued = vad.queued
        started = time.process_time()
        with anyio.fail_after(DRAIN_TIMEOUT_SECONDS):
            for _ in iter(lambda: vad.queued, 0):
                await anyio.sleep(POLL_SECONDS)
        cpu = time.process_time() - started
        tg.cancel_scope.cancel()
    return queued, batcher.windows, batcher.dropped, cpu


def main() -> None:
    """Print the drain figures for each length asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", default="200,800", help="queued audio, comma-separated")
    args = parser.parse_args()
    print(f"{'queue':>10} {'audio s':>8} {'queued':>7} {'scored':>7} {'dropped':>8} {'CPU s':>7}")
    for name, bound in (("bounded", MAX_BACKLOG_WINDOWS), ("unbounded", UNBOUNDED)):
        for seconds in (float(s) for s in args.seconds.split(",")):
            queued, scored, dropped, cpu = anyio.run(drain, seconds, bound)
            print(f"{name:>10} {seconds:8.0f} {queued:7d} {scored:7d} {dropped:8d} {cpu:7.2f}")


if __name__ == "__main__":
    main()

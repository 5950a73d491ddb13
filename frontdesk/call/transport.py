"""A Pipecat transport for a Twilio media stream carried by our aiohttp websocket.

Pipecat has no aiohttp websocket transport, and its FastAPI one expects to own the
socket and parse Twilio's JSON itself. Here the web handler owns the socket: it parses
and validates every message first (so a malformed one is logged and skipped before
Pipecat sees anything) and hands the audio straight to :meth:`TwilioInput.feed_audio`.
The output side serialises with Pipecat's ``TwilioFrameSerializer``, paces audio in
real time (so "written" means "played" for Pipecat's bot-speaking logic), sends
``clear`` on interruption, and sends Twilio ``mark`` messages after each utterance and
before the call ends, so a goodbye is known to have played before the hang-up.
"""

from __future__ import annotations

import asyncio
import audioop
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    BotSpeakingFrame,
    CancelFrame,
    ControlFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from frontdesk.telephony.protocol import clear_message, mark_message

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
PLAYOUT_WAIT_SECONDS = 3.0
# A caller hears a chunk as late when it arrives this long after the one before it.
LATE_GAP_SECONDS = 0.06
# Audio resuming after this long is a new utterance, not a late chunk (as callers hear it).
UTTERANCE_GAP_SECONDS = 1.0
# Twilio sends 20 ms per message. Three go into one pipeline frame: every per-frame
# cost downstream (queue hops, the STT websocket message, the VAD call) drops
# threefold, for at most 40 ms of added delay.
MESSAGES_PER_FRAME = 3

Send = Callable[[str], Awaitable[bool]]
"""Sends one text message to Twilio; returns False once the socket is gone."""


@dataclass
class PlayoutMarkFrame(ControlFrame):
    """Asks the output to send a Twilio ``mark`` once all audio before it is written."""

    mark: str = ""  # not ``name``: every Pipecat frame has its own


class UtteranceMarker(FrameProcessor):
    """Follows each finished utterance with a :class:`PlayoutMarkFrame`.

    ``on_mark`` is told each mark's name as it follows its utterance.
    """

    def __init__(self, *, on_mark: Callable[[str], None] | None = None) -> None:
        super().__init__(enable_direct_mode=True)
        self._count = 0
        self._on_mark = on_mark

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass everything on; after a ``TTSStoppedFrame``, add a mark."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, TTSStoppedFrame) and direction is FrameDirection.DOWNSTREAM:
            self._count += 1
            mark = f"utterance-{self._count}"
            if self._on_mark is not None:
                self._on_mark(mark)
            await self.push_frame(PlayoutMarkFrame(mark=mark))


class TwilioInput(BaseInputTransport):
    """The caller's audio, fed by the web handler."""

    def __init__(self, params: TransportParams, **kwargs) -> None:
        super().__init__(params, **kwargs)
        self._live = False
        self._pending: list[bytes] = []

    async def start(self, frame: StartFrame) -> None:
        """Start accepting audio once the pipeline has started."""
        await super().start(frame)
        await self.set_transport_ready(frame)
        self._live = True

    async def stop(self, frame: EndFrame) -> None:
        """Stop accepting audio."""
        self._live = False
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame) -> None:
        """Stop accepting audio."""
        self._live = False
        await super().cancel(frame)

    async def feed_audio(self, ulaw: bytes) -> None:
        """Take 20 ms of μ-law caller audio; every third message goes into the pipeline.

        Audio that arrives before the pipeline has started is dropped.
        """
        if not self._live:
            return
        self._pending.append(ulaw)
        if len(self._pending) < MESSAGES_PER_FRAME:
            return
        pcm = audioop.ulaw2lin(b"".join(self._pending), 2)
        self._pending.clear()
        # Straight to the next processor: the base class's audio task would add a
        # queue hop and a timer per frame for a filter we do not use.
        await self.push_frame(
            InputAudioRawFrame(audio=pcm, sample_rate=SAMPLE_RATE, num_channels=1)
        )

    async def feed_dtmf(self, digit: str) -> None:
        """Push a key press into the pipeline."""
        if self._live:
            await self.push_frame(InputDTMFFrame(KeypadEntry(digit)))


class TwilioOutput(BaseOutputTransport):
    """Bot audio to Twilio, paced in real time, with marks and ``clear``."""

    def __init__(
        self,
        params: TransportParams,
        *,
        send: Send,
        stream_sid: str,
        on_chunk: Callable[[bool], None] | None = None,
        on_played_out: Callable[[], Awaitable[object]] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(params, **kwargs)
        self._send = send
        self._on_chunk = on_chunk
        self._on_played_out = on_played_out
        self._stream_sid = stream_sid
        self._serializer = TwilioFrameSerializer(
            stream_sid, params=TwilioFrameSerializer.InputParams(auto_hang_up=False)
        )
        self._chunk_seconds = 0.0
        self._next_send_time = 0.0
        self._last_sent_at = 0.0
        self._marks: dict[str, asyncio.Future[bool]] = {}
        self._mark_count = 0

    # Pipecat's FrameProcessor narrows BaseObject.setup's parameter the same way.
    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        """Work out the real-time duration of one audio chunk."""
        await super().setup(setup)
        await self._serializer.setup(setup)
        self._chunk_seconds = self.audio_chunk_size / (self.sample_rate * 2)

    async def start(self, frame: StartFrame) -> None:
        """Become ready to write audio."""
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame) -> None:
        """Write out queued audio, wait (bounded) until Twilio has played it, say so.

        The last words have been heard at that moment, so ``on_played_out`` can hang up
        before the rest of the pipeline (provider sockets, context) has wound down.
        """
        await super().stop(frame)
        await self.played_out(PLAYOUT_WAIT_SECONDS)
        if self._on_played_out is not None:
            await self._on_played_out()

    async def broadcast_frame(self, frame_cls: type[Frame], **kwargs) -> None:
        """Broadcast as usual, except Pipecat's five-a-second ``BotSpeakingFrame``.

        It feeds only Pipecat's pipeline-idle detection, which calls do not use (a call
        ends on its own timers); sent, it would visit every processor in both directions.
        """
        if frame_cls is not BotSpeakingFrame:
            await super().broadcast_frame(frame_cls, **kwargs)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """On interruption, tell Twilio to drop buffered audio."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            await self._send(clear_message(self._stream_sid))
            self._next_send_time = self._last_sent_at = 0.0
            for pending in self._marks.values():
                if not pending.done():
                    pending.set_result(False)
            self._marks.clear()

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        """Send one chunk and sleep until it would have played.

        Each chunk goes out as the one before it starts to play (one chunk ahead). Sent
        more than ``LATE_GAP_SECONDS`` after the one before it, mid-utterance, it counts
        as late: the caller hears a gap.
        """
        payload = await self._serializer.serialize(frame)
        if payload and not await self._send(str(payload)):
            return False
        now = time.monotonic()
        delay = self._next_send_time - now
        if self._on_chunk is not None:
            gap = now - self._last_sent_at
            mid_utterance = self._last_sent_at > 0 and gap < UTTERANCE_GAP_SECONDS
            self._on_chunk(mid_utterance and gap > LATE_GAP_SECONDS)
        self._last_sent_at = now
        if delay > 0:
            await asyncio.sleep(delay)
            self._next_send_time += self._chunk_seconds
        else:
            self._next_send_time = now + self._chunk_seconds
        return True

    async def write_transport_frame(self, frame: Frame) -> None:
        """Send a mark once the audio before it has been written."""
        if isinstance(frame, PlayoutMarkFrame):
            await self._send_mark(frame.mark)

    def on_mark(self, name: str) -> None:
        """Twilio has played everything up to the mark ``name``."""
        pending = self._marks.pop(name, None)
        if pending is not None and not pending.done():
            pending.set_result(True)

    async def played_out(self, timeout: float) -> bool:
        """Whether Twilio confirms, within ``timeout``, that all audio sent so far played."""
        self._mark_count += 1
        pending = await self._send_mark(f"playout-{self._mark_count}")
        if pending is None:
            return False
        try:
            return await asyncio.wait_for(pending, timeout)
        except TimeoutError:
            return False

    async def _send_mark(self, name: str) -> asyncio.Future[bool] | None:
        pending: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._marks[name] = pending
        if not await self._send(mark_message(self._stream_sid, name)):
            self._marks.pop(name, None)
            return None
        return pending


class TwilioTransport(BaseTransport):
    """Input and output of one Twilio media stream."""

    def __init__(
        self,
        *,
        send: Send,
        stream_sid: str,
        call_sid: str,
        on_chunk: Callable[[bool], None] | None = None,
        on_played_out: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        super().__init__(name=f"twilio-{call_sid}")
        params = TransportParams(
            audio_in_enabled=True,
            audio_in_sample_rate=SAMPLE_RATE,
            audio_out_enabled=True,
            audio_out_sample_rate=SAMPLE_RATE,
            audio_out_end_silence_secs=0,
            # 20 ms chunks, Twilio's own framing. Each goes out one chunk ahead, so the
            # event loop may wake up to 40 ms late (not 20, as with Pipecat's default of
            # 40 ms chunks) before the caller waits more than 60 ms for the next one.
            audio_out_10ms_chunks=2,
        )
        self._input = TwilioInput(params, name=f"in-{call_sid}")
        self._output = TwilioOutput(
            params,
            send=send,
            stream_sid=stream_sid,
            on_chunk=on_chunk,
            on_played_out=on_played_out,
            name=f"out-{call_sid}",
        )

    def input(self) -> TwilioInput:
        """The input processor."""
        return self._input

    def output(self) -> TwilioOutput:
        """The output processor."""
        return self._output

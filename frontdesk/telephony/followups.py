"""What Twilio reports about a call after its media stream ended: a hand-off's result, a recording.

A handed-off call's record is stored when its stream ends, with ``handoff.result`` still
``dialing``; a recorded call's record may be stored before Twilio's recording callback
arrives. Both are kept here (bounded, for a few hours) so that the dial's ``action``
callback or the late recording callback can send the dashboard the next *revision* of
the same record (same ``record_id``, ``revision`` + 1; see ``docs/dashboard-webhooks.md``).

A call whose record is about to be written may wait here a bounded time for its
recording, so that in the common case one record carries everything.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import anyio

from frontdesk.delivery.records import CallRecord, RecordingEntry
from frontdesk.telephony.callbacks import DialOutcome, RecordingReport

KEPT_CALLS = 5_000
KEPT_SECONDS = 4 * 3600.0


def recording_entry(report: RecordingReport) -> RecordingEntry:
    """The record's view of a completed recording."""
    assert report.url is not None
    return RecordingEntry(
        recording_sid=report.recording_sid,
        url=report.url,
        duration_seconds=report.duration_seconds,
        channels=report.channels,
    )


class FollowUps:
    """Records awaiting Twilio's later word, and calls waiting for their recording.

    Used from the event loop only.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Create an empty table."""
        self._clock = clock
        self._records: OrderedDict[str, tuple[float, CallRecord]] = OrderedDict()
        self._waiting: dict[str, anyio.Event] = {}
        self._recordings: dict[str, RecordingEntry] = {}
        self._started: set[str] = set()
        self._written: dict[str, anyio.Event] = {}

    def keep(self, record: CallRecord, *, recorded: bool) -> None:
        """Keep ``record`` if Twilio still has something to report about its call.

        ``recorded``: a recording of the call was started.
        """
        # The record is written: a recording arriving from now on revises it.
        self._waiting.pop(record.call_sid, None)
        written = self._written.pop(record.call_sid, None)
        if written is not None:
            written.set()
        if not _awaits(record, recorded=recorded):
            return
        self._prune()
        self._records[record.call_sid] = (self._clock() + KEPT_SECONDS, record)
        self._records.move_to_end(record.call_sid)
        while len(self._records) > KEPT_CALLS:
            sid, _ = self._records.popitem(last=False)
            self._started.discard(sid)

    def handing_off(self, call_sid: str) -> None:
        """``call_sid`` was redirected to a ``<Dial>``: its record is on its way here."""
        self._written.setdefault(call_sid, anyio.Event())

    async def written(self, call_sid: str, *, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for a handed-off call's record to be kept."""
        written = self._written.get(call_sid)
        if written is not None:
            with anyio.move_on_after(timeout):
                await written.wait()

    def dialing(self, call_sid: str) -> bool:
        """Whether ``call_sid`` was handed off and its dial's result is still unknown."""
        kept = self._records.get(call_sid)
        return (
            kept is not None
            and kept[1].handoff is not None
            and kept[1].handoff.result == ("dialing")
        )

    def dial_ended(self, outcome: DialOutcome) -> CallRecord | None:
        """The revised record saying how the dial ended; ``None`` for a call not dialing.

        Consumes the hand-off: a replayed action callback finds nothing.
        """
        if not self.dialing(outcome.call_sid):
            return None
        _, record = self._records[outcome.call_sid]
        assert record.handoff is not None
        status = "completed" if outcome.status == "answered" else outcome.status
        handoff = record.handoff.model_copy(
            update={
                "result": status,
                "talk_seconds": float(outcome.talk_seconds) if outcome.connected else None,
            }
        )
        revised = record.revised(handoff=handoff)
        self._replace(revised)
        return revised

    def expect_recording(self, call_sid: str) -> None:
        """A recording of ``call_sid`` was started: its callback may be waited for."""
        self._waiting.setdefault(call_sid, anyio.Event())
        self._started.add(call_sid)

    async def recording_for(self, call_sid: str, *, timeout: float) -> RecordingEntry | None:
        """The call's completed recording, waiting at most ``timeout`` seconds for it."""
        event = self._waiting.get(call_sid)
        if event is None:
            return None
        with anyio.move_on_after(timeout):
            await event.wait()
        self._waiting.pop(call_sid, None)
        entry = self._recordings.pop(call_sid, None)
        if entry is not None:
            self._started.discard(call_sid)
        return entry

    def recording_arrived(self, report: RecordingReport) -> tuple[bool, CallRecord | None]:
        """Take a completed recording: whether the call was known, and a revision to send.

        A call still waiting gets it in its record (no revision); a call whose record
        was sent without it gets a revision carrying it.
        """
        entry = recording_entry(report)
        event = self._waiting.get(report.call_sid)
        if event is not None:
            self._recordings[report.call_sid] = entry
            event.set()
            return True, None
        kept = self._records.get(report.call_sid)
        if kept is None:
            return False, None
        if kept[1].recording is not None:
            return True, None
        revised = kept[1].revised(recording=entry)
        self._replace(revised)
        return True, revised

    def _replace(self, record: CallRecord) -> None:
        expires, _ = self._records[record.call_sid]
        self._records[record.call_sid] = (expires, record)
        # A record kept for its recording waits for it even once the dial has ended.
        if not _awaits(record, recorded=self._recorded(record)):
            del self._records[record.call_sid]
            self._started.discard(record.call_sid)

    def _recorded(self, record: CallRecord) -> bool:
        return record.call_sid in self._started

    def _prune(self) -> None:
        now = self._clock()
        while self._records and next(iter(self._records.values()))[0] < now:
            sid, _ = self._records.popitem(last=False)
            self._started.discard(sid)


def _awaits(record: CallRecord, *, recorded: bool) -> bool:
    dialing = record.handoff is not None and record.handoff.result == "dialing"
    return dialing or (recorded and record.recording is None)

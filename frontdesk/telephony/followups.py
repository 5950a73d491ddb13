"""What Twilio reports about a call after its media stream ended: a hand-off's result, a recording.

A handed-off call's record is stored when its stream ends, with ``handoff.result`` still
``dialing``; a recorded call's record may be stored before Twilio's recording callback
arrives. Both are kept here (bounded, for a few hours) so that the dial's ``action``
callback or the late recording callback can send the dashboard the next *revision* of
the same record (same ``record_id``, ``revision`` + 1; see ``docs/dashboard-webhooks.md``).

A call whose record is about to be written may wait here a bounded time for its
recording, so that in the common case one record carries everything.

The table lives in a small SQLite file beside the outbox, shared by every worker of
the machine (``serve --workers N``): Twilio's callbacks reach whichever worker the
kernel picks, not the one that held the call, so each change is one transaction that
reads and revises the shared row — a replayed or concurrent callback on another worker
finds the hand-off already consumed. A worker waiting for something another worker
writes (the record of a handed-off call, a recording) looks again every
:data:`POLL_SECONDS`; within one worker an event wakes it at once. Every file access
runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio

from frontdesk.delivery.records import CallRecord, RecordingEntry
from frontdesk.telephony.callbacks import DialOutcome, RecordingReport

KEPT_CALLS = 5_000
KEPT_SECONDS = 4 * 3600.0
POLL_SECONDS = 0.2
BUSY_TIMEOUT_SECONDS = 15.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS followups (
    call_sid TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    handing_off INTEGER NOT NULL DEFAULT 0,
    recording_started INTEGER NOT NULL DEFAULT 0,
    recording TEXT,
    record TEXT
);
CREATE INDEX IF NOT EXISTS followups_expiry ON followups (expires_at);
"""

T = TypeVar("T")


def recording_entry(report: RecordingReport) -> RecordingEntry:
    """The record's view of a completed recording."""
    assert report.url is not None
    return RecordingEntry(
        recording_sid=report.recording_sid,
        url=report.url,
        duration_seconds=report.duration_seconds,
        channels=report.channels,
    )


def followups_path(outbox_path: Path) -> Path:
    """The shared table's file, beside the dashboard outbox."""
    return outbox_path.with_name(f"{outbox_path.stem}-followups.sqlite3")


@dataclass(slots=True)
class _Row:
    handing_off: bool
    recording_started: bool
    recording: RecordingEntry | None
    record: CallRecord | None


class FollowUps:
    """Records awaiting Twilio's later word, and calls waiting for their recording."""

    def __init__(self, path: Path | None = None, *, clock: Callable[[], float] = time.time) -> None:
        """Open the table at ``path`` (shared by the machine), or in memory without one."""
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            ":memory:" if path is None else path,
            check_same_thread=False,
            isolation_level=None,
            timeout=BUSY_TIMEOUT_SECONDS,
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # A worker's crash loses nothing at NORMAL in WAL mode.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._changed: dict[str, anyio.Event] = {}

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ the call

    async def handing_off(self, call_sid: str) -> None:
        """``call_sid`` was redirected to a ``<Dial>``: its record is on its way here."""
        await self._run(self._mark, call_sid, "handing_off")

    async def expect_recording(self, call_sid: str) -> None:
        """A recording of ``call_sid`` was started: its callback may be waited for."""
        await self._run(self._mark, call_sid, "recording_started")

    async def recording_for(self, call_sid: str, *, timeout: float) -> RecordingEntry | None:
        """The call's completed recording, waiting at most ``timeout`` seconds for it."""
        row = await self._run(self._get, call_sid)
        if row is None or not row.recording_started:
            return None
        with anyio.move_on_after(timeout):
            while row is not None and row.recording is None:
                await self._changed_or_poll(call_sid)
                row = await self._run(self._get, call_sid)
        return row.recording if row is not None else None

    async def keep(self, record: CallRecord, *, recorded: bool) -> CallRecord | None:
        """Keep ``record`` if Twilio still has something to report about its call.

        ``recorded``: a recording of the call was started. Returns a revision to send
        when the recording arrived (on any worker) after the record was built without it.
        """
        revised = await self._run(self._keep, record, recorded)
        self._notify(record.call_sid)
        return revised

    # ------------------------------------------------------------ the callbacks

    async def written(self, call_sid: str, *, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for a handed-off call's record to be kept."""
        with anyio.move_on_after(timeout):
            while True:
                row = await self._run(self._get, call_sid)
                if row is None or not row.handing_off or row.record is not None:
                    return
                await self._changed_or_poll(call_sid)

    async def dial_ended(self, outcome: DialOutcome) -> CallRecord | None:
        """The revised record saying how the dial ended; ``None`` for a call not dialing.

        Consumes the hand-off: a replayed action callback, on any worker, finds nothing.
        """
        return await self._run(self._dial_ended, outcome)

    async def recording_arrived(self, report: RecordingReport) -> tuple[bool, CallRecord | None]:
        """Take a completed recording: whether the call was known, and a revision to send.

        A call still waiting gets it in its record (no revision); a call whose record
        was sent without it gets a revision carrying it.
        """
        result = await self._run(self._recording_arrived, report)
        self._notify(report.call_sid)
        return result

    # ----------------------------------------------------------------- internals

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        return await anyio.to_thread.run_sync(lambda: self._transaction(work, *args))

    async def _changed_or_poll(self, call_sid: str) -> None:
        event = self._changed.setdefault(call_sid, anyio.Event())
        with anyio.move_on_after(POLL_SECONDS):
            await event.wait()
        if self._changed.get(call_sid) is event and event.is_set():
            del self._changed[call_sid]

    def _notify(self, call_sid: str) -> None:
        event = self._changed.pop(call_sid, None)
        if event is not None:
            event.set()

    def _transaction(self, work: Callable[..., T], *args: object) -> T:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = work(*args)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    def _get(self, call_sid: str) -> _Row | None:
        found = self._db.execute(
            "SELECT handing_off, recording_started, recording, record FROM followups "
            "WHERE call_sid = ? AND expires_at >= ?",
            (call_sid, self._clock()),
        ).fetchone()
        if found is None:
            return None
        return _Row(
            handing_off=bool(found[0]),
            recording_started=bool(found[1]),
            recording=RecordingEntry.model_validate_json(found[2]) if found[2] else None,
            record=CallRecord.model_validate_json(found[3]) if found[3] else None,
        )

    def _mark(self, call_sid: str, column: str) -> None:
        assert column in ("handing_off", "recording_started")
        self._db.execute(
            f"INSERT INTO followups (call_sid, expires_at, {column}) VALUES (?, ?, 1) "
            f"ON CONFLICT (call_sid) DO UPDATE SET {column} = 1, expires_at = excluded.expires_at",
            (call_sid, self._clock() + KEPT_SECONDS),
        )

    def _keep(self, record: CallRecord, recorded: bool) -> CallRecord | None:
        self._prune()
        row = self._get(record.call_sid)
        revised = None
        if row is not None and row.recording is not None and record.recording is None:
            # The recording came (to some worker) after this record was built.
            revised = record.revised(recording=row.recording)
        kept = revised or record
        if not _awaits(kept, recorded=recorded):
            self._db.execute("DELETE FROM followups WHERE call_sid = ?", (record.call_sid,))
            return revised
        self._db.execute(
            "INSERT INTO followups (call_sid, expires_at, recording_started, record) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (call_sid) DO UPDATE SET "
            "expires_at = excluded.expires_at, record = excluded.record, "
            "recording_started = excluded.recording_started",
            (record.call_sid, self._clock() + KEPT_SECONDS, int(recorded), kept.model_dump_json()),
        )
        return revised

    def _dial_ended(self, outcome: DialOutcome) -> CallRecord | None:
        row = self._get(outcome.call_sid)
        if row is None or row.record is None:
            return None
        record = row.record
        if record.handoff is None or record.handoff.result != "dialing":
            return None
        status = "completed" if outcome.status == "answered" else outcome.status
        handoff = record.handoff.model_copy(
            update={
                "result": status,
                "talk_seconds": float(outcome.talk_seconds) if outcome.connected else None,
            }
        )
        revised = record.revised(handoff=handoff)
        self._replace(revised, recorded=row.recording_started)
        return revised

    def _recording_arrived(self, report: RecordingReport) -> tuple[bool, CallRecord | None]:
        entry = recording_entry(report)
        row = self._get(report.call_sid)
        if row is None:
            return False, None
        if row.record is None:
            # The call is still running or waiting for it: it goes into the record.
            self._db.execute(
                "UPDATE followups SET recording = ? WHERE call_sid = ?",
                (entry.model_dump_json(), report.call_sid),
            )
            return True, None
        if row.record.recording is not None:
            return True, None
        revised = row.record.revised(recording=entry)
        self._replace(revised, recorded=row.recording_started)
        return True, revised

    def _replace(self, record: CallRecord, *, recorded: bool) -> None:
        # A record kept for its recording waits for it even once the dial has ended.
        if not _awaits(record, recorded=recorded):
            self._db.execute("DELETE FROM followups WHERE call_sid = ?", (record.call_sid,))
            return
        self._db.execute(
            "UPDATE followups SET record = ?, handing_off = 0 WHERE call_sid = ?",
            (record.model_dump_json(), record.call_sid),
        )

    def _prune(self) -> None:
        self._db.execute("DELETE FROM followups WHERE expires_at < ?", (self._clock(),))
        self._db.execute(
            "DELETE FROM followups WHERE call_sid IN (SELECT call_sid FROM followups "
            "ORDER BY expires_at DESC LIMIT -1 OFFSET ?)",
            (KEPT_CALLS,),
        )


def _awaits(record: CallRecord, *, recorded: bool) -> bool:
    dialing = record.handoff is not None and record.handoff.result == "dialing"
    return dialing or (recorded and record.recording is None)

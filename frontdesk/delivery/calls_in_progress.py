"""The machine's ledger of calls in progress, so a call whose process died is still recorded.

A call's record is built when the call ends, in the process that holds it. A process
killed during a call (``kill -9``, the out-of-memory killer) builds none. So each call
is written into a small SQLite ledger, shared by every worker of the machine, when it
starts, and removed once its records are in the outbox. Every process also writes a
heartbeat. :class:`LostCallSweeper`, running in every process, looks for calls whose
owner's heartbeat stopped more than :data:`STALE_SECONDS` ago — a dead worker, or this
process's own predecessor after a restart — and commits a record for each (outcome
``error``, what the call started with: numbers and start time) with a critical alert to
call the caller back; then it removes them from the ledger. Record ids are derived from
the call SID, so two workers sweeping the same call at once store one record, and the
dashboard keeps one copy.

Every method touches the file and blocks; callers use ``anyio.to_thread``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
from anyio.abc import TaskStatus

from frontdesk.conversation.state import Conversation
from frontdesk.delivery.call_log import CallLog
from frontdesk.delivery.records import AlertKind, Record, alert

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 10.0
"""An owner silent this long is dead: its calls are recorded as cut off."""
LOST_ERROR = "the process handling this call stopped (killed or crashed) during it"
_RECORD_NAMESPACE = uuid.UUID("0b6b1d3e-6f0e-4c1b-9a55-2f4d3c8e7a10")

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_sid TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    started_at REAL NOT NULL,
    business TEXT
);
CREATE TABLE IF NOT EXISTS owners (
    owner TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    heartbeat_at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class LostCall:
    """A call whose process died before recording it."""

    call_sid: str
    owner: str
    from_number: str
    to_number: str
    started_at: float
    business: str | None = None


class AlreadyInProgress(Exception):
    """Another process of the machine holds a call with this SID (a replayed stream)."""


def ledger_path(outbox_path: Path) -> Path:
    """The ledger's file, beside the dashboard outbox."""
    return outbox_path.with_name(f"{outbox_path.stem}-calls.sqlite3")


class CallsInProgress:
    """The ledger, as one process sees it (its own entries under :attr:`owner`)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        """Open (or create) the ledger at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=15.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # A process crash loses nothing in WAL mode at NORMAL; a power cut loses the
        # whole machine's calls anyway.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(calls)")}
        if "business" not in columns:  # a ledger from before businesses
            self._db.execute("ALTER TABLE calls ADD COLUMN business TEXT")

    def begin(
        self, call_sid: str, from_number: str, to_number: str, business: str | None = None
    ) -> None:
        """``call_sid`` started here.

        Raises:
            AlreadyInProgress: A live process of the machine holds that call already —
                a second stream for it is a replay, refused machine-wide. A row left by
                a dead process is taken over (its sweep will not record the call).
        """
        stale = self._clock() - STALE_SECONDS
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                holder = self._db.execute(
                    "SELECT owner FROM calls WHERE call_sid = ? AND owner != ? AND owner IN "
                    "(SELECT owner FROM owners WHERE heartbeat_at >= ?)",
                    (call_sid, self.owner, stale),
                ).fetchone()
                if holder is not None:
                    raise AlreadyInProgress(call_sid)
                self._db.execute(
                    "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?, ?)",
                    (call_sid, self.owner, from_number, to_number, self._clock(), business),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def end(self, call_sid: str) -> None:
        """``call_sid``'s records are in the outbox."""
        with self._lock:
            self._db.execute(
                "DELETE FROM calls WHERE call_sid = ? AND owner = ?", (call_sid, self.owner)
            )

    def heartbeat(self) -> None:
        """Say this process is alive."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO owners VALUES (?, ?, ?)",
                (self.owner, os.getpid(), self._clock()),
            )

    def lost(self, *, stale_after: float = STALE_SECONDS) -> list[LostCall]:
        """Calls whose owner stopped its heartbeat over ``stale_after`` seconds ago."""
        cutoff = self._clock() - stale_after
        with self._lock:
            rows = self._db.execute(
                "SELECT call_sid, owner, from_number, to_number, started_at, business FROM calls "
                "WHERE owner != ? AND owner NOT IN "
                "(SELECT owner FROM owners WHERE heartbeat_at >= ?)",
                (self.owner, cutoff),
            ).fetchall()
        return [
            LostCall(
                call_sid=r[0],
                owner=r[1],
                from_number=r[2],
                to_number=r[3],
                started_at=r[4],
                business=r[5],
            )
            for r in rows
        ]

    def recorded(self, calls: Sequence[LostCall]) -> None:
        """Lost ``calls`` have their records in the outbox: forget them and dead owners."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "DELETE FROM calls WHERE call_sid = ? AND owner = ?",
                    [(c.call_sid, c.owner) for c in calls],
                )
                self._db.execute(
                    "DELETE FROM owners WHERE owner != ? AND heartbeat_at < ? "
                    "AND owner NOT IN (SELECT owner FROM calls)",
                    (self.owner, self._clock() - STALE_SECONDS),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Stop the heartbeat; calls still listed here are swept by another process."""
        with self._lock:
            self._db.execute("DELETE FROM owners WHERE owner = ?", (self.owner,))
            self._db.close()


def lost_call_records(call: LostCall, *, user_email: str | None) -> list[Record]:
    """The record of a call cut off by its process's death, and the alert to call back."""
    started = datetime.fromtimestamp(call.started_at, tz=UTC)
    log = CallLog(
        call_sid=call.call_sid,
        from_number=call.from_number,
        to_number=call.to_number,
        started_at=started,
    )
    conversation = Conversation(call_sid=call.call_sid, caller_id=call.from_number or None)
    record = log.call_record(
        conversation,
        user_email=user_email,
        ended_by="error",
        hangup="not_attempted",
        error=LOST_ERROR,
    ).model_copy(update={"business": call.business})
    notice = alert(
        AlertKind.CALL_CRASHED,
        f"call {call.call_sid} was cut off: the process handling it stopped; call the caller back",
        severity="critical",
        call_sid=call.call_sid,
        user_email=user_email,
        phone=call.from_number,
        business=call.business,
    )
    # Ids from the call SID: a call swept twice (two workers at once) is one record.
    return [
        record.model_copy(update={"record_id": _record_id(call.call_sid, "call")}),
        notice.model_copy(update={"record_id": _record_id(call.call_sid, "alert")}),
    ]


def _record_id(call_sid: str, what: str) -> str:
    return str(uuid.uuid5(_RECORD_NAMESPACE, f"{call_sid}:lost:{what}"))


class LostCallSweeper:
    """A supervised actor: keeps this process's heartbeat and records others' lost calls."""

    def __init__(
        self,
        ledger: CallsInProgress,
        *,
        submit: Callable[[list[Record]], Awaitable[None]],
        user_email: Callable[[], str | None],
        interval: float = HEARTBEAT_SECONDS,
    ) -> None:
        """Sweep ``ledger`` every ``interval`` seconds, committing records with ``submit``."""
        self._ledger = ledger
        self._submit = submit
        self._user_email = user_email
        self._interval = interval

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Beat and sweep until cancelled."""
        await anyio.to_thread.run_sync(self._ledger.heartbeat)
        task_status.started()
        while True:
            await self.sweep()
            await anyio.sleep(self._interval)
            await anyio.to_thread.run_sync(self._ledger.heartbeat)

    async def sweep(self) -> int:
        """Record every lost call now; how many."""
        lost = await anyio.to_thread.run_sync(self._ledger.lost)
        if not lost:
            return 0
        records: list[Record] = []
        for call in lost:
            logger.error("call %s was cut off: the process handling it stopped", call.call_sid)
            records.extend(lost_call_records(call, user_email=self._user_email()))
        await self._submit(records)
        await anyio.to_thread.run_sync(self._ledger.recorded, lost)
        return len(lost)

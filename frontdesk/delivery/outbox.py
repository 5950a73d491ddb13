"""The durable outbox: every dashboard record is on disk before anyone relies on it.

SQLite in WAL mode with ``synchronous=FULL``: once :meth:`Outbox.put` has written the
records, they survive a crash, ``kill -9`` or a redeploy. A record is *pending* until it is
*delivered*, or *dead* (dead-lettered: the dashboard refused it for good, or it stayed
undeliverable too long). Dead records stay on disk until re-queued or purged
(``python main.py outbox list|retry|purge``); delivered ones are pruned after the
retention period, and the freed pages given back to the file system.

When the disk refuses a write (full, read-only, an I/O error), the records are *held* in
memory — up to ``max_held`` of them — and written with the next write or
:meth:`Outbox.flush`; meanwhile :attr:`Outbox.unwritable` says why, so readiness can turn
new calls away rather than lose their records. Only when memory is full too does
:meth:`Outbox.put` raise :class:`~frontdesk.runtime.errors.OutboxUnwritable`.

Opening checks the file's integrity (``PRAGMA quick_check``): a damaged file raises
:class:`~frontdesk.runtime.errors.OutboxCorrupt` naming it
(``python main.py outbox salvage`` copies what is readable into a fresh file).

All methods that touch the file are blocking; actors call them through
``anyio.to_thread``. One connection is shared under a lock. :meth:`Outbox.stats` and
:meth:`Outbox.hold` never touch the file: counts are kept in memory (and re-read from
the file every few seconds, since other processes change it too), so a ``/metrics``
scrape or a breaker alert never waits for an fsync.

**One outbox for the machine, shared by every worker** (``serve --workers N``). Each
process opens the same file; SQLite's WAL mode lets them all read while one writes, and
a write waits (bounded) for another's. :meth:`Outbox.due` does not just read what is
due, it *leases* it: in one write transaction it takes the due records that nobody
holds (or whose lease has run out) and stamps them with this instance's owner id and a
lease of :data:`LEASE_SECONDS`. So a record is in the hands of exactly one worker at a
time; marking it delivered, for retry or dead ends the lease; closing the outbox hands
back what it still held; and the leases of a worker killed with ``kill -9`` simply run
out, after which a surviving (or the restarted) worker delivers those records. The one
record a killed worker may have had in flight is sent again — the dashboard keeps one
copy per idempotency key, so it still arrives once. A consumer must not start a
delivery its lease cannot cover (:attr:`OutboxRecord.lease_until`).

Why one shared file rather than one outbox per worker drained by the others: a record
never depends on which worker wrote it or on that worker coming back; a call's records
keep their order (the earliest pending record of a call and kind blocks the later ones
whichever worker holds it); ``main.py outbox list|retry|purge`` and the metrics see one
file; and a restart with fewer workers leaves no file behind. The cost is one more
small write per delivery pass (the lease, not fsynced: losing one in a crash only means
the record is leased again), and writers taking turns on one file, which at a few
records per call is far from a limit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn, TypeVar

from pydantic import BaseModel

from frontdesk.runtime.errors import OutboxCorrupt, OutboxUnwritable

logger = logging.getLogger(__name__)

Status = Literal["pending", "delivered", "dead"]
STATUSES: tuple[Status, ...] = ("pending", "delivered", "dead")

MAX_HELD_RECORDS = 10_000
"""Records kept in memory while the disk refuses them (about 25 MB of call records)."""
PRUNE_BATCH = 2_000
LEASE_SECONDS = 60.0
"""How long a record handed out by :meth:`Outbox.due` is this instance's alone."""
BUSY_TIMEOUT_SECONDS = 15.0
"""How long a write waits for another process's write to the same file."""
COUNTS_REFRESH_SECONDS = 2.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    call_sid TEXT,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    delivered_at REAL,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS records_due ON records (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS records_call ON records (call_sid, kind, status, seq);
"""

# A record waits while an earlier pending record of the same call and kind exists.
_FIRST_OF_CALL = (
    "NOT EXISTS (SELECT 1 FROM records AS earlier WHERE earlier.status = 'pending' "
    "AND earlier.kind = records.kind AND earlier.call_sid = records.call_sid "
    "AND earlier.seq < records.seq)"
)
# Nobody holds the record, this instance does, or the holder's lease ran out.
_FREE = "(lease_owner IS NULL OR lease_owner = ? OR lease_until <= ?)"
_LEASE_COLUMNS = (("lease_owner", "TEXT"), ("lease_until", "REAL NOT NULL DEFAULT 0"))
_INSERT = (
    "INSERT OR IGNORE INTO records "
    "(record_id, kind, call_sid, body, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)"
)

# SQLite's primary result codes for "the disk said no" and "the file is damaged".
_UNWRITABLE_CODES = frozenset({8, 10, 13, 14})  # READONLY, IOERR, FULL, CANTOPEN
_CORRUPT_CODES = frozenset({11, 26})  # CORRUPT, NOTADB

T = TypeVar("T")
Row = tuple[str, str, str | None, str, float, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRecord:
    """One stored record."""

    seq: int
    record_id: str
    kind: str
    call_sid: str | None
    body: str
    created_at: float
    status: Status
    attempts: int
    next_attempt_at: float
    last_error: str | None
    lease_until: float = 0.0
    """Until when this instance holds the record (handed out by :meth:`Outbox.due`);
    0 when it could not be leased (the disk refuses writes)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxStats:
    """How the outbox stands, from memory."""

    pending: int
    delivered: int
    dead: int
    oldest_pending_age: float
    held: int = 0
    unwritable: str | None = None
    file_bytes: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSummary:
    """One call as the list of recent calls shows it: fields of its latest call record."""

    call_sid: str
    record_id: str
    status: Status
    started_at: str | None
    duration_seconds: float | None
    outcome: str | None
    ended_by: str | None
    from_number: str | None
    to_number: str | None
    business: str | None
    turns: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class UndeliveredView:
    """Records not delivered yet, per kind: counts, and the newest of each status."""

    counts: dict[tuple[str, Status], int]
    pending: list[OutboxRecord]
    dead: list[OutboxRecord]


_SUMMARY_FIELDS = (
    "seq, call_sid, record_id, status, json_extract(body, '$.started_at'), "
    "json_extract(body, '$.duration_seconds'), json_extract(body, '$.outcome'), "
    "json_extract(body, '$.ended_by'), json_extract(body, '$.from_number'), "
    "json_extract(body, '$.to_number'), "
    "COALESCE(json_extract(body, '$.business_id'), json_extract(body, '$.business')), "
    "json_extract(body, '$.turns.total')"
)


class Outbox:
    """Records waiting to reach the dashboard, on disk (or held, while the disk refuses)."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        max_held: int = MAX_HELD_RECORDS,
        owner: str | None = None,
    ) -> None:
        """Open (or create) the outbox at ``path`` and check its integrity.

        ``owner`` names this instance's leases; by default it is unique. A worker of
        ``serve --workers N`` passes its slot (``worker-2``), so the worker restarted in
        that slot takes back at once what its killed predecessor held.

        Raises:
            OutboxCorrupt: The file is not a sound SQLite database.
            OutboxUnwritable: The file cannot be created or opened for writing.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._clock = clock
        self._max_held = max_held
        self._lock = threading.RLock()
        self._counts_lock = threading.Lock()
        self._held: deque[Row] = deque()
        self._unwritable: str | None = None
        self._dropped = 0
        self.owner = owner or f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        """Whose leases this instance's are: unique per process and instance."""
        self._counted_at = 0.0
        try:
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS
            )
            self._check_integrity()
            # Only takes effect on a new file (before WAL mode writes its header); older
            # files are converted by the first prune.
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            self._add_lease_columns()
            self._load_counts()
        except sqlite3.Error as exc:
            self._raise_translated(exc)
        self._file_bytes = self._measure()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Write what is held, if the disk takes it now, hand back leases, and close."""
        with self._lock, contextlib.suppress(sqlite3.Error, OutboxUnwritable, OutboxCorrupt):
            self._transaction(
                lambda: self._db.execute(
                    "UPDATE records SET lease_until = 0 "
                    "WHERE lease_owner = ? AND status = 'pending'",
                    (self.owner,),
                )
            )
        if self._held:
            try:
                self.flush()
            except OutboxUnwritable as exc:
                logger.critical(
                    "closing the outbox with %d records the disk refused (%s): they are lost",
                    len(self._held),
                    exc.detail,
                )
        with self._lock:
            self._db.close()

    def set_size_limit(self, max_bytes: int | None) -> None:
        """Refuse writes that would grow the file past ``max_bytes`` (``None``: no limit)."""
        with self._lock:
            page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
            pages = 2**31 - 2 if max_bytes is None else max(1, max_bytes // page_size)
            self._db.execute(f"PRAGMA max_page_count = {int(pages)}")

    # -------------------------------------------------------------------- writing

    def put(self, records: Sequence[BaseModel]) -> None:
        """Store ``records`` (pydantic models with ``record_id`` and ``kind``) durably.

        A record already present (same ``record_id``) is left as it is. If the disk
        refuses, the records are held in memory and written later (see the module).

        Raises:
            OutboxUnwritable: The disk refuses and memory already holds ``max_held``.
        """
        rows = self._rows(records)
        with self._lock:
            try:
                self._write_held_and(rows)
            except OutboxUnwritable as exc:
                with self._counts_lock:
                    fits = len(self._held) + len(rows) <= self._max_held
                    if fits:
                        self._held.extend(rows)
                self._refused(exc)
                if not fits:
                    raise OutboxUnwritable(
                        self.path,
                        f"{exc.detail}; and {len(self._held)} records already wait in memory",
                    ) from exc
        self._file_bytes = self._measure()

    def hold(self, records: Sequence[BaseModel]) -> None:
        """Take ``records`` without touching the disk; :meth:`flush` writes them.

        For code on the event loop that must not wait for an fsync (an alert about a
        breaker or a restarted actor). Past ``max_held`` the records are dropped, counted
        and logged: memory stays bounded even if the disk never comes back.
        """
        rows = self._rows(records)
        with self._counts_lock:
            room = self._max_held - len(self._held)
            kept, dropped = rows[: max(room, 0)], rows[max(room, 0) :]
            self._held.extend(kept)
            self._dropped += len(dropped)
        if dropped:
            logger.error(
                "outbox memory full (%d records wait for the disk): %d records dropped",
                self._max_held,
                len(dropped),
            )

    def flush(self) -> bool:
        """Write the held records; whether none is left in memory.

        Raises:
            OutboxUnwritable: The disk still refuses (they stay held).
        """
        with self._lock:
            if not self._held:
                return True
            try:
                self._write_held_and([])
            except OutboxUnwritable as exc:
                self._refused(exc)
                raise
        self._file_bytes = self._measure()
        return True

    @property
    def unwritable(self) -> str | None:
        """Why the disk refused the last write, until a write succeeds again."""
        return self._unwritable

    @property
    def held(self) -> int:
        """Records in memory waiting for the disk."""
        return len(self._held)

    # -------------------------------------------------------------------- reading

    def due(self, *, kind: str | None = None, limit: int = 100) -> list[OutboxRecord]:
        """Lease and return pending records whose next attempt is due, oldest first.

        Only each call's earliest pending record of a kind is handed out: a call's later
        record never overtakes an earlier one that is still failing. Records another
        instance (another worker) holds are left alone until its lease runs out; those
        returned are this instance's until :attr:`OutboxRecord.lease_until` or until
        they are marked.
        """
        now = self._clock()
        where = f"status = 'pending' AND next_attempt_at <= ? AND {_FREE} AND {_FIRST_OF_CALL}"
        params: tuple = (now, self.owner, now)
        if kind is not None:
            where += " AND kind = ?"
            params += (kind,)
        until = now + LEASE_SECONDS
        with self._lock:
            self._refresh_counts(now)
            # A lease need not survive a power cut (it would only be taken again), so
            # it is written without waiting for the disk.
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:

                def lease() -> list[OutboxRecord]:
                    taken = self._select(f"WHERE {where} ORDER BY seq LIMIT ?", (*params, limit))
                    self._db.executemany(
                        "UPDATE records SET lease_owner = ?, lease_until = ? WHERE seq = ?",
                        [(self.owner, until, r.seq) for r in taken],
                    )
                    return taken

                taken = self._transaction(lease)
            except OutboxUnwritable:
                # A full disk cannot even take a lease: hand the records out unleased
                # (``lease_until`` 0) so they still reach the dashboard; at worst two
                # workers send one, and the dashboard keeps one copy per key.
                return self._select(f"WHERE {where} ORDER BY seq LIMIT ?", (*params, limit))
            finally:
                self._db.execute("PRAGMA synchronous=FULL")
        return [dataclasses.replace(r, lease_until=until) for r in taken]

    def pending(self, *, kind: str | None = None) -> list[OutboxRecord]:
        """Every pending record (of ``kind``), oldest first."""
        if kind is None:
            return self._select("WHERE status = 'pending' ORDER BY seq", ())
        return self._select("WHERE status = 'pending' AND kind = ? ORDER BY seq", (kind,))

    def records(self, status: Status | None = None) -> list[OutboxRecord]:
        """Every record (of ``status``), oldest first."""
        if status is None:
            return self._select("ORDER BY seq", ())
        return self._select("WHERE status = ? ORDER BY seq", (status,))

    def next_due_at(self, *, kind: str | None = None) -> float | None:
        """When the next deliverable record (of ``kind``) is due, if any is pending."""
        # A record another instance holds is due to us when its lease runs out.
        query = (
            "SELECT MIN(CASE WHEN lease_owner IS NOT NULL AND lease_owner != ? "
            "AND lease_until > next_attempt_at THEN lease_until ELSE next_attempt_at END) "
            f"FROM records WHERE status = 'pending' AND {_FIRST_OF_CALL}"
        )
        params: tuple = (self.owner,)
        if kind is not None:
            query += " AND kind = ?"
            params += (kind,)
        with self._lock:
            row = self._db.execute(query, params).fetchone()
        return row[0] if row and row[0] is not None else None

    def call_summaries(self, *, limit: int, outcome: str | None = None) -> list[CallSummary]:
        """The latest record of each recent call (of ``outcome``), newest first.

        Fields are read by SQLite from the stored JSON, so no record body is parsed here.
        """
        where = "WHERE kind = 'call'"
        params: tuple = ()
        if outcome is not None:
            where += " AND json_extract(body, '$.outcome') = ?"
            params = (outcome,)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_SUMMARY_FIELDS} FROM records {where} ORDER BY seq DESC LIMIT ?",
                (*params, limit * 2),
            ).fetchall()
        summaries: dict[str, CallSummary] = {}
        for row in rows:
            if row[1] in summaries:
                continue  # an older revision of a call already listed
            summaries[row[1]] = CallSummary(
                call_sid=row[1],
                record_id=row[2],
                status=row[3],
                started_at=row[4],
                duration_seconds=row[5],
                outcome=row[6],
                ended_by=row[7],
                from_number=row[8],
                to_number=row[9],
                business=row[10],
                turns=row[11],
            )
        return list(summaries.values())[:limit]

    def of_call(self, call_sid: str) -> list[OutboxRecord]:
        """Every record of one call (call revisions, job, texts, alerts), oldest first."""
        return self._select("WHERE call_sid = ? ORDER BY seq", (call_sid,))

    def undelivered(self, *, limit: int) -> UndeliveredView:
        """Counts of pending and dead records per kind, and up to ``limit`` newest of each."""
        with self._lock:
            counts = self._db.execute(
                "SELECT kind, status, COUNT(*) FROM records WHERE status IN ('pending', 'dead') "
                "GROUP BY kind, status"
            ).fetchall()
        return UndeliveredView(
            counts={(kind, status): count for kind, status, count in counts},
            pending=self._select("WHERE status = 'pending' ORDER BY seq DESC LIMIT ?", (limit,)),
            dead=self._select("WHERE status = 'dead' ORDER BY seq DESC LIMIT ?", (limit,)),
        )

    def body(self, record: OutboxRecord) -> dict:
        """A stored record's JSON body."""
        return json.loads(record.body)

    def stats(self) -> OutboxStats:
        """Counts by status, the oldest pending record's age, held records: from memory."""
        with self._counts_lock:
            oldest = next(iter(self._pending_since.values()), None)
            return OutboxStats(
                pending=self._counts["pending"],
                delivered=self._counts["delivered"],
                dead=self._counts["dead"],
                oldest_pending_age=max(0.0, self._clock() - oldest) if oldest is not None else 0.0,
                held=len(self._held),
                unwritable=self._unwritable,
                file_bytes=self._file_bytes,
            )

    @property
    def dropped(self) -> int:
        """Records dropped because the disk refused and memory was full."""
        return self._dropped

    # ------------------------------------------------------------------ changing

    def mark_delivered(self, record_id: str) -> None:
        """The dashboard took the record."""
        self._move(
            record_id,
            "delivered",
            "SET status = 'delivered', delivered_at = ?, attempts = attempts + 1, "
            "last_error = NULL, lease_until = 0 WHERE record_id = ?",
            (self._clock(), record_id),
        )

    def mark_retry(
        self,
        record_id: str,
        *,
        at: float,
        error: str,
        count: bool = True,
        keep_lease: bool = False,
    ) -> None:
        """The attempt failed transiently (or could not be made); try again at ``at``.

        With ``keep_lease`` the record stays leased to this process: a note written
        *before* an attempt (what to do if the process dies during it) must not free
        the record for another worker while the attempt is still under way.
        """
        lease = "" if keep_lease else ", lease_until = 0"
        self._update(
            "SET attempts = attempts + ?, next_attempt_at = ?, last_error = ?"
            f"{lease} WHERE record_id = ? AND status = 'pending'",
            (1 if count else 0, at, error[:2000], record_id),
        )

    def mark_dead(self, record_id: str, *, error: str) -> None:
        """Give up on the record: it stays on disk as a dead letter."""
        self._move(
            record_id,
            "dead",
            "SET status = 'dead', attempts = attempts + 1, last_error = ?, lease_owner = NULL, "
            "lease_until = 0 WHERE record_id = ?",
            (error[:2000], record_id),
        )

    def requeue(self, record_ids: list[str] | None = None) -> int:
        """Make dead records (all, or those named) pending again; returns how many."""
        now = self._clock()
        with self._lock:
            if record_ids is None:
                ids = [
                    r[0]
                    for r in self._db.execute("SELECT record_id FROM records WHERE status = 'dead'")
                ]
            else:
                wanted = set(record_ids)
                ids = [
                    r[0]
                    for r in self._db.execute("SELECT record_id FROM records WHERE status = 'dead'")
                    if r[0] in wanted
                ]
            self._transaction(
                lambda: self._db.executemany(
                    "UPDATE records SET status = 'pending', next_attempt_at = ?, attempts = 0, "
                    "created_at = ?, lease_until = 0 "
                    "WHERE status = 'dead' AND record_id = ?",
                    [(now, now, rid) for rid in ids],
                )
            )
            with self._counts_lock:
                self._counts["dead"] -= len(ids)
                self._counts["pending"] += len(ids)
                for rid in ids:
                    self._pending_since[rid] = now
        return len(ids)

    def prune(self, *, older_than: float, convert: bool = False) -> int:
        """Delete delivered records delivered over ``older_than`` seconds ago; how many.

        In batches, so a call's records never wait long for the lock, then gives the
        freed pages back to the file system (incremental vacuum) and truncates the WAL.
        Dead letters are never pruned: they wait for ``retry`` or ``purge --dead``.

        A file made before incremental vacuum reuses its freed pages but cannot return
        them; ``convert`` rewrites it once (a full ``VACUUM``: long on a big file, so
        only ``main.py outbox purge`` asks for it, with the server stopped).
        """
        cutoff = self._clock() - older_than
        removed = self._delete_in_batches(
            "status = 'delivered' AND delivered_at < ?", (cutoff,), "delivered"
        )
        self._give_back_space(convert=convert)
        return removed

    def purge_dead(self, *, convert: bool = False) -> int:
        """Delete every dead letter (on purpose: they are gone for good); how many."""
        removed = self._delete_in_batches("status = 'dead'", (), "dead")
        self._give_back_space(convert=convert)
        return removed

    # ------------------------------------------------------------------ internals

    def _rows(self, records: Iterable[BaseModel]) -> list[Row]:
        now = self._clock()
        return [
            (
                # A later revision of a record is a delivery of its own, under its own key.
                getattr(r, "delivery_key", None) or r.record_id,  # type: ignore[attr-defined]
                r.kind,  # type: ignore[attr-defined]
                getattr(r, "call_sid", None),
                r.model_dump_json(),
                now,
                now,
            )
            for r in records
        ]

    def _write_held_and(self, rows: list[Row]) -> None:
        """Write held records, then ``rows``, in one transaction (caller holds the lock)."""
        with self._counts_lock:
            batch = [*self._held, *rows]

        def insert() -> list[Row]:
            return [row for row in batch if self._db.execute(_INSERT, row).rowcount == 1]

        inserted = self._transaction(insert)
        with self._counts_lock:
            for _ in range(len(batch) - len(rows)):
                self._held.popleft()
            self._counts["pending"] += len(inserted)
            for row in inserted:
                self._pending_since[row[0]] = row[4]
        if self._unwritable is not None:
            logger.warning("the outbox's disk takes writes again; held records are on disk")
            self._unwritable = None

    def _refused(self, exc: OutboxUnwritable) -> None:
        first = self._unwritable is None
        self._unwritable = exc.detail
        if first:
            logger.error(
                "the disk refuses writes to the outbox %s: %s; %d records held in memory",
                self.path,
                exc.detail,
                len(self._held),
            )

    def _transaction(self, work: Callable[[], T]) -> T:
        """Run ``work`` in a write transaction (caller holds the lock); translate errors."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            result = work()
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            self._raise_translated(exc)
        except BaseException:
            self._rollback()
            raise
        return result

    def _rollback(self) -> None:
        # SQLite may already have rolled back on its own (a full disk does that); a
        # second ROLLBACK would then hide the true error behind "no transaction is active".
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                logger.error("outbox rollback failed too: %s", exc)

    def _raise_translated(self, exc: sqlite3.Error) -> NoReturn:
        """Raise ``exc`` as the outbox error it means, if it is one."""
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code in _UNWRITABLE_CODES:
            raise OutboxUnwritable(self.path, str(exc)) from exc
        if code in _CORRUPT_CODES:
            raise OutboxCorrupt(self.path, f"{exc}; run `python main.py outbox salvage`") from exc
        raise exc

    def _check_integrity(self) -> None:
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            shown = "; ".join(problems[:5])
            raise OutboxCorrupt(
                self.path,
                f"failed its integrity check ({shown}); run `python main.py outbox salvage`",
            )

    def _add_lease_columns(self) -> None:
        """Bring a file made before leases up to date (once, whichever process is first)."""

        def add() -> None:
            present = {row[1] for row in self._db.execute("PRAGMA table_info(records)")}
            for name, declaration in _LEASE_COLUMNS:
                if name not in present:
                    self._db.execute(f"ALTER TABLE records ADD COLUMN {name} {declaration}")

        present = {row[1] for row in self._db.execute("PRAGMA table_info(records)")}
        if any(name not in present for name, _ in _LEASE_COLUMNS):
            self._transaction(add)

    def _refresh_counts(self, now: float) -> None:
        """Re-read the counts other processes changed too (caller holds the lock)."""
        if now - self._counted_at < COUNTS_REFRESH_SECONDS:
            return
        with self._counts_lock:
            self._load_counts()

    def _load_counts(self) -> None:
        self._counted_at = self._clock()
        counts = dict(
            self._db.execute("SELECT status, COUNT(*) FROM records GROUP BY status").fetchall()
        )
        self._counts: dict[str, int] = {status: counts.get(status, 0) for status in STATUSES}
        # Insertion-ordered oldest first, so the oldest pending age is read in O(1).
        self._pending_since: dict[str, float] = dict(
            self._db.execute(
                "SELECT record_id, created_at FROM records WHERE status = 'pending' "
                "ORDER BY created_at, seq"
            ).fetchall()
        )

    def _move(self, record_id: str, to: Status, statement: str, params: tuple) -> None:
        with self._lock:
            row = self._db.execute(
                "SELECT status FROM records WHERE record_id = ?", (record_id,)
            ).fetchone()
            self._update(statement, params)
            if row is None or row[0] == to:
                return
            with self._counts_lock:
                self._counts[row[0]] -= 1
                self._counts[to] += 1
                self._pending_since.pop(record_id, None)

    def _update(self, statement: str, params: tuple) -> None:
        with self._lock:
            self._transaction(lambda: self._db.execute(f"UPDATE records {statement}", params))

    def _delete_in_batches(self, where: str, params: tuple, status: Status) -> int:
        removed = 0
        while True:
            with self._lock:
                cursor = self._transaction(
                    lambda: self._db.execute(
                        "DELETE FROM records WHERE seq IN "
                        f"(SELECT seq FROM records WHERE {where} LIMIT {PRUNE_BATCH})",
                        params,
                    )
                )
                with self._counts_lock:
                    self._counts[status] -= cursor.rowcount
            removed += cursor.rowcount
            if cursor.rowcount < PRUNE_BATCH:
                return removed

    def _give_back_space(self, *, convert: bool) -> None:
        with self._lock:
            try:
                if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                    if not convert:
                        logger.info(
                            "the outbox %s predates incremental vacuum: freed pages are reused, "
                            "not returned; `main.py outbox purge` with the server stopped "
                            "converts it",
                            self.path,
                        )
                    else:
                        logger.info("converting the outbox %s to incremental vacuum", self.path)
                        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                        self._db.execute("VACUUM")
                # Each step of this pragma frees one page, and execute() steps once:
                # executescript() runs it to the end.
                self._db.executescript("PRAGMA incremental_vacuum;")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                self._raise_translated(exc)
        self._file_bytes = self._measure()

    def _measure(self) -> int:
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += os.stat(f"{self.path}{suffix}").st_size
        return size

    def _select(self, where: str, params: tuple) -> list[OutboxRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, record_id, kind, call_sid, body, created_at, status, attempts, "
                f"next_attempt_at, last_error, lease_until FROM records {where}",
                params,
            ).fetchall()
        return [
            OutboxRecord(
                lease_until=r[10] or 0.0,
                seq=r[0],
                record_id=r[1],
                kind=r[2],
                call_sid=r[3],
                body=r[4],
                created_at=r[5],
                status=r[6],
                attempts=r[7],
                next_attempt_at=r[8],
                last_error=r[9],
            )
            for r in rows
        ]


def lease_left(record: OutboxRecord, now: float) -> float:
    """Seconds this instance still holds ``record`` (infinite for an unleased record)."""
    return float("inf") if not record.lease_until else record.lease_until - now


def callbacks_path(outbox_path: Path) -> Path:
    """The file of kept backend callbacks, beside the dashboard outbox."""
    return outbox_path.with_name(f"{outbox_path.stem}-callbacks.sqlite3")

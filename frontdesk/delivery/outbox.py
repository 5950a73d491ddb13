"""The durable outbox: every dashboard record is on disk before anyone relies on it.

SQLite in WAL mode with ``synchronous=FULL``: once :meth:`Outbox.put` returns, the
records survive a crash, ``kill -9`` or a redeploy. A record is *pending* until it is
*delivered*, or *dead* (dead-lettered: the dashboard refused it for good, or it stayed
undeliverable too long). Dead records stay on disk and can be listed and re-queued
(``python main.py outbox list|retry``).

All methods are blocking; actors call them through ``anyio.to_thread``. One connection
is shared under a lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

Status = Literal["pending", "delivered", "dead"]

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
    delivered_at REAL
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


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxStats:
    """How the outbox stands."""

    pending: int
    delivered: int
    dead: int
    oldest_pending_age: float


class Outbox:
    """Records waiting to reach the dashboard, on disk."""

    def __init__(self, path: Path, *, clock=time.time) -> None:
        """Open (or create) the outbox at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def put(self, records: list[BaseModel]) -> None:
        """Store ``records`` (pydantic models with ``record_id`` and ``kind``) durably.

        A record already present (same ``record_id``) is left as it is.
        """
        now = self._clock()
        rows = [
            (
                r.record_id,  # type: ignore[attr-defined]
                r.kind,  # type: ignore[attr-defined]
                getattr(r, "call_sid", None),
                r.model_dump_json(),
                now,
                now,
            )
            for r in records
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO records "
                    "(record_id, kind, call_sid, body, created_at, next_attempt_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def due(self, *, kind: str | None = None, limit: int = 100) -> list[OutboxRecord]:
        """Pending records whose next attempt is due, oldest first.

        Only each call's earliest pending record of a kind is handed out: a call's later
        record never overtakes an earlier one that is still failing.
        """
        if kind is None:
            return self._select(
                f"WHERE status = 'pending' AND next_attempt_at <= ? AND {_FIRST_OF_CALL} "
                "ORDER BY seq LIMIT ?",
                (self._clock(), limit),
            )
        return self._select(
            f"WHERE status = 'pending' AND kind = ? AND next_attempt_at <= ? AND {_FIRST_OF_CALL} "
            "ORDER BY seq LIMIT ?",
            (kind, self._clock(), limit),
        )

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
        query = (
            "SELECT MIN(next_attempt_at) FROM records "
            f"WHERE status = 'pending' AND {_FIRST_OF_CALL}"
        )
        params: tuple = ()
        if kind is not None:
            query += " AND kind = ?"
            params = (kind,)
        with self._lock:
            row = self._db.execute(query, params).fetchone()
        return row[0] if row and row[0] is not None else None

    def mark_delivered(self, record_id: str) -> None:
        """The dashboard took the record."""
        self._update(
            "SET status = 'delivered', delivered_at = ?, attempts = attempts + 1, "
            "last_error = NULL WHERE record_id = ?",
            (self._clock(), record_id),
        )

    def mark_retry(self, record_id: str, *, at: float, error: str, count: bool = True) -> None:
        """The attempt failed transiently (or could not be made); try again at ``at``."""
        self._update(
            "SET attempts = attempts + ?, next_attempt_at = ?, last_error = ? "
            "WHERE record_id = ? AND status = 'pending'",
            (1 if count else 0, at, error[:2000], record_id),
        )

    def mark_dead(self, record_id: str, *, error: str) -> None:
        """Give up on the record: it stays on disk as a dead letter."""
        self._update(
            "SET status = 'dead', attempts = attempts + 1, last_error = ? WHERE record_id = ?",
            (error[:2000], record_id),
        )

    def requeue(self, record_ids: list[str] | None = None) -> int:
        """Make dead records (all, or those named) pending again; returns how many."""
        now = self._clock()
        with self._lock:
            if record_ids is None:
                cursor = self._db.execute(
                    "UPDATE records SET status = 'pending', next_attempt_at = ?, attempts = 0, "
                    "created_at = ? WHERE status = 'dead'",
                    (now, now),
                )
            else:
                cursor = self._db.executemany(
                    "UPDATE records SET status = 'pending', next_attempt_at = ?, attempts = 0, "
                    "created_at = ? WHERE status = 'dead' AND record_id = ?",
                    [(now, now, rid) for rid in record_ids],
                )
            return cursor.rowcount

    def stats(self) -> OutboxStats:
        """Counts by status and the age of the oldest pending record."""
        with self._lock:
            counts = dict(
                self._db.execute("SELECT status, COUNT(*) FROM records GROUP BY status").fetchall()
            )
            oldest = self._db.execute(
                "SELECT MIN(created_at) FROM records WHERE status = 'pending'"
            ).fetchone()[0]
        return OutboxStats(
            pending=counts.get("pending", 0),
            delivered=counts.get("delivered", 0),
            dead=counts.get("dead", 0),
            oldest_pending_age=max(0.0, self._clock() - oldest) if oldest is not None else 0.0,
        )

    def body(self, record: OutboxRecord) -> dict:
        """A stored record's JSON body."""
        return json.loads(record.body)

    def _select(self, where: str, params: tuple) -> list[OutboxRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, record_id, kind, call_sid, body, created_at, status, attempts, "
                f"next_attempt_at, last_error FROM records {where}",
                params,
            ).fetchall()
        return [
            OutboxRecord(
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

    def _update(self, statement: str, params: tuple) -> None:
        with self._lock:
            self._db.execute(f"UPDATE records {statement}", params)

"""Salvage a damaged outbox: copy every record still readable into a fresh file.

``python main.py outbox salvage`` runs it with the server stopped. The damaged file is
kept beside the new one (``<name>.damaged-<time>``) for whoever wants to dig further;
the fresh file takes its place, so the next ``serve`` starts on it and delivers what was
saved. Records are copied as they were — status, attempts, timestamps — so nothing
delivered is sent again and nothing pending is forgotten.

Reading goes by the table itself, never by an index (a damaged index must not hide
rows): one scan in key order, and where the scan breaks, one lookup per key.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from frontdesk.delivery.outbox import Outbox

logger = logging.getLogger(__name__)

COLUMNS = (
    "seq, record_id, kind, call_sid, body, created_at, status, attempts, "
    "next_attempt_at, last_error, delivered_at"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SalvageReport:
    """What a salvage copied and where the files are now."""

    copied: int
    unreadable: int
    outbox: Path
    damaged: Path


def salvage(path: Path, *, clock=time.time) -> SalvageReport:
    """Copy every readable record of ``path`` into a fresh outbox that replaces it."""
    fresh = path.with_name(f"{path.name}.salvaging")
    _remove(fresh)
    rows, unreadable = read_what_you_can(path)
    Outbox(fresh, clock=clock).close()
    target = sqlite3.connect(fresh, isolation_level=None)
    try:
        target.execute("BEGIN IMMEDIATE")
        target.executemany(
            f"INSERT OR IGNORE INTO records ({COLUMNS}) VALUES ({', '.join('?' * 11)})", rows
        )
        target.execute("COMMIT")
    finally:
        target.close()
    damaged = path.with_name(f"{path.name}.damaged-{int(clock())}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(f"{damaged}{suffix}")
    fresh.rename(path)
    _remove(fresh)
    return SalvageReport(copied=len(rows), unreadable=unreadable, outbox=path, damaged=damaged)


def read_what_you_can(path: Path) -> tuple[list[tuple], int]:
    """Every row of ``records`` that can be read, and how many keys could not be."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        try:
            return db.execute(
                f"SELECT {COLUMNS} FROM records NOT INDEXED ORDER BY seq"
            ).fetchall(), 0
        except sqlite3.DatabaseError as exc:
            logger.warning("a full scan of %s broke (%s); reading key by key", path, exc)
        last = _highest_key(db)
        rows, unreadable = [], 0
        for seq in range(1, last + 1):
            try:
                row = db.execute(
                    f"SELECT {COLUMNS} FROM records NOT INDEXED WHERE seq = ?", (seq,)
                ).fetchone()
            except sqlite3.DatabaseError:
                unreadable += 1
                continue
            if row is not None:
                rows.append(row)
        return rows, unreadable
    finally:
        db.close()


def _highest_key(db: sqlite3.Connection) -> int:
    for query in (
        "SELECT seq FROM sqlite_sequence WHERE name = 'records'",
        "SELECT MAX(seq) FROM records",
    ):
        try:
            row = db.execute(query).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row and row[0]:
            return int(row[0])
    return 0


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)

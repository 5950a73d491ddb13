"""Who asked not to be texted, on disk: the last STOP or START each number sent.

Twilio blocks a text to a number that replied STOP (error 21610), but only from the
number it replied to, and only while Twilio's own filtering is on; Frontdesk keeps its
own ledger so it never even tries. One row per number that ever sent a keyword, so the
table grows with distinct texters, not with texts.

SQLite in WAL mode with ``synchronous=FULL`` (an opt-out survives a crash once
:meth:`OptOutLedger.record` returns). All methods block; call them through
``anyio.to_thread``. One connection is shared under a lock.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from frontdesk.delivery.sms import SmsKeyword

SCHEMA = """
CREATE TABLE IF NOT EXISTS sms_opt_outs (
    number TEXT PRIMARY KEY,
    opted_out INTEGER NOT NULL,
    keyword TEXT NOT NULL,
    message_sid TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""


class OptOutLedger:
    """The numbers that opted out of texts, durable across restarts."""

    def __init__(self, path: Path, *, clock=time.time) -> None:
        """Open (or create) the ledger at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
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

    def record(self, number: str, keyword: SmsKeyword, *, message_sid: str) -> bool:
        """Apply an opt-out or opt-in keyword from ``number``; whether its state changed.

        A HELP keyword changes nothing; a keyword that matches the number's state (a
        second STOP, or Twilio retrying the webhook) changes nothing either. The SID of
        the text that set the state is kept, for the record.
        """
        if keyword is SmsKeyword.HELP:
            return False
        opted_out = keyword is SmsKeyword.OPT_OUT
        with self._lock:
            row = self._db.execute(
                "SELECT opted_out FROM sms_opt_outs WHERE number = ?", (number,)
            ).fetchone()
            if row is not None and bool(row[0]) == opted_out:
                return False
            self._db.execute(
                "INSERT INTO sms_opt_outs (number, opted_out, keyword, message_sid, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(number) DO UPDATE SET"
                " opted_out = excluded.opted_out, keyword = excluded.keyword,"
                " message_sid = excluded.message_sid, updated_at = excluded.updated_at",
                (number, int(opted_out), keyword.value, message_sid, self._clock()),
            )
        return True

    def opted_out(self, number: str) -> bool:
        """Whether ``number`` asked not to be texted (and has not opted back in)."""
        with self._lock:
            row = self._db.execute(
                "SELECT opted_out FROM sms_opt_outs WHERE number = ?", (number,)
            ).fetchone()
        return row is not None and bool(row[0])


def opt_outs_path(outbox_path: Path) -> Path:
    """The opt-out ledger's file, beside the dashboard outbox."""
    return outbox_path.with_name(f"{outbox_path.stem}-sms-optouts.sqlite3")

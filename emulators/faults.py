"""Faults an emulator can be told to inject, switchable at run time.

A :class:`Fault` says what goes wrong (``kind``), where (``route``: one of the
emulator's route names, or every route when unset), and for how long (``times``
requests, or until cleared). Emulators consult :meth:`Faults.take` when a request or
connection starts and :meth:`Faults.active` while they stream.

Kinds:

- ``latency``: wait ``seconds`` before the first byte of the answer.
- ``error``: answer HTTP ``status`` (429, 5xx, 4xx) instead of the real answer; for a
  websocket, refuse the upgrade with that status.
- ``refuse``: stop accepting connections (connection refused); open ones carry on.
- ``down``: ``refuse`` plus closing every open connection abruptly (code ``code``).
- ``stall``: after ``after`` messages or chunks, stop sending for ``seconds``
  (forever when 0) without closing.
- ``close``: after ``after`` messages or chunks, close the connection abruptly with
  websocket ``code`` (HTTP streams are cut).
- ``truncate``: an answer's content ends after ``after`` characters, as a model's does
  when it runs out of tokens (OpenAI: ``finish_reason: "length"``).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any


class FaultKind(enum.StrEnum):
    """What goes wrong."""

    LATENCY = "latency"
    ERROR = "error"
    REFUSE = "refuse"
    DOWN = "down"
    STALL = "stall"
    CLOSE = "close"
    TRUNCATE = "truncate"


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One fault; see the module docstring for what each field means per kind."""

    kind: FaultKind
    route: str | None = None
    seconds: float = 0.0
    status: int = 503
    code: int = 1011
    after: int = 0
    times: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        """Build a fault from its JSON form (the admin API's body)."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**{**data, "kind": FaultKind(data["kind"])})

    def to_json(self) -> dict[str, Any]:
        """The fault's JSON form."""
        return {
            "kind": self.kind.value,
            "route": self.route,
            "seconds": self.seconds,
            "status": self.status,
            "code": self.code,
            "after": self.after,
            "times": self.times,
        }


@dataclass
class Faults:
    """The faults active on one emulator. Thread-safe: tests may poke it from any thread."""

    on_change: Callable[[], None] | None = None
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> None:
        """Switch ``fault`` on."""
        with self._lock:
            self._faults.append(fault)
        self._changed()

    def clear(self, kind: FaultKind | None = None) -> None:
        """Switch every fault off (or only those of ``kind``)."""
        with self._lock:
            self._faults = [f for f in self._faults if kind is not None and f.kind is not kind]
        self._changed()

    def remove(self, fault: Fault) -> None:
        """Switch off the first active fault like ``fault``, whatever uses it has left."""
        with self._lock:
            for index, active in enumerate(self._faults):
                if replace(active, times=fault.times) == fault:
                    del self._faults[index]
                    break
            else:
                return
        self._changed()

    def list(self) -> list[Fault]:
        """The active faults."""
        with self._lock:
            return list(self._faults)

    def has(self, kind: FaultKind) -> bool:
        """Whether a fault of ``kind`` is active on any route."""
        with self._lock:
            return any(f.kind is kind for f in self._faults)

    def take(self, route: str, *kinds: FaultKind) -> Fault | None:
        """The first active fault of ``kinds`` for ``route``, counting one use of it."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.kind in kinds and fault.route in (None, route):
                    if fault.times is not None:
                        remaining = fault.times - 1
                        if remaining <= 0:
                            del self._faults[index]
                        else:
                            self._faults[index] = replace(fault, times=remaining)
                    return fault
        return None

    def active(self, route: str, *kinds: FaultKind) -> Fault | None:
        """The first active fault of ``kinds`` for ``route``, without counting a use."""
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fault.route in (None, route):
                    return fault
        return None

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

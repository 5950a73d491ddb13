"""Request and reply between actors over anyio memory object streams.

A message that needs an answer carries a :class:`Reply`, a one-shot stream back to the
asker; :func:`ask` sends the message and waits for the answer under a time bound,
translating stream errors into :class:`ActorError` subclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from frontdesk.runtime.errors import ActorTimeout, ActorUnavailable

T = TypeVar("T")
M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class Reply(Generic[T]):
    """A one-shot channel back to whoever asked."""

    stream: MemoryObjectSendStream[T]

    def send(self, value: T) -> None:
        """Answer; if the asker has given up waiting, the answer is dropped."""
        try:
            self.stream.send_nowait(value)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.WouldBlock):
            pass
        finally:
            self.stream.close()


async def ask(
    inbox: MemoryObjectSendStream[M],
    make: Callable[[Reply[T]], M],
    *,
    timeout: float,
    what: str,
) -> T:
    """Send the message ``make(reply)`` to ``inbox`` and wait for its answer.

    Raises:
        ActorTimeout: Not answered within ``timeout`` seconds (sending included).
        ActorUnavailable: The inbox is closed, or the actor dropped the request.
    """
    send, receive = anyio.create_memory_object_stream[T](1)
    with receive:
        try:
            with anyio.fail_after(timeout):
                await inbox.send(make(Reply(send)))
                return await receive.receive()
        except TimeoutError as exc:
            raise ActorTimeout(f"{what}: no answer within {timeout:g}s") from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream) as exc:
            raise ActorUnavailable(f"{what}: actor unavailable") from exc

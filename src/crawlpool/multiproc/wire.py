"""Messages between the crawl's first process and its worker processes: pickled tuples, each framed by
its length, over a Unix socket pair the first process created.

Pickle is safe here, and only here: both ends are crawlpool processes started together, the socket is
never named on disk, and nothing is stored. The messages sent during one turn of the event loop leave as
one frame (one pickled list, one write), so a worker's lease, add, pace and ack of the same moment cost
one system call and one unpickling, not four.
"""

from __future__ import annotations

import asyncio
import copyreg
import pickle
import struct
from collections import deque
from typing import Any

from crawlpool.frontier.base import FrontierCounts, Lease, LeaseBatch, Request, RobotsState
from crawlpool.policy.pacing import Answered, Blocked, FloorRaised, HostPace
from crawlpool.records import Page

HEADER = struct.Struct("!I")
BEAT_S = 1.0  # a worker says it is alive (with its counters) this often
MAX_FRAME = 1 << 30  # a frame this large is a bug (the largest is a batch of seeds), never a message


def _by_fields(obj: Any) -> tuple[type, tuple[Any, ...]]:
    """Pickle a slots dataclass as its class and field values: the dataclasses module's own way
    (`__getstate__` over `fields()`) cost more than the frontier's work per page in a profile."""
    cls = type(obj)
    return cls, tuple([getattr(obj, name) for name in cls.__slots__])


# The messages' own types, every field an __init__ argument in __slots__ order.
for _cls in (
    Request,
    Lease,
    LeaseBatch,
    Page,
    FrontierCounts,
    RobotsState,
    HostPace,
    Answered,
    Blocked,
    FloorRaised,
):
    copyreg.pickle(_cls, _by_fields)


class ChannelClosed(Exception):
    """The other end is gone: its process ended or was killed."""


class Channel:
    """One end of the pair: `send` queues a message, `receive` waits for the next one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._pending: list[tuple[Any, ...]] = []
        self._received: deque[tuple[Any, ...]] = deque()
        self._closed = False

    @classmethod
    async def over(cls, sock: Any) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    def send(self, message: tuple[Any, ...]) -> None:
        if self._closed:
            raise ChannelClosed("channel closed")
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(message)

    def _flush(self) -> None:
        if self._pending and not self._closed and not self._writer.is_closing():
            body = pickle.dumps(self._pending, protocol=pickle.HIGHEST_PROTOCOL)
            self._writer.write(HEADER.pack(len(body)) + body)
        self._pending = []

    async def drain(self) -> None:
        """Send what is queued now and wait until the socket took it (before a process exits)."""
        self._flush()
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ChannelClosed(str(exc)) from None

    async def receive(self) -> tuple[Any, ...]:
        if not self._received:
            try:
                header = await self._reader.readexactly(HEADER.size)
                (size,) = HEADER.unpack(header)
                if size > MAX_FRAME:
                    raise ChannelClosed(f"frame of {size} bytes")
                body = await self._reader.readexactly(size)
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                raise ChannelClosed("the other process closed its end") from None
            self._received.extend(pickle.loads(body))
        return self._received.popleft()

    def close(self) -> None:
        self._flush()
        self._closed = True
        self._writer.close()

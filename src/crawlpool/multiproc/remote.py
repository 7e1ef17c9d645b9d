"""The frontier as a worker process sees it: every call goes to the crawl's first process, which holds
the real frontier (`pool.py`), and comes back as its answer.

A worker never decides that the crawl is over: only the first process sees every process's leases and
every page stored, so `counts` also brings back whether it said so (`over`). A lease call cancelled
while its answer was on the way (the worker is stopping) still gets its answer: the URLs in it go back
untried.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from crawlpool.errors import FrontierError
from crawlpool.frontier import (
    FrontierCounts,
    FrontierStatus,
    HostRow,
    Lease,
    LeaseBatch,
    Request,
    RobotsState,
)
from crawlpool.multiproc.wire import Channel
from crawlpool.policy.pacing import HostEvent, HostPace
from crawlpool.records import Page


class RemoteFrontier:
    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._ids = itertools.count()
        self._calls: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._gone: str | None = None
        self.over = False  # the first process said the crawl is over
        # What the worker counted (requests, retries), sent with each ack: a killed worker's requests
        # then count up to its last commit.
        self.counters: Callable[[], dict[str, int]] = dict

    async def _call(self, method: str, *args: Any) -> Any:
        if self._gone is not None:
            raise FrontierError(self._gone)
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = (method, future)
        self._channel.send(("call", call_id, method, args))
        return await future

    def answered(self, call_id: int, ok: bool, value: Any) -> None:
        """The first process's answer to a call (from the worker's reader loop)."""
        method, future = self._calls.pop(call_id)
        if future.cancelled():
            if ok and method == "lease":
                for lease in value.leases:  # leased for a call no one waits for any more
                    self._channel.send(("call", -1, "release", (lease,)))
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(FrontierError(value))

    def lost(self, reason: str) -> None:
        """The first process is gone: every call waiting, and every later one, fails."""
        self._gone = reason
        for _, future in self._calls.values():
            if not future.done():
                future.set_exception(FrontierError(reason))
        self._calls.clear()

    def _cast(self, method: str, *args: Any) -> None:
        """A call whose answer no one reads: sent, not waited for. The first process handles a worker's
        messages in order, so what it casts is done before anything the worker sends after it (links
        are added before the ack that follows them); if a cast fails, the first process says so and
        every later call fails (`lost`)."""
        if self._gone is not None:
            raise FrontierError(self._gone)
        self._channel.send(("call", -1, method, args))

    async def add(self, requests: Sequence[Request]) -> int:
        """Sent without waiting: the engine never reads how many were new (0 is returned)."""
        self._cast("add", list(requests))
        return 0

    async def lease(self, limit: int) -> LeaseBatch:
        batch: LeaseBatch = await self._call("lease", limit)
        return batch

    async def ack(self, lease: Lease, page: Page) -> bool:
        """Sent without waiting (True is returned): the first process refuses only the ack of a lease it
        took back, which it does only from a worker that died or at a stop, and then publishes nothing.
        Acks leave in the order they are made, so a WARC writer's exchanges commit in the order it
        appended them, as `warc.py` needs (a refused one of a dead worker is cut at the end)."""
        self._cast("ack", lease, page, self.counters())
        return True

    async def retry(self, lease: Lease, delay_s: float, *, self_redirect: bool = False) -> bool:
        """Sent without waiting: the engine does not read the answer (True is returned)."""
        self._cast("retry", lease, delay_s, self_redirect)
        return True

    async def release(self, lease: Lease) -> bool:
        """Sent without waiting: the engine does not read the answer (True is returned)."""
        self._cast("release", lease)
        return True

    async def settle(self, request: Request, page: Page) -> bool:
        done: bool = await self._call("settle", request, page)
        return done

    def is_current(self, lease: Lease) -> bool:
        return True  # the first process refuses an ack of a lease that ended

    async def observe(self, host: str, event: HostEvent) -> HostPace:
        """Sent without waiting: the engine never reads the new pacing (a default is returned)."""
        self._cast("observe", host, event)
        return HostPace()

    async def robots(self, host: str) -> RobotsState | None:
        state: RobotsState | None = await self._call("robots", host)
        return state

    async def set_robots(self, host: str, state: RobotsState) -> None:
        await self._call("set_robots", host, state)

    async def counts(self) -> FrontierCounts:
        counts, self.over = await self._call("counts")
        assert isinstance(counts, FrontierCounts)
        return counts

    async def host_rows(self, limit: int) -> list[HostRow]:
        rows: list[HostRow] = await self._call("host_rows", limit)
        return rows

    async def hosts_waiting(self) -> int:
        waiting: int = await self._call("hosts_waiting")
        return waiting

    async def aclose(self) -> None:
        pass  # the first process closes the frontier

    async def get_meta(self, key: str) -> str | None:
        value: str | None = await self._call("get_meta", key)
        return value

    async def set_meta(self, key: str, value: str) -> None:
        await self._call("set_meta", key, value)

    async def claim_meta(self, key: str, value: str) -> str | None:
        held: str | None = await self._call("claim_meta", key, value)
        return held

    async def committed_pages(self) -> AsyncIterator[Page]:
        return  # a worker writes no manifest: the first process does
        yield  # pragma: no cover

    async def status(self) -> FrontierStatus:
        status: FrontierStatus = await self._call("status")
        return status

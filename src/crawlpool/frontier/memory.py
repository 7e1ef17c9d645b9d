"""The in-memory frontier: for tests and throwaway crawls; its state dies with the process.

Hosts are scheduled by `schedule.ReadyHosts`; each host's URLs wait in a deque. Retries wait in a
second heap until their due time, then rejoin the front of their host's queue. Committed records and
meta values are kept in lists and dicts, like everything else here.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace

from crawlpool.frontier.base import (
    ROBOTS_FAILURES_KEPT_S,
    FrontierCounts,
    FrontierStatus,
    HostRow,
    Lease,
    LeaseBatch,
    Politeness,
    Request,
    RobotsState,
    backoff_rows,
)
from crawlpool.frontier.schedule import HostPacing, ReadyHosts, host_rows
from crawlpool.policy.pacing import HostEvent, HostPace
from crawlpool.records import Page


@dataclass(slots=True)
class _Host(HostPacing):
    queue: deque[Request] = field(default_factory=deque)


class MemoryFrontier:
    def __init__(self, politeness: Politeness, clock: Callable[[], float] = time.monotonic) -> None:
        self._politeness = politeness
        self._clock = clock
        self._seen: set[int] = set()
        self._hosts: dict[str, _Host] = {}
        self._ready = ReadyHosts(politeness.per_host)
        self._waiting: list[tuple[float, int, Request]] = []  # retries: (due, tie-break, request)
        self._leases: dict[int, Lease] = {}
        self._seq = 0
        self._queued = 0
        self._done = 0
        self._records: list[Page] = []
        self._meta: dict[str, str] = {}
        self._robots: dict[str, tuple[RobotsState, float]] = {}  # host -> (state, valid until)

    async def add(self, requests: Sequence[Request]) -> int:
        added = 0
        for request in requests:
            if request.fp in self._seen:
                continue
            self._seen.add(request.fp)
            host = self._host(request.host)
            host.queue.append(request)
            self._schedule(request.host, host)
            added += 1
        self._queued += added
        return added

    async def lease(self, limit: int) -> LeaseBatch:
        now = self._clock()
        self._promote_due_retries(now)
        leases: list[Lease] = []
        while len(leases) < limit and (name := self._ready.pop_due(now, self._hosts)) is not None:
            host = self._hosts[name]
            request = host.queue.popleft()
            host.in_flight += 1
            host.last_start = now
            self._seq += 1
            lease = Lease(request, token=self._seq)
            self._leases[lease.token] = lease
            leases.append(lease)
            self._schedule(name, host)
        self._queued -= len(leases)
        return LeaseBatch(leases, self._wait_s(now))

    async def ack(self, lease: Lease, page: Page) -> bool:
        if not self._end(lease):
            return False
        self._done += 1
        self._records.append(page)
        return True

    async def retry(self, lease: Lease, delay_s: float, *, self_redirect: bool = False) -> bool:
        if not self._end(lease):
            return False
        old = lease.request
        if self_redirect:
            request = replace(old, self_redirects=old.self_redirects + 1)
        else:
            request = replace(old, attempts=old.attempts + 1)
        self._seq += 1
        heapq.heappush(self._waiting, (self._clock() + delay_s, self._seq, request))
        self._queued += 1
        return True

    async def release(self, lease: Lease) -> bool:
        if not self._end(lease):
            return False
        host = self._hosts[lease.request.host]
        host.queue.appendleft(lease.request)
        self._queued += 1
        self._schedule(lease.request.host, host)
        return True

    async def settle(self, request: Request, page: Page) -> bool:
        if request.fp in self._seen:
            return False
        self._seen.add(request.fp)
        self._done += 1
        self._records.append(page)
        return True

    def is_current(self, lease: Lease) -> bool:
        return lease.token in self._leases

    async def observe(self, host: str, event: HostEvent) -> HostPace:
        state = self._host(host)
        due = state.due()
        state.observe(event, self._clock())
        if state.due() != due:  # most answers move only the latency baseline: no new heap entry
            self._ready.repace(host, state, bool(state.queue))
        return state.pace

    async def robots(self, host: str) -> RobotsState | None:
        held = self._robots.get(host)
        if held is None:
            return None
        state, until = held
        left = until - self._clock()
        if left <= (0 if state.reason is None else -ROBOTS_FAILURES_KEPT_S):
            del self._robots[host]
            return None
        return replace(state, valid_for_s=max(0.0, left))

    async def set_robots(self, host: str, state: RobotsState) -> None:
        self._robots[host] = (state, self._clock() + state.valid_for_s)

    async def counts(self) -> FrontierCounts:
        return FrontierCounts(
            seen=len(self._seen), queued=self._queued, leased=len(self._leases), done=self._done
        )

    async def host_rows(self, limit: int) -> list[HostRow]:
        return host_rows(self._hosts, lambda host: len(host.queue), self._clock(), limit)

    async def hosts_waiting(self) -> int:
        return self._ready.waiting(self._clock(), self._hosts)

    async def aclose(self) -> None:
        return None

    async def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    async def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    async def claim_meta(self, key: str, value: str) -> str | None:
        held = self._meta.get(key)
        if held is None:
            self._meta[key] = value
        return held

    async def committed_pages(self) -> AsyncIterator[Page]:
        for page in list(self._records):
            yield page

    async def status(self) -> FrontierStatus:
        failures = Counter(page.error_code for page in self._records if page.error_code)
        retrying = len(self._waiting)
        return FrontierStatus(
            state="finished" if self._queued == 0 and not self._leases else "running",
            done=self._done,
            seen=len(self._seen),
            queued=self._queued,
            retrying=retrying,
            in_flight=len(self._leases),
            pages_stored=sum(page.path is not None for page in self._records),
            failures=dict(failures),
            hosts=len(self._hosts),
            started=self._meta.get("started"),
            updated=self._meta.get("updated"),
            ended=self._meta.get("ended"),
            backoff=backoff_rows(
                (name, host.pace, host.blocked_until - self._clock()) for name, host in self._hosts.items()
            ),
        )

    def _host(self, name: str) -> _Host:
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = _Host(pace=HostPace(floor_s=self._politeness.delay_s))
        return host

    def _schedule(self, name: str, host: _Host) -> None:
        self._ready.offer(name, host, bool(host.queue))

    def _end(self, lease: Lease) -> bool:
        if self._leases.pop(lease.token, None) is None:
            return False
        name = lease.request.host
        host = self._hosts[name]
        host.in_flight -= 1
        self._schedule(name, host)
        return True

    def _promote_due_retries(self, now: float) -> None:
        while self._waiting and self._waiting[0][0] <= now:
            _, _, request = heapq.heappop(self._waiting)
            host = self._host(request.host)
            host.queue.appendleft(request)
            self._schedule(request.host, host)

    def _wait_s(self, now: float) -> float | None:
        due = [
            t
            for t in (self._ready.next_due(self._hosts), self._waiting[0][0] if self._waiting else None)
            if t is not None
        ]
        return max(0.0, min(due) - now) if due else None

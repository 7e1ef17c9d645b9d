"""Per-host politeness scheduling shared by the in-process backends (memory, SQLite).

Theory of operation. A host may be hit when fewer than `per_host` of its URLs are leased and its due
time has come: `max(last_start + delay_s, blocked_until)`. Hosts that have queued work and a free slot
sit in a heap keyed by their due time, so handing out work costs O(log hosts) per URL however many
hosts wait. A host has at most one live heap entry: its `entry` number names it, and an entry whose
number no longer matches (the host was re-paced or leased since) is skipped when it surfaces. The
backends keep the URLs themselves (a deque in memory, rows in SQLite) and say whether a host has work.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from crawlpool.frontier.base import HostRow
from crawlpool.policy.pacing import Answered, Blocked, HostEvent, HostPace, next_pace

NEVER = float("-inf")


@dataclass(slots=True)
class HostPacing:
    """One host's politeness state: its pacing (`HostPace`, whose `delay_s` spaces request starts),
    and the instants of its last start and of the end of a block, on the backend's clock."""

    pace: HostPace = field(default_factory=HostPace)
    in_flight: int = 0
    last_start: float = NEVER
    blocked_until: float = NEVER
    entry: int = 0  # number of the host's live entry in the ready heap; 0: none

    def due(self) -> float:
        return max(self.last_start + self.pace.delay_s, self.blocked_until)

    def observe(self, event: HostEvent, now: float) -> None:
        """Apply `event` (see `Frontier.observe`); the caller re-paces the host in the ready heap."""
        if isinstance(event, Blocked):
            self.blocked_until = max(self.blocked_until, now + event.for_s)
            return
        self.pace = next_pace(self.pace, event)
        if isinstance(event, Answered) and self.pace.delay_s > 0:
            self.last_start = max(self.last_start, request_start(event, now))


def request_start(answer: Answered, now: float) -> float:
    """When the answered request went out, at the latest: `last_start` is stamped when a URL is leased,
    but a worker may hold the lease a while before it sends (its own queue, a paused process), and the
    delay runs from the request the host saw. A URL never requested (elapsed 0, no status) started
    nothing. The redis frontier's apply_pace (prelude.lua) does the same."""
    if answer.status is None and answer.elapsed_ms == 0:
        return NEVER
    return now - answer.elapsed_ms / 1000


class ReadyHosts:
    """The heap of hosts that have work and a free slot, by due time."""

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._heap: list[tuple[float, int, str]] = []  # (due, entry number, host)
        self._entries = 0

    def offer(self, name: str, host: HostPacing, has_work: bool) -> None:
        """Give the host a heap entry if it has work and a free slot and has no live entry yet."""
        if host.entry or not has_work or host.in_flight >= self._per_host:
            return
        self._entries += 1
        host.entry = self._entries
        heapq.heappush(self._heap, (host.due(), host.entry, name))

    def repace(self, name: str, host: HostPacing, has_work: bool) -> None:
        """The host's due time changed: its entry is superseded by one with the new time."""
        host.entry = 0
        self.offer(name, host, has_work)

    def pop_due(self, now: float, hosts: Mapping[str, HostPacing]) -> str | None:
        """The next host whose turn has come, taken out of the heap (None: none is due)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, entry, name = heapq.heappop(heap)
            host = hosts[name]
            if host.entry == entry:
                host.entry = 0
                return name
        return None

    def waiting(self, now: float, hosts: Mapping[str, HostPacing]) -> int:
        """Hosts with work and a free slot whose turn has not come by `now` (a scan: for display only)."""
        return sum(1 for due, entry, name in self._heap if due > now and hosts[name].entry == entry)

    def next_due(self, hosts: Mapping[str, HostPacing]) -> float | None:
        """When the earliest host becomes due, or None when no host is waiting for its turn."""
        heap = self._heap
        while heap and hosts[heap[0][2]].entry != heap[0][1]:
            heapq.heappop(heap)  # superseded: the head must be a real due time
        return heap[0][0] if heap else None


H = TypeVar("H", bound=HostPacing)


def host_rows(hosts: Mapping[str, H], queued: Callable[[H], int], now: float, limit: int) -> list[HostRow]:
    """The `limit` busiest hosts (queued + in flight, then name) as dashboard rows."""
    busiest = heapq.nsmallest(
        limit, hosts.items(), key=lambda item: (-(queued(item[1]) + item[1].in_flight), item[0])
    )
    return [
        HostRow(name, queued(host), host.in_flight, host.pace, max(0.0, host.blocked_until - now))
        for name, host in busiest
    ]

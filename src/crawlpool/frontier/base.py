"""The Frontier protocol: what every backend (memory, sqlite, redis) promises the engine.

Theory of operation. A URL's life is  seen → queued → leased → done. `add` marks a URL seen and queues
it, once per fingerprint for the whole crawl. `lease` hands out queued URLs, but only those whose host may
be hit now: fewer than `per_host` of the host's URLs are leased, and `delay_s` has passed since the last
lease of that host started. Each lease carries a token; the holder ends it in exactly one of three ways:

- `ack(lease, page)`  — the commit point: the record is kept and the URL is done, in one step;
- `retry(lease, delay_s)` — the attempt failed transiently; the URL is queued again, due after delay_s
  (with `self_redirect=True`: it redirected to itself, and comes back at once without using an attempt);
- `release(lease)` — the URL was never tried (e.g. the crawl is stopping); it goes back as it was.

`settle(request, page)` is the fourth way a URL can end: one that must not be fetched at all (a trap)
is seen, done and recorded in one step, without ever being queued or leased.

A lease whose holder vanished (a crash) is returned to the queue by the backend: leases are
at-least-once, and `ack` is what makes each URL's record exactly-once. An empty `lease` answer does not
mean the crawl is finished — other URLs may be leased and about to add links; `counts()` says when it is.

Per-host pacing state (`policy.pacing.HostPace`: the floor, the adaptive extra delay, the latency
baseline) and Retry-After blocks belong to the frontier, one state per host for every worker: `observe`
applies `policy.pacing.next_pace` to it atomically, so two workers never undo each other's backoff, and
the SQLite and Redis backends keep it across a resume.

Times in this protocol are durations (`delay_s`, `wait_s`), never instants: each backend measures them
on its own clock (the injected one; wall time for SQLite, so that it survives a restart; Redis `TIME`),
so no two clocks are compared.

Beyond the URL lifecycle, every backend keeps what defines its crawl and what it committed, so that the
caller never needs to know which backend it holds: `get_meta` / `set_meta` / `claim_meta` (string keys
and values stored with the crawl: its identity, start and update times), `committed_pages` (the records
whose lines belong in this process's manifest, for the manifest's repair on resume) and `status` (one
`FrontierStatus`, whatever the backend).

robots.txt status is per-host state of the crawl too (`robots` / `set_robots`, one `RobotsState` per
host): every worker of a shared crawl reads what one of them fetched, the count of consecutive
"unavailable" answers is one count for all of them, and SQLite keeps it across a resume. Its validity is
a duration as well: the backend stores `now + valid_for_s` on its own clock and answers what is left.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from crawlpool.policy.pacing import Answered, HostEvent, HostPace
from crawlpool.records import Page

RequestKind = Literal["page", "sitemap", "requisite"]


@dataclass(frozen=True, slots=True)
class Request:
    """A URL to fetch. `url` is normalized; `fp` is its 64-bit fingerprint; seeds have depth 0; `host`
    is the politeness key (`urls.host_key`). `kind` is what the URL is fetched as: `page` (stored,
    its links followed) or `sitemap` (parsed as a sitemap, its URLs queued; its `depth` is its nesting
    level, 0 for a sitemap named by robots.txt or `/sitemap.xml`) or `requisite` (`--page-requisites`:
    stored, from any host, at its page's depth, never followed). `lastmod` is the `<lastmod>` a
    sitemap gave for a page, as written, or None."""

    url: str
    fp: int
    host: str
    depth: int
    referrer: str | None = None
    attempts: int = 0
    hops: int = 0  # redirects followed to reach this URL (0 for a link or a seed)
    self_redirects: int = 0  # times this URL redirected to itself and was fetched again
    kind: RequestKind = "page"
    lastmod: str | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to fetch `request` until the lease is acked, retried or released."""

    request: Request
    token: int


@dataclass(frozen=True, slots=True)
class LeaseBatch:
    """What `lease` handed out, and when more may be due: `wait_s` is the time until the next host's
    turn, or None when nothing queued becomes due by waiting alone (only a lease ending can free it)."""

    leases: list[Lease]
    wait_s: float | None


@dataclass(frozen=True, slots=True)
class Politeness:
    """Per-host limits the frontier enforces when it hands out work."""

    per_host: int = 2
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class FrontierCounts:
    seen: int
    queued: int
    leased: int
    done: int


CrawlState = Literal["running", "stopped", "finished"]


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """One worker of a shared (Redis) crawl: the host slots it leases, the URLs it has in flight,
    seconds since its last heartbeat (None: never seen), and whether that heartbeat is within the
    worker's lease (False: it stopped or was killed; its slots come back to the crawl), and the URLs it
    finished per second lately (None: not measured)."""

    worker_id: str
    slots: int
    in_flight: int
    heartbeat_age_s: float | None
    alive: bool = True
    urls_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class HostBackoff:
    """A host paced slower than the crawl asks, for `crawlpool status`: its delay between request
    starts, the adaptive part of it, and how long a block (Retry-After, robots.txt) still holds it."""

    host: str
    delay_s: float
    extra_s: float
    blocked_for_s: float = 0.0


@dataclass(frozen=True, slots=True)
class HostRow:
    """One host as the dashboard lists it: URLs queued (retries waiting included) and in flight, its
    pacing (`HostPace`) and how long a block (Retry-After, robots.txt unavailable) still holds it."""

    host: str
    queued: int
    in_flight: int
    pace: HostPace
    blocked_for_s: float = 0.0


MAX_BACKOFF_SHOWN = 10  # hosts listed by status: the most held back first


def backoff_rows(rows: Iterable[tuple[str, HostPace, float]]) -> tuple[HostBackoff, ...]:
    """The hosts of (host, pace, seconds still blocked) that are backed off or blocked, most held first."""
    held = [
        HostBackoff(host, pace.delay_s, pace.extra_s, max(0.0, blocked_s))
        for host, pace, blocked_s in rows
        if pace.extra_s > 0 or blocked_s > 0
    ]
    held.sort(key=lambda b: (-b.blocked_for_s, -b.delay_s, b.host))
    return tuple(held[:MAX_BACKOFF_SHOWN])


@dataclass(frozen=True, slots=True)
class FrontierStatus:
    """What `crawlpool status` shows of a crawl, the same for every backend.

    `state`: finished (nothing queued or in flight), running (a process is working on it) or stopped
    (work is left and no one is on it: `--resume` continues it). None is "this backend does not know":
    a SQLite crawl another process holds shows only `state` and `holder` (the pid) until it stops; a
    Redis crawl counts no pages stored, retries or hosts. `queued` includes `retrying` (URLs waiting
    for a retry's delay); `failures` counts done URLs by error code. `live_workers` is set only for a
    shared (Redis) crawl: how many workers have a heartbeat within their lease (running while any)."""

    state: CrawlState
    done: int | None = None
    seen: int | None = None
    queued: int | None = None
    retrying: int | None = None
    in_flight: int | None = None
    pages_stored: int | None = None
    failures: Mapping[str, int] | None = None
    hosts: int | None = None
    started: str | None = None
    updated: str | None = None
    ended: str | None = None  # how the last run ended (`outcome.Outcome`), when it said so
    holder: str | None = None
    crawl_id: str | None = None
    politeness: Politeness | None = None
    workers: tuple[WorkerStatus, ...] = field(default=())
    backoff: tuple[HostBackoff, ...] = field(default=())  # hosts paced slower than asked, or blocked
    live_workers: int | None = None


ROBOTS_FAILURES_KEPT_S = 86_400.0  # an unavailable state outlives its retry time this long, for its count


@dataclass(frozen=True, slots=True)
class RobotsState:
    """What the crawl knows of one host's robots.txt.

    `body` is the robots.txt text as fetched (already cut to whole lines within `ROBOTS_MAX_BYTES`;
    None: allow all). `reason` set means robots.txt was unavailable, `failures` times in a row.
    `valid_for_s`: for rules, the seconds left of the TTL; when unavailable, the seconds until asking
    again is worthwhile (0 when that time has come: the state is kept `ROBOTS_FAILURES_KEPT_S` past it,
    so that the next failure, whichever worker sees it, continues the count)."""

    body: str | None
    reason: str | None
    failures: int
    valid_for_s: float


@runtime_checkable
class PacesOnAck(Protocol):
    """A frontier that takes a host's answer with the URL's ack, in one step (Redis: one script per
    page instead of two)."""

    async def ack_answered(self, lease: Lease, page: Page, answer: Answered) -> bool:
        """`observe(lease.request.host, answer)`, then `ack(lease, page)`, as one step: the answer
        counts only when the ack does (so never twice when a call is sent again)."""
        ...


@runtime_checkable
class ConfirmsRecords(Protocol):
    """A frontier that drops committed records once the worker's manifest holds them (Redis)."""

    def confirm_with(self, sync: Callable[[], Awaitable[None]]) -> None:
        """Every record committed from now on gets its manifest line as soon as `ack` or `settle`
        returns True, and `sync()` makes the lines written so far durable."""


class Frontier(Protocol):
    async def add(self, requests: Sequence[Request]) -> int:
        """Queue each request whose fingerprint was never seen; return how many were new."""

    async def lease(self, limit: int) -> LeaseBatch:
        """Lease up to `limit` queued requests whose host may be hit now."""

    async def ack(self, lease: Lease, page: Page) -> bool:
        """Commit `page` as the record of the lease's URL. False: the lease was not current (stale or
        already ended) and nothing was committed — the caller must not publish the record."""

    async def retry(self, lease: Lease, delay_s: float, *, self_redirect: bool = False) -> bool:
        """Queue the URL again with one more attempt, due `delay_s` from now; with `self_redirect`, with
        one more self-redirect instead (no attempt used). False: the lease was not current."""

    async def release(self, lease: Lease) -> bool:
        """Give the URL back untried. False: the lease was not current."""

    async def settle(self, request: Request, page: Page) -> bool:
        """Record a URL that will never be fetched (a trap, a link robots.txt forbids), unless its
        fingerprint was seen before: it is marked seen and done with `page` as its record, in one step.
        False: it was already seen, nothing was recorded."""

    def is_current(self, lease: Lease) -> bool:
        """Whether the lease is still this process's to act on. False: it has ended, or (Redis) it may
        have been reaped while the process was paused; its request must not be sent."""

    async def observe(self, host: str, event: HostEvent) -> HostPace:
        """Apply what happened to `host` to its pacing state, atomically: `next_pace` for an answer or a
        Crawl-delay (its delay between lease starts becomes the new `delay_s`), a block of
        `event.for_s` from now on the backend's clock for `Blocked`. Returns the host's new pacing."""

    async def robots(self, host: str) -> RobotsState | None:
        """The robots.txt state of `host` with what is left of its validity, or None when it was never
        stored or has expired. An unavailable state whose retry time has come is still answered, with
        `valid_for_s` 0, for `ROBOTS_FAILURES_KEPT_S` after that time: its `failures` count goes on."""

    async def set_robots(self, host: str, state: RobotsState) -> None:
        """Store `state` as the robots.txt state of `host`, valid for `state.valid_for_s` from now on
        the backend's clock, replacing what it had."""

    async def counts(self) -> FrontierCounts: ...

    async def host_rows(self, limit: int) -> list[HostRow]:
        """The `limit` hosts with the most URLs queued or in flight, most first (for the dashboard)."""
        ...

    async def hosts_waiting(self) -> int:
        """Hosts with queued URLs whose turn has not come yet: spaced by their delay, backed off, or
        blocked (Retry-After, robots.txt unavailable). For the progress display; may cost a scan."""
        ...

    async def aclose(self) -> None: ...

    async def get_meta(self, key: str) -> str | None:
        """The value stored with the crawl under `key`, or None if it was never set."""

    async def set_meta(self, key: str, value: str) -> None:
        """Store `value` with the crawl under `key`, replacing any value it had."""

    async def claim_meta(self, key: str, value: str) -> str | None:
        """Store `value` under `key` unless the key holds a value already, in one atomic step; return
        the value it held (None: this call stored `value`). Of racing callers exactly one gets None."""

    def committed_pages(self) -> AsyncIterator[Page]:
        """The committed records (`ack`, `settle`) whose lines belong in this process's manifest, in
        commit order: every record of the crawl, or, for a crawl shared by workers (Redis), those of
        this worker (its worker id) that it still holds: it drops those the worker confirmed are in its
        manifest (`ConfirmsRecords`)."""
        ...

    async def status(self) -> FrontierStatus:
        """The crawl's state and numbers as `crawlpool status` shows them."""

"""The Redis frontier: one crawl shared by many processes on many machines.

Theory of operation. The unit of politeness is a *slot*: host `h` has `per_host` slots `h#0 … h#C-1`,
and a slot has at most one URL in flight, so no more than `per_host` URLs of a host are ever in flight,
across all workers. A worker leases a slot (`lease_slots`: it leaves `ready`, enters `leased` with a
deadline, and `owner` records the worker and a fresh fencing token from INCR), then hands out the
host's URLs through it one at a time (`take`), at most `urls_per_lease` of them, each only after the
previous one ended and the *host's* delay has passed since its last start (`last_start_ms`, shared by
all slots and all workers). When a URL ends (`ack` / `retry` / `release`) the worker keeps the slot if
the host's next URL may start right away, and otherwise frees it: the slot goes back to `ready` scored
with the time its next URL may start, so politeness carries over to whichever worker leases it next.
A slot is in `ready` only while its host has work (queued or waiting to retry) and no one leases it.

    free slot ──lease_slots──▶ leased, idle ──take──▶ leased, one URL in flight ──ack/retry/release──┐
        ▲          (token t)        ▲                                                               │
        │                           └──────────── kept: due now, under urls_per_lease ◀─────────────┤
        └───────── freed: scored with the host's next start (or dropped if it has no work) ◀────────┘

`Lease.token` is the slot lease's token. Every mutating step is one Lua script that checks it first:
a token that is no longer the slot owner's (the slot was reaped, freed, or the URL already ended)
gets STALE, and the method returns False — nothing changed. URLs are taken lazily, one per hand-out,
rather than K at once (a batch per lease): the protocol hands out URLs one by one and
spaces starts per host, so a prefetched batch would still need a server round trip per URL, and it
would starve the host's other slots (a host with 4 URLs and 5 slots must be able to serve 4 at once).
One exception saves a call per page: an ack that keeps its slot on a host without delay takes the
host's next URL in the same script (end.lua's NEXT), and the worker's next `lease` hands it out without
asking Redis. It is in flight under the slot's token like any other; `counts` shows it as queued until
`lease` hands it out, and `aclose` gives it back uncharged. Likewise an ack may carry the host's
answer (`ack_answered`, which the engine uses for answers that signal no overload): end.lua applies
it to the host's pacing first, as pace.lua would, in the same script, so a page costs one script
call instead of two; the answer counts only when the URL ends there, so never twice.

Key schema: redis_keys.py's docstring lists every key of a crawl, the records stored and the sizing of
the seen set. A crawl has B key buckets, fixed when it is created (1 by default on one server, 16 on a
Redis Cluster): a host and everything of its URLs live in one bucket, whose keys share one hash tag,
so every script touches one Cluster slot and the buckets spread over the cluster's nodes. Adding a
page's links is one `add` per bucket its links' hosts fall in, all sent before the page's ack; a
worker leases from the buckets in turn (skipping those it recently found with nothing due), and the
heartbeat and the reaper visit each bucket. With B = 1 every key is under the one tag `{crawl_id}`.

Done, across buckets: each bucket counts its queued and leased URLs in its own hash, and a URL moves
between buckets only by `add` (a page of bucket A adding links in bucket B), which counts in B's
`seen`. `is_done` reads every bucket's (seen, queued, leased) twice (each read is one atomic HMGET);
the crawl is done when all queued and leased are 0 in both passes and no `seen` moved between them:
then no bucket received work between its two reads, so at the moment the first pass ended every
bucket was empty at once. A page's links are added before its ack, so the crawl cannot look empty
while they are on their way.

Records: each worker's records go to its own stream in the bucket that served the URL (`records:<w>`
there: B streams per worker), and each of those is trimmed as the worker's manifest confirms its
records (`confirm_with`, `confirm_records`): redis_trim.py says how, and what bounds them. Stream ids
are per stream (each node's clock), so the worker's claim is kept per bucket, and readers (`status`,
`committed_pages`) visit every bucket's streams.

Scripts: each step is one Lua script, `lua/<name>.lua`, whose header names its KEYS, ARGV and reply
(redis_scripts.py loads them, redis_calls.py builds their KEYS and ARGV); all times in them are Redis
`TIME` in ms (see "Clock"). The script calls that a worker's tasks make in one turn of the event loop
go to Redis as one pipeline (redis_pipeline.py): one round trip for many pages' steps. The reaper
(`expired` + `reclaim`, every few seconds on every worker, no coordinator) re-checks each deadline
inside `reclaim`, so of two racing reapers only one requeues.

When a worker dies, its slots stay leased until their deadline (lease_ms) passes; the next reap by any
worker requeues their URLs (front of the queue, one attempt charged) and frees the slots. What it
acked stays done; what it fetched but never acked is fetched again. A worker restarted with the same
explicit `worker_id` reclaims its old slots at once when it opens. A worker that only paused (GC,
SIGSTOP, a partition) and wakes is a zombie: its heartbeat reports the reaped slots lost and its acks
return False, so it can publish no duplicate record.

Waiting: `lease` answers `wait_s` = the time until the earliest free slot is due, or None when
nothing comes due by waiting alone — but only if no other worker holds a slot. While others do, it
answers at most 1 s: their URLs may end or add links at any time, and this process cannot see that.

Clock: with no `clock`, every time is Redis `TIME`, so no two machines' clocks are compared. An
injected `clock` (seconds, for tests such as the contract suite's FakeClock) replaces `TIME`: its
value is passed to every script as `now_ms`. Every worker of a crawl must then share that clock.

Redis connection and server errors are raised as `FrontierError`; redis-py's own retries are off,
because re-sending a script whose reply was lost could run it twice. If an `ack` fails that way and is
called again with the same lease, an ALREADY answer (the first attempt did commit) counts as success.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from crawlpool.errors import ConfigError, FrontierError, StorageError
from crawlpool.frontier.base import (
    MAX_BACKOFF_SHOWN,
    ROBOTS_FAILURES_KEPT_S,
    FrontierCounts,
    FrontierStatus,
    HostRow,
    Lease,
    LeaseBatch,
    Politeness,
    Request,
    RobotsState,
)
from crawlpool.frontier.redis_buckets import (
    COUNTERS,
    BucketViews,
    merged_meta,
    stream_ms,
    summed,
    summed_hashes,
)
from crawlpool.frontier.redis_calls import Calls
from crawlpool.frontier.redis_connection import (
    REDIS_ERRORS,
    Client,
    connect,
    frontier_error,
    is_cluster,
    server_version,
    with_retries,
)
from crawlpool.frontier.redis_connection import safe_url as _safe_url
from crawlpool.frontier.redis_hosts import redis_host_rows
from crawlpool.frontier.redis_keys import META as _META
from crawlpool.frontier.redis_keys import Keys as _Keys
from crawlpool.frontier.redis_keys import Layout, seen_bucket, slot_host
from crawlpool.frontier.redis_records import decode, encode, worker_pages
from crawlpool.frontier.redis_scripts import LuaScript, Scripts, source
from crawlpool.frontier.redis_slots import HeldSlots
from crawlpool.frontier.redis_status import RATE_SCAN, RATE_WINDOW_MS, build_status, recent_rates
from crawlpool.frontier.redis_tasks import start_every
from crawlpool.frontier.redis_trim import Claims, id_key
from crawlpool.policy.pacing import Answered, Blocked, FloorRaised, HostEvent, HostPace
from crawlpool.records import Page

log = logging.getLogger(__name__)

SCHEMA = 1
MIN_SERVER_VERSION = (6, 2)
# A slot counts as held only within this part of a lease period after its deadline was last pushed:
# the heartbeat runs every third of a period, so a live worker stays well inside it.
_FRESH_FRACTION = 0.75
_ADD_CHUNK = 500  # requests per add script: keeps each script short so it never stalls the server
_REAP_BATCH = 100
_LEASE_ROUNDS = 4  # lease() retries while due slots remain and fewer than `limit` URLs came out
WAITING_SCAN = 10_000  # free slots hosts_waiting looks at
_POLL_S = 1.0  # wait_s when other workers hold slots: their lease endings are not seen here
# How long one bucket's answer that no slot is due while others hold slots is trusted: lease() comes
# with each page a worker ends, and at 4 simulated workers four calls in five asked Redis in vain
# (about 3% of its instructions per page). A slot another worker frees waits at most this long; one
# this worker frees, not at all.
_TRUST_ONE_S = 0.05
CLUSTER_BUCKETS = 16  # key buckets of a crawl created on a Redis Cluster: a few per node

# The scripts are lua/*.lua (see redis_scripts.py); open() registers init before a frontier exists.
_INIT = source("init")


class RedisFrontier:
    """A Frontier shared through Redis by every worker of one crawl; see the module docstring.

    Open it with `await RedisFrontier.open(...)` and end it with `aclose()`. Beyond the protocol it
    offers `is_done`, `heartbeat` and `reap` (the last two also run in the background).
    """

    def __init__(
        self,
        client: Client,
        *,
        url: str,
        crawl_id: str,
        worker_id: str,
        per_host: int,
        delay_ms: int,
        seen_bits: int,
        lease_ms: int,
        urls_per_lease: int,
        clock: Callable[[], float] | None,
        buckets: int = 1,
    ) -> None:
        self._client = client
        self._scripts = Scripts(client, per_host=per_host, delay_ms=delay_ms, urls_per_lease=urls_per_lease)
        self._url = _safe_url(url)
        self._layout = layout = Layout(crawl_id, buckets)
        self._keys = layout.crawl  # the crawl-wide keys (with one bucket, that bucket's too)
        self._calls = Calls(worker_id, seen_bits, lease_ms, layout)
        self._views = BucketViews(buckets, _POLL_S, _TRUST_ONE_S)
        self._view_clock = clock or time.monotonic  # the views' time: the crawl's clock when injected
        self.crawl_id = crawl_id
        self.worker_id = worker_id
        self._per_host = per_host
        self._delay_ms = delay_ms
        self._seen_bits = seen_bits
        self._lease_ms = lease_ms
        self._urls_per_lease = urls_per_lease
        self._clock = clock
        self._slots = HeldSlots()  # the slots this worker leases, with their tokens
        # URLs an ack handed out through the slot it kept (end.lua's NEXT), for the next lease() call
        self._next: deque[Lease] = deque()
        # (token, fp) of acks whose reply was lost → the `after` of the first try: its record, if it
        # committed, is above that id of the worker's stream, and an ack sent again must look there.
        self._ambiguous: dict[tuple[int, int], str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._observer = False  # opened with observe=True: never writes, even on close
        # How far this worker's records are in its manifest, per bucket stream (redis_trim.py)
        self._claims = [Claims() for _ in range(buckets)]
        self._sync: Callable[[], Awaitable[None]] | None = None  # fsyncs the manifest (confirm_with)

    @classmethod
    async def open(
        cls,
        url: str,
        crawl_id: str,
        politeness: Politeness,
        *,
        worker_id: str | None = None,
        lease_ms: int = 60_000,
        urls_per_lease: int = 10,
        clock: Callable[[], float] | None = None,
        seen_bucket_bits: int = 14,
        observe: bool = False,
        buckets: int | None = None,
    ) -> RedisFrontier:
        """Join crawl `crawl_id` in the Redis at `url` (redis:// or rediss://, or a Redis Cluster at
        redis+cluster:// or rediss+cluster://, naming any one of its nodes), creating it if new.

        The crawl's politeness and `seen_bucket_bits` are fixed by the first worker that opens it;
        later workers use the stored values (a different `politeness` is logged and ignored).
        `buckets` (key buckets, see the module docstring) is fixed by the first worker too; None gives
        1 on one server and CLUSTER_BUCKETS on a cluster.
        `worker_id` defaults to hostname:pid; give a stable one (machine + process slot) so that a
        restarted worker reclaims its old leases at once instead of after their expiry.
        `clock` (seconds) replaces Redis TIME — for tests only; every worker must then share it.
        `observe=True` opens an existing crawl only to read it (`crawlpool status`): nothing is written
        (no crawl is created, no config stored, no slot reclaimed), `politeness` is not compared, and no
        heartbeat or reaper runs, so the observer never appears as a worker.
        Raises FrontierError when Redis cannot be reached or is older than 6.2.
        """
        if not crawl_id or any(c in crawl_id for c in "{}"):
            raise ConfigError(f"redis frontier: crawl id {crawl_id!r} must be non-empty, without braces")
        if politeness.per_host < 1 or lease_ms < 1 or urls_per_lease < 1:
            raise ConfigError("redis frontier: per_host, lease_ms and urls_per_lease must be at least 1")
        if not 0 <= seen_bucket_bits <= 24:
            raise ConfigError("redis frontier: seen_bucket_bits must be between 0 and 24")
        if buckets is None:
            buckets = CLUSTER_BUCKETS if is_cluster(url) else 1
        if not 1 <= buckets <= 1024:
            raise ConfigError("redis frontier: buckets must be between 1 and 1024")
        safe = _safe_url(url)
        try:
            client = connect(url, retry=False)  # see the module docstring: a lost reply is not resent
        except ValueError as exc:
            raise ConfigError(f"redis frontier: bad URL {safe}: {exc}") from None
        try:
            version, version_text = await server_version(client)
            if version < MIN_SERVER_VERSION:
                raise FrontierError(
                    f"redis frontier: {safe} runs Redis {version_text}; 6.2 or later is needed"
                )
            keys = _Keys(crawl_id)
            delay_ms = round(politeness.delay_s * 1000)
            fields = ["schema", "per_host", "delay_ms", "seen_bits", "buckets"]
            if observe:  # read only: the crawl's config is read back, never written
                if not await client.exists(keys.meta):
                    raise FrontierError(f"redis frontier: {safe} holds no crawl {crawl_id!r}")
                stored = await client.hmget(keys.meta, fields)
            else:
                now = "" if clock is None else str(round(clock() * 1000))
                init = client.register_script(_INIT)
                init_args: list[str | int] = [
                    now,
                    SCHEMA,
                    politeness.per_host,
                    delay_ms,
                    seen_bucket_bits,
                    buckets,
                ]
                stored = await init(keys=[keys.meta], args=init_args)
        except (*REDIS_ERRORS, OSError) as exc:
            await client.aclose()
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise FrontierError(f"redis frontier: cannot use {safe}: {reason}") from None
        except FrontierError:
            await client.aclose()
            raise
        schema, per_host, stored_delay_ms, seen_bits = (int(v or 0) for v in stored[:4])
        stored_buckets = int(stored[4] or 1)  # a crawl from before buckets has none: one
        if schema != SCHEMA:
            await client.aclose()
            raise FrontierError(f"redis frontier: crawl {crawl_id!r} has schema {schema}, expected {SCHEMA}")
        if not observe and (per_host, stored_delay_ms) != (politeness.per_host, delay_ms):
            log.warning(
                "crawl %s keeps the politeness it was created with: per_host=%d delay_s=%g",
                crawl_id,
                per_host,
                stored_delay_ms / 1000,
            )
        frontier = cls(
            client,
            url=url,
            crawl_id=crawl_id,
            worker_id=worker_id or f"{socket.gethostname()}:{os.getpid()}",
            per_host=per_host,
            delay_ms=stored_delay_ms,
            seen_bits=seen_bits,
            lease_ms=lease_ms,
            urls_per_lease=urls_per_lease,
            clock=clock,
            buckets=stored_buckets,
        )
        if observe:
            frontier._observer = True
            return frontier
        try:
            # How long this worker's heartbeat stays fresh, for `status`.
            await frontier._call(client.hset(keys.leases, frontier.worker_id, str(lease_ms)))
            joins = [frontier._trim(b, "join") for b in range(frontier._layout.n)]
            raise_first(
                await asyncio.gather(
                    frontier._run(frontier._scripts.beat, *frontier._calls.beat(frontier._now())),
                    *joins,
                    return_exceptions=True,
                )
            )
            if worker_id is not None:
                await frontier._reclaim_mine()
            # Crawls begun before acks were found in the records streams kept their ids in a sorted
            # set per bucket, which nothing reads now: let it go (one key per call: a cluster's slots).
            for bucket in frontier._layout.buckets:
                await frontier._call(client.unlink(bucket.prefix + "acks"))
        except FrontierError:
            await client.aclose()
            raise
        frontier._start_background()
        return frontier

    # -- the protocol -------------------------------------------------------------------------------

    async def add(self, requests: Sequence[Request]) -> int:
        """Queue each request whose fingerprint was never seen in this crawl (by any worker); return
        how many were new. Each chunk of 500 of one bucket's requests is one atomic step (the chunks
        are sent together), and add is idempotent."""
        groups: dict[int, list[Request]] = {}
        for request in await self._not_seen(requests):
            groups.setdefault(self._layout.bucket_of(request.host), []).append(request)
        calls = []
        for bucket, group in groups.items():
            keys = self._layout.buckets[bucket]
            for start in range(0, len(group), _ADD_CHUNK):
                call = self._calls.add(keys, self._now(), group[start : start + _ADD_CHUNK])
                calls.append(self._run(self._scripts.add, *call))
        added = sum(int(n) for n in await asyncio.gather(*calls))
        if added:
            for bucket in groups:
                self._views.added(bucket, self._view_clock())
        return added

    async def _not_seen(self, requests: Sequence[Request]) -> list[Request]:
        """The requests not in the seen set, by one SISMEMBER each (sent with the turn's other calls).
        A link that another worker queued is common (each worker's known-links cache is its own), and
        in add.lua's arguments a request cost Redis about five times the read (22k against 4k
        instructions, callgrind). add.lua still decides atomically; this only drops what is seen for
        good (it never shrinks). The price: an add with new links waits for two round trips in turn."""
        if not requests:
            return []

        async def read() -> list[Any]:
            command = self._scripts.pipeliner.command
            return list(
                await asyncio.gather(
                    *(command("SISMEMBER", self._seen_key(request), str(request.fp)) for request in requests)
                )
            )

        members = await with_retries(read, self._url, self._lease_ms / 1000)
        return [request for request, member in zip(requests, members, strict=True) if not member]

    def _seen_key(self, request: Request) -> str:
        keys = self._layout.buckets[self._layout.bucket_of(request.host)]
        return keys.seen(seen_bucket(request.fp, self._seen_bits))

    async def lease(self, limit: int) -> LeaseBatch:
        """Up to `limit` URLs whose host may be hit now. `wait_s` is None only when nothing can come
        due by waiting and no other worker holds a slot (their lease endings are not seen here)."""
        leases: list[Lease] = []
        while self._next and len(leases) < limit:
            leases.append(self._next.popleft())
        if len(leases) >= limit:
            return LeaseBatch(leases, 0.0)
        for attempt in range(2):
            started = self._view_clock()
            for _ in range(_LEASE_ROUNDS):
                want = limit - len(leases)
                held = self._slots.claim_idle(want)
                new: list[tuple[str, int]] = []
                if want > len(held) or not held:
                    new = await self._lease_slots(max(0, want - len(held)))
                if not held and not new:
                    break
                leases.extend(await self._take(held, new, want))
                if len(leases) >= limit or not self._views.any_due(self._view_clock()):
                    break
            wait_s = await self._wait_s(started)
            # Nothing came out, yet a bucket asked only for its wait says something is due now: the
            # views the rounds went by were older than that answer (seen on a cluster): go once more.
            if leases or wait_s != 0.0 or attempt:
                return LeaseBatch(leases, wait_s)
        raise AssertionError("unreachable")

    async def ack(self, lease: Lease, page: Page) -> bool:
        """Commit `page` as the URL's record. False: the lease was not current and nothing was
        committed (the slot was reaped from this worker, or the lease had already ended)."""
        return await self._end(lease, "ack", page.to_json(), page.error_code or "ok")

    async def ack_answered(self, lease: Lease, page: Page, answer: Answered) -> bool:
        """`observe` of the host's answer and `ack`, in one script (end.lua): the answer counts only
        when the ack commits, so a call sent again never counts it twice (PacesOnAck)."""
        return await self._end(lease, "ack", page.to_json(), page.error_code or "ok", answer)

    async def retry(self, lease: Lease, delay_s: float, *, self_redirect: bool = False) -> bool:
        """Queue the URL again with one more attempt (or self-redirect), due `delay_s` from now.
        False: not current."""
        old = lease.request
        if self_redirect:
            again = replace(old, self_redirects=old.self_redirects + 1)
        else:
            again = replace(old, attempts=old.attempts + 1)
        return await self._end(lease, "retry", encode(again), str(max(0, round(delay_s * 1000))))

    async def release(self, lease: Lease) -> bool:
        """Put the URL back at the front of its host's queue, untried. False: not current."""
        return await self._end(lease, "release", "", "")

    async def settle(self, request: Request, page: Page) -> bool:
        """Record a URL that will never be fetched, unless some worker already saw it (one script)."""
        bucket = self._layout.bucket_of(request.host)
        call = self._calls.settle(
            self._layout.buckets[bucket], request, page.to_json(), page.error_code or "ok"
        )
        claims = self._claims[bucket]
        sent = claims.sent()
        record_id = await self._run(self._scripts.settle, *call)
        claims.answered(sent, bool(record_id), str(record_id) if record_id else None)
        return bool(record_id)

    async def observe(self, host: str, event: HostEvent) -> HostPace:
        """Apply `event` to the host's pacing in one script (lua/pace.lua, `next_pace` in Lua): one
        state for every worker of the crawl, so two workers' backoffs add up."""
        keys = self._layout.of(host)
        q, d, cfg, _ = keys.host(host)
        args: list[str | int] = [self._now(), host]
        if isinstance(event, Blocked):
            args += ["block", max(0, round(event.for_s * 1000)), "", ""]
        elif isinstance(event, FloorRaised):
            if not math.isfinite(event.floor_s):  # pace.lua would store it: the host's delay ruined
                raise ValueError(f"a floor of {event.floor_s!r} s is no delay (the caller caps Crawl-delay)")
            args += ["floor", repr(event.floor_s), "", ""]
        else:
            status = "" if event.status is None else event.status
            args += ["answer", status, event.elapsed_ms, event.error_code or ""]
        script_keys = [keys.ready, keys.leased, q, d, cfg, keys.paced]
        reply = await self._run(self._scripts.pace, script_keys, args)
        return HostPace.from_json(json.loads(reply))

    async def robots(self, host: str) -> RobotsState | None:
        """The host's robots.txt state: one STRING key of JSON that Redis expires by itself (PX), so the
        time left (PTTL) is measured on the server's clock, the same for every worker. An unavailable
        state lives `ROBOTS_FAILURES_KEPT_S` longer than its retry time (JSON `kept_ms`), for its count."""
        key = self._layout.of(host).robots(host)
        pipe = self._client.pipeline(transaction=True)
        pipe.get(key)
        pipe.pttl(key)
        value, left_ms = await self._call(pipe.execute())
        if value is None or left_ms <= 0:
            return None
        held = json.loads(value)
        valid_ms = max(0, left_ms - int(held["kept_ms"]))
        return RobotsState(held["body"], held["reason"], int(held["failures"]), valid_ms / 1000)

    async def set_robots(self, host: str, state: RobotsState) -> None:
        kept_ms = 0 if state.reason is None else round(ROBOTS_FAILURES_KEPT_S * 1000)
        value = json.dumps(
            {"body": state.body, "reason": state.reason, "failures": state.failures, "kept_ms": kept_ms}
        )
        px = max(1, round(state.valid_for_s * 1000)) + kept_ms
        await self._call(self._client.set(self._layout.of(host).robots(host), value, px=px))

    async def counts(self) -> FrontierCounts:
        """The crawl's numbers across all workers; `queued` includes retries waiting for their time."""
        total = summed(await self._bucket_counts())
        # URLs handed out by an ack but not yet by lease() are still queued, as far as the caller knows.
        waiting = len(self._next)
        return FrontierCounts(
            total["seen"], total["queued"] + waiting, total["leased"] - waiting, total["done"]
        )

    async def host_rows(self, limit: int) -> list[HostRow]:
        now_ms = await self._now_ms()
        default = HostPace(floor_s=self._delay_ms / 1000)
        rows = await asyncio.gather(
            *(
                redis_host_rows(self._client, keys, self._call, now_ms, limit, default)
                for keys in self._layout.buckets
            )
        )
        merged = [row for bucket_rows in rows for row in bucket_rows]
        merged.sort(key=lambda row: (-(row.queued + row.in_flight), row.host))
        return merged[:limit]

    async def hosts_waiting(self) -> int:
        """Hosts whose free slots are scored later than now on Redis' clock (at most the first
        `WAITING_SCAN` slots are looked at: a display figure, not worth a long scan)."""
        now_ms = await self._now_ms()
        found = await asyncio.gather(
            *(
                self._call(
                    self._client.zrangebyscore(keys.ready, f"({now_ms}", "+inf", start=0, num=WAITING_SCAN)
                )
                for keys in self._layout.buckets
            )
        )
        return len({slot_host(slot) for slots in found for slot in slots})

    async def aclose(self, *, release: bool = True) -> None:
        """Stop the heartbeat and the reaper, give this worker's slots back (URLs still out go back
        to the front of their queue, uncharged) and close the client. `release=False` leaves the
        slots to expire and be reaped, as after a crash (for tests and drills)."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            if release and not self._observer:
                try:
                    await self.confirm_records(leaving=True)
                except FrontierError as exc:  # the slots still go back: they matter more
                    log.warning("worker %s could not confirm its records: %s", self.worker_id, exc)
                if self._slots.tokens:
                    await self._reclaim(list(self._slots.tokens.items()), "release")
                await self._call(self._client.zrem(self._keys.workers, self.worker_id))
                await self._call(self._client.hdel(self._keys.leases, self.worker_id))
        except FrontierError as exc:
            log.warning("could not give back the leases of worker %s: %s", self.worker_id, exc)
        finally:
            self._slots.clear()
            self._next.clear()
            await self._client.aclose()

    # -- beyond the protocol ------------------------------------------------------------------------

    async def is_done(self) -> bool:
        """True when nothing is queued and no URL is leased by any worker; the first caller to see it
        moves the crawl's state from running to done. Adding a new URL later makes it running again.
        With several buckets, see "Done, across buckets" in the module docstring."""
        if self._layout.n > 1:
            first = await self._bucket_counts(["seen", "queued", "leased"])
            if any(int(queued or 0) or int(leased or 0) for _, queued, leased in first):
                return False
            if await self._bucket_counts(["seen", "queued", "leased"]) != first:
                return False
        # One bucket: its counters are in meta, read with the state's compare-and-set. Several: meta's
        # counters stay 0, so this only sets the state.
        return bool(await self._run(self._scripts.is_done, [self._keys.meta], [self._now()]))

    async def get_meta(self, key: str) -> str | None:
        """The crawl's value under `key` (field `m:<key>` of its meta hash), or None."""
        value: str | None = await self._call(self._client.hget(self._keys.meta, _META + key))
        return value

    async def set_meta(self, key: str, value: str) -> None:
        await self._call(self._client.hset(self._keys.meta, _META + key, value))

    async def claim_meta(self, key: str, value: str) -> str | None:
        """Set `key` unless some worker did (HSETNX); the value, once there, is never replaced by a
        claim, so reading it after a lost race returns the winner's."""
        if await self._call(self._client.hsetnx(self._keys.meta, _META + key, value)):
            return None
        held: str | None = await self._call(self._client.hget(self._keys.meta, _META + key))
        return held

    def committed_pages(self) -> AsyncIterator[Page]:
        """The records this worker (its worker id) committed that its streams `records:<worker>` still
        hold, bucket after bucket, in commit order within each, read in batches. The streams are
        trimmed once records are in the worker's manifest, so these are all the records of this worker
        that its manifest may lack."""
        return self._committed_pages()

    async def _committed_pages(self) -> AsyncIterator[Page]:
        # Bucket after bucket: commit order holds within a bucket (a host's pages are in one).
        for keys in self._layout.buckets:
            async for page in worker_pages(
                self._records_reader(keys.records(self.worker_id)), self.worker_id
            ):
                yield page

    def _records_reader(self, records: str) -> Callable[[str, int], Awaitable[Any]]:
        return lambda after, n: self._call(self._client.xrange(records, min=after, max="+", count=n))

    def confirm_with(self, sync: Callable[[], Awaitable[None]]) -> None:
        """From now on, every record this worker commits has its manifest line written as soon as
        `ack` / `settle` returns True, and `sync()` makes the lines written so far durable: the worker
        then confirms its records every lease / 3, so its records stream can be trimmed."""
        if self._sync is None and not self._observer:
            self._sync = sync
            self._tasks.append(start_every("records", self._lease_ms / 3000, self.confirm_records))

    async def confirm_records(self, *, leaving: bool = False) -> None:
        """Fsync the manifest, then send this worker's claim on each bucket's stream of its and trim
        that stream (see redis_trim.py); a bucket whose trim fails keeps its claim for the next time.
        `leaving`: the worker stops here; a stream with nothing held is claimed whole."""
        if self._sync is None:
            return
        synced = [claims.unsynced() for claims in self._claims]
        try:
            await self._sync()
        except StorageError as exc:
            log.warning("records not confirmed: %s", exc)
            return
        trims = []
        for bucket, claims in enumerate(self._claims):
            held = claims.claim(synced[bucket])
            claim = "leave" if leaving and held is None else held or claims.known
            if claim is not None:
                trims.append(self._trim(bucket, claim))
        raise_first(await asyncio.gather(*trims, return_exceptions=True))

    async def status(self) -> FrontierStatus:
        """Counts across all workers, failures by error code, the politeness, and the workers alive or
        holding slots, with their slots, URLs in flight and seconds since their last heartbeat. The crawl
        is running while a worker's heartbeat is fresh (within that worker's lease), stopped otherwise."""
        keys, client = self._keys, self._client
        meta: dict[str, str] = await self._call(client.hgetall(keys.meta))
        if self._layout.n > 1:
            meta = merged_meta(meta, summed(await self._bucket_counts()))
        done_by = summed_hashes(await self._each(lambda k: client.hgetall(k.done_by)))
        owners = {
            slot: o
            for part in await self._each(lambda k: client.hgetall(k.owner))
            for slot, o in part.items()
        }
        beats: list[tuple[str, float]] = await self._call(client.zrange(keys.workers, 0, -1, withscores=True))
        leases: dict[str, str] = await self._call(client.hgetall(keys.leases))
        now_ms = await self._now_ms()
        last_ms, recent = await self._recent_records(now_ms)
        # The hosts pace.lua indexes as held back, latest block first over all buckets.
        held_back = await self._each(
            lambda k: client.zrevrange(k.paced, 0, MAX_BACKOFF_SHOWN - 1, withscores=True)
        )
        ranked = sorted(((score, host) for part in held_back for host, score in part), reverse=True)
        paced: list[tuple[str, str | None, str | None]] = []
        for _, host in ranked[:MAX_BACKOFF_SHOWN]:
            pace, blocked = await self._call(
                client.hmget(self._layout.of(host).host(host)[2], ["pace", "blocked_until_ms"])
            )
            paced.append((host, pace, blocked))
        return build_status(
            meta,
            done_by,
            owners,
            beats,
            paced,
            now_ms,
            crawl_id=self.crawl_id,
            per_host=self._per_host,
            delay_ms=self._delay_ms,
            leases=leases,
            last_record_ms=last_ms,
            rates=recent_rates(recent, now_ms),
        )

    async def _recent_records(self, now_ms: int) -> tuple[int | None, list[tuple[str, Any]]]:
        """The time of the crawl's last record (ms) and its records of the last RATE_WINDOW_MS, newest
        first (at most RATE_SCAN), from every bucket's stream of each worker that ever opened (the
        bucket's `claims`)."""
        since = str(now_ms - RATE_WINDOW_MS)
        workers: list[list[str]] = await self._each(lambda k: self._client.hkeys(k.claims))

        async def read(keys: _Keys, names: list[str]) -> list[list[tuple[str, Any]]]:
            if not names:
                return []
            pipe = self._client.pipeline(transaction=False)  # one bucket: one slot, one node
            for worker in names:
                pipe.xrevrange(keys.records(worker), count=1)
                pipe.xrevrange(keys.records(worker), max="+", min=since, count=RATE_SCAN)
            replies: list[list[tuple[str, Any]]] = await self._call(pipe.execute())
            return replies

        parts = await asyncio.gather(
            *(read(k, w) for k, w in zip(self._layout.buckets, workers, strict=True))
        )
        replies = [reply for part in parts for reply in part]
        lasts = [entries[0][0] for entries in replies[0::2] if entries]
        last_ms = max(map(stream_ms, lasts)) if lasts else None
        # Newest first, as one stream (ids of different nodes compare by their clocks' ms)
        recent = sorted((e for entries in replies[1::2] for e in entries), key=lambda e: id_key(e[0]))
        return last_ms, recent[::-1][:RATE_SCAN]

    def is_current(self, lease: Lease) -> bool:
        """False when this worker cannot be sure it still holds the lease's host slot: it was lost, or
        no call has pushed its deadline forward for most of a lease period (the process was paused,
        e.g. SIGSTOP or a long GC). The request must not be sent then: another worker may hold the
        host by now, and a stale request would break the host's politeness."""
        age_s = self._slots.age_s(lease.token, lease.request.host)
        return age_s is not None and age_s < self._lease_ms / 1000 * _FRESH_FRACTION

    async def _trim(self, bucket: int, claim: str) -> None:
        """trim.lua on this worker's stream in `bucket`, with its claim there."""
        call = self._calls.trim(self._layout.buckets[bucket], self._now(), claim)
        self._claims[bucket].saw(str(await self._run(self._scripts.trim, *call)))

    async def heartbeat(self) -> list[str]:
        """Extend every slot this worker holds; return the slots it lost (reaped while it paused),
        which it forgets: their URLs' acks will return False. Runs every lease_ms/3 in the background."""
        pairs = list(self._slots.tokens.items())
        sent_at = time.monotonic()
        groups = self._by_bucket(pairs)
        steps = [
            self._run(self._scripts.extend, *self._calls.extend(self._layout.buckets[b], self._now(), group))
            for b, group in groups.items()
        ]
        steps.append(self._run(self._scripts.beat, *self._calls.beat(self._now())))
        replies = await asyncio.gather(*steps, return_exceptions=True)
        # Buckets are separate steps: the slots of a bucket whose extend failed are left as they were.
        lost: list[str] = []
        for group, reply in zip(groups.values(), replies, strict=False):
            if not isinstance(reply, BaseException):
                lost += reply
                self._slots.touch((slot for slot, _ in group), sent_at)
        tokens = dict(pairs)
        for slot in lost:
            self._slots.forget(slot, tokens[slot])
        if lost:
            gone = {tokens[slot] for slot in lost}
            self._next = deque(lease for lease in self._next if lease.token not in gone)
        if lost:
            log.warning("worker %s lost %d host slot(s) to the reaper", self.worker_id, len(lost))
        raise_first(replies)
        return lost

    async def reap(self) -> int:
        """Requeue the URLs of slots whose lease expired (any worker's) and free those slots; return
        how many URLs were requeued. Safe to race with other reapers. Runs in the background."""
        found = await asyncio.gather(
            *(
                self._run(self._scripts.expired, [keys.leased], [self._now(), _REAP_BATCH])
                for keys in self._layout.buckets
            )
        )
        expired: list[str] = [slot for slots in found for slot in slots]
        if not expired:
            return 0
        moved = await self._reclaim([(slot, 0) for slot in expired], "expired")
        if moved:
            log.info("requeued %d URL(s) from %d expired host slot(s)", moved, len(expired))
        return moved

    # -- internals ----------------------------------------------------------------------------------

    def _now(self) -> str:
        return "" if self._clock is None else str(round(self._clock() * 1000))

    async def _now_ms(self) -> int:
        """Now on the crawl's clock: Redis TIME, or the injected clock."""
        if self._clock is not None:
            return round(self._clock() * 1000)
        seconds, micros = await self._call(self._client.time())
        return int(seconds) * 1000 + int(micros) // 1000

    async def _run(
        self,
        script: LuaScript,
        keys: list[str],
        args: list[str | int],
        on_retry: Callable[[], None] | None = None,
    ) -> Any:
        # A worker rides out a lost Redis for one lease: by then its host slots are the others' anyway.
        outage_s = self._lease_ms / 1000
        return await with_retries(lambda: script(keys=keys, args=args), self._url, outage_s, on_retry)

    async def _call(self, pending: Any) -> Any:
        try:
            return await pending
        except REDIS_ERRORS as exc:
            raise frontier_error(self._url, exc) from exc

    def _by_bucket(self, slots: Sequence[tuple[str, int]]) -> dict[int, list[tuple[str, int]]]:
        groups: dict[int, list[tuple[str, int]]] = {}
        for slot, token in slots:
            groups.setdefault(self._layout.bucket_of(slot_host(slot)), []).append((slot, token))
        return groups

    async def _each(self, read: Callable[[_Keys], Any]) -> list[Any]:
        """`read(keys)` of every bucket, sent together (one pipeline per node)."""
        return list(await asyncio.gather(*(self._call(read(keys)) for keys in self._layout.buckets)))

    async def _bucket_counts(self, fields: Sequence[str] = COUNTERS) -> list[Any]:
        """Each bucket's counters (strings or None), one atomic HMGET per bucket."""
        return await self._each(lambda keys: self._client.hmget(keys.counts, list(fields)))

    async def _lease_slots(self, n: int) -> list[tuple[str, int]]:
        """Lease up to n due slots from the buckets that may have some: n split among the first n
        of them, then the next ones while slots are missing (one bucket: all n from it, once)."""
        left = self._views.candidates(self._view_clock(), len(self._slots.tokens))
        slots: list[tuple[str, int]] = []
        while left and len(slots) < n:
            want = n - len(slots)
            asked, left = left[:want], left[want:]
            share = -(-want // len(asked))
            sent_at, seen_at = time.monotonic(), self._view_clock()
            calls = [
                self._calls.lease_slots(b, self._now(), min(share, want - i * share))
                for i, b in enumerate(asked)
            ]
            replies = await asyncio.gather(
                *(self._run(self._scripts.lease_slots, *call) for call in calls), return_exceptions=True
            )
            got: list[tuple[str, int]] = []
            for b, reply in zip(asked, replies, strict=True):
                if isinstance(reply, BaseException):
                    continue
                pairs, (wait_ms, leased_slots) = reply
                self._views.seen(b, int(wait_ms), int(leased_slots), seen_at)
                got += [(str(pairs[i]), int(pairs[i + 1])) for i in range(0, len(pairs), 2)]
            self._slots.hold(got, sent_at)  # held even if another bucket failed: released or extended
            slots += got
            if any(isinstance(reply, BaseException) for reply in replies):
                self._slots.idle.update(dict.fromkeys(slot for slot, _ in slots))  # served by a later lease
                raise_first(replies)
        return slots

    async def _take(self, held: list[tuple[str, int]], new: list[tuple[str, int]], limit: int) -> list[Lease]:
        """One take per bucket of the slots; `limit` is shared out in bucket order (a slot serves at
        most one URL, so a bucket is given no more than its slots)."""
        groups: dict[int, list[tuple[str, int, str]]] = {}
        for kind, pairs in (("h", held), ("n", new)):
            for slot, token in pairs:
                groups.setdefault(self._layout.bucket_of(slot_host(slot)), []).append((slot, token, kind))
        calls, left = [], limit
        for b, group in groups.items():
            calls.append(
                (
                    b,
                    group,
                    self._calls.take(self._layout.buckets[b], self._now(), group, min(left, len(group))),
                )
            )
            left -= min(left, len(group))
        replies = await asyncio.gather(
            *(self._take_in(b, group, call) for b, group, call in calls), return_exceptions=True
        )
        leases = [lease for reply in replies if not isinstance(reply, BaseException) for lease in reply]
        if any(isinstance(reply, BaseException) for reply in replies):
            # URLs other buckets handed out are in flight under this worker: the next lease serves them.
            self._next.extend(leases)
            raise_first(replies)
        return leases

    async def _take_in(self, bucket: int, slots: list[tuple[str, int, str]], call: Any) -> list[Lease]:
        seen_at = self._view_clock()
        try:
            results, (wait_ms, leased_slots) = await self._run(self._scripts.take, *call)
        except FrontierError:
            # Whether the take ran is unknown: stop extending these slots, so that any URL it took
            # comes back through the reaper instead of staying leased to no one.
            for slot, token, _ in slots:
                self._slots.forget(slot, token)
            raise
        self._views.seen(bucket, int(wait_ms), int(leased_slots), seen_at)
        leases: list[Lease] = []  # a take pushes no deadline: the slots' freshness stays as it was
        for (slot, token, _), result in zip(slots, results, strict=True):
            if result == "SKIP":
                self._slots.idle[slot] = None
            elif result in ("FREED", "STALE"):
                self._slots.forget(slot, token)
            elif result != "BUSY":
                leases.append(Lease(decode(result), token))
        return leases

    async def _wait_s(self, started: float) -> float | None:
        if self._slots.idle or self._next:
            return 0.0  # held slots whose next URL may start now, or was handed out already
        now = self._view_clock()
        wait_s = self._views.wait_s(now, len(self._slots.tokens))
        unasked = self._views.unasked_since(started)
        if (wait_s is None or self._views.any_stale(now)) and unasked:
            # "Nothing comes due" must rest on every bucket's answer to this very call, and a wait on
            # answers older than POLL_S would be a guess: ask those buckets (n = 0: only the wait).
            sent_at = self._view_clock()
            calls = [self._calls.lease_slots(b, self._now(), 0) for b in unasked]
            replies = await asyncio.gather(*(self._run(self._scripts.lease_slots, *call) for call in calls))
            for b, (_, (wait_ms, leased_slots)) in zip(unasked, replies, strict=True):
                self._views.seen(b, int(wait_ms), int(leased_slots), sent_at)
            wait_s = self._views.wait_s(self._view_clock(), len(self._slots.tokens))
        return wait_s

    async def _end(
        self, lease: Lease, mode: str, payload: str, extra: str, answer: Answered | None = None
    ) -> bool:
        request = lease.request
        bucket = self._layout.bucket_of(request.host)
        keys, claims = self._layout.buckets[bucket], self._claims[bucket]
        attempt = (lease.token, request.fp)
        after = self._ambiguous.get(attempt) or claims.known or "0-0"
        call = self._calls.end(
            keys,
            self._now(),
            request,
            lease.token,
            mode,
            payload,
            extra,
            next_url=not self._closed,
            after=after,
            answer=answer,
        )
        sent = claims.sent() if mode == "ack" else None

        def lost_a_reply() -> None:
            # The script may have run: an ALREADY from the next try then means this very ack committed.
            if mode == "ack":
                self._ambiguous.setdefault(attempt, after)
            self._slots.forget_token(lease.token)

        try:
            reply = await self._run(self._scripts.end, *call, lost_a_reply)
        except FrontierError:
            if mode == "ack":
                if len(self._ambiguous) > 10_000:
                    self._ambiguous.clear()
                self._ambiguous.setdefault(attempt, after)
            # The slot's state is unknown: stop extending it; a later end that succeeds adopts it again.
            self._slots.forget_token(lease.token)
            raise
        status = reply[0]
        if status == "ALREADY":
            committed = attempt in self._ambiguous  # the earlier call, whose reply was lost, committed it
            self._ambiguous.pop(attempt, None)
            if sent is not None:
                claims.answered(sent, committed)
            return committed
        if status == "STALE":
            if sent is not None:
                claims.answered(sent, False)
            return False
        self._ambiguous.pop(attempt, None)
        if sent is not None:  # the caller writes the record's manifest line as soon as this returns
            claims.answered(sent, True, str(reply[-1]))
        slot = str(reply[1])
        if status == "FREED" or mode != "ack":
            # A freed slot, a retry or a release may leave the bucket a slot due: ask it next time.
            self._views.added(bucket, self._view_clock())
        if status == "NEXT":  # the slot's deadline is the heartbeat's to push, as for a kept slot
            self._slots.adopt(slot, lease.token)  # its token may have been forgotten after a lost reply
            self._next.append(Lease(decode(reply[2]), lease.token))
        elif status == "KEPT":
            self._slots.keep(slot, lease.token)
        else:
            self._slots.forget(slot, lease.token)
        return True

    async def _reclaim(self, slots: list[tuple[str, int]], mode: str) -> int:
        calls = [
            self._calls.reclaim(self._layout.buckets[b], self._now(), group, mode)
            for b, group in self._by_bucket(slots).items()
        ]
        moved = sum(
            int(n) for n in await asyncio.gather(*(self._run(self._scripts.reclaim, *c) for c in calls))
        )
        for slot, token in slots:
            if mode == "release":
                self._slots.forget(slot, token)
        return moved

    async def _reclaim_mine(self) -> None:
        """At start-up, take back at once the slots an earlier process with this worker id held."""
        parts = await self._each(lambda keys: self._client.hgetall(keys.owner))
        owners = {slot: raw for part in parts for slot, raw in part.items()}
        mine = [(slot, 0) for slot, raw in owners.items() if json.loads(raw).get("w") == self.worker_id]
        if mine:
            moved = await self._reclaim(mine, "mine")
            log.info(
                "worker %s reclaimed %d slot(s) and %d URL(s) of its last run",
                self.worker_id,
                len(mine),
                moved,
            )

    def _start_background(self) -> None:
        self._tasks.append(start_every("heartbeat", self._lease_ms / 3000, self.heartbeat))
        self._tasks.append(start_every("reaper", min(5.0, self._lease_ms / 2000), self.reap))


def raise_first(replies: Sequence[object]) -> None:
    """Raise the first exception among the replies of steps sent together, if any."""
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply

"""The crawl loop: one feeder leasing work from the frontier, N workers fetching it.

    frontier ──lease──▶ feeder ──▶ asyncio.Queue ──▶ worker × concurrency
        ▲                                             │ fetch → store body → extract links
        └──────────── add(links), then ack(record) ◀──┘ → manifest line → on_page

The feeder leases only as many URLs as there are idle workers (and as `max_pages` still allows), so
nothing leased waits long in the queue and a lease's start is its request's start. Links are added
before the record is acked: once a URL is acked its children are already in the frontier, so "nothing
queued and nothing leased" really means the crawl is over (`crawl_is_finished`). The feeder never polls:
it waits for a worker to end a lease, or for the frontier's next host to become due.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from crawlpool.config import CrawlConfig
from crawlpool.errors import FrontierError, StorageError
from crawlpool.fetch import REDIRECT_STATUSES, Fetcher, FetchError, Response
from crawlpool.frontier import Frontier, FrontierCounts, Lease, Request
from crawlpool.links import is_html
from crawlpool.parsing import LinkParser
from crawlpool.paths import page_path
from crawlpool.politeness import HostPace
from crawlpool.progress import Snapshot
from crawlpool.records import Page
from crawlpool.retries import backoff_s, parse_retry_after
from crawlpool.robots import RobotsCache, RobotsUnavailable
from crawlpool.scope import Scope
from crawlpool.stats import CrawlStats
from crawlpool.store import Manifest, PageStore
from crawlpool.traps import TrapLimits, trap_reason
from crawlpool.urls import fingerprint, host_key, normalize_url

log = logging.getLogger(__name__)

MAX_REDIRECT_HOPS = 20
KNOWN_LINKS_MAX = 200_000  # ~12 MB of fingerprints; past it the cache starts over
MAX_SELF_REDIRECTS = 3  # a page redirecting to itself is fetched again this many times at most
# Statuses whose Retry-After means "the whole host, not just this URL" (RFC 9110 §10.2.3).
RETRY_AFTER_STATUSES = frozenset({429, 503})


def crawl_is_finished(counts: FrontierCounts, stored: int, max_pages: int | None) -> bool:
    """The one rule for the end of a crawl: nothing is leased (so no worker can add links), and either
    nothing is queued or `max_pages` pages are stored."""
    if counts.leased:
        return False
    return counts.queued == 0 or (max_pages is not None and stored >= max_pages)


def make_request(url: str, depth: int, referrer: str | None, hops: int = 0) -> Request:
    """A frontier request for a normalized URL."""
    return Request(url, fingerprint(url), host_key(url), depth, referrer, hops=hops)


class Engine:
    def __init__(
        self,
        config: CrawlConfig,
        *,
        frontier: Frontier,
        fetcher: Fetcher,
        store: PageStore,
        manifest: Manifest,
        scope: Scope,
        on_page: Callable[[Page], None],
        robots: RobotsCache | None = None,
        parser: LinkParser | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._frontier = frontier
        self._fetcher = fetcher
        self._store = store
        self._manifest = manifest
        self._scope = scope
        self._on_page = on_page
        self._robots = robots
        self._parser = parser or LinkParser(config.parser, 0)
        self._traps = TrapLimits(config.max_url_chars, config.max_segments, config.max_repeats)
        self._clock = clock
        self._rng = rng or random.Random()
        self.stats = CrawlStats()
        self._active = 0  # leases handed to workers and not yet ended
        self._changed = asyncio.Event()
        self._paces: dict[str, HostPace] = {}
        self._hosts_in_flight: Counter[str] = Counter()
        # Fingerprints of links already handed to the frontier by this process, so that the ~95% of a
        # page's links seen before cost a set lookup instead of a Request and a frontier query.
        self._known: set[int] = set()
        self._fatal: BaseException | None = None  # a worker's fatal error, raised by the feeder
        self._started = clock()

    async def snapshot(self) -> Snapshot:
        """The crawl's counters now, for the progress display (one frontier round trip)."""
        counts = await self._frontier.counts()
        return Snapshot(
            pages=self.stats.pages,
            records=self.stats.records,
            discovered=counts.seen,
            queued=counts.queued,
            in_flight=self._active,
            bytes=self.stats.bytes,
            errors=dict(self.stats.by_error),
            hosts_active=len(self._hosts_in_flight),
            hosts_waiting=0,  # the frontier does not report it yet
            elapsed_s=self._clock() - self._started,
            max_pages=self._config.max_pages,
        )

    async def run(self, seeds: Sequence[str]) -> CrawlStats:
        self._started = started = self._clock()
        await self._frontier.add([make_request(url, 0, None) for url in seeds])
        queue: asyncio.Queue[Lease | None] = asyncio.Queue()
        workers = [asyncio.create_task(self._work(queue)) for _ in range(self._config.concurrency)]
        for worker in workers:
            worker.add_done_callback(self._note_worker_failure)
        try:
            await self._feed(queue)
            self._end_workers(queue, workers)
            await asyncio.gather(*workers)
        except asyncio.CancelledError:
            await self._stop_gracefully(queue, workers)
            raise
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.stats.elapsed_s = self._clock() - started
        return self.stats

    async def _stop_gracefully(
        self, queue: asyncio.Queue[Lease | None], workers: list[asyncio.Task[None]]
    ) -> None:
        """The crawl was cancelled (SIGINT/SIGTERM in the CLI): take no new work, give back what no
        worker started, and let requests in flight finish for up to `grace_s`. A second cancellation
        ends the wait at once; the workers then give their leases back (see `_work`), and whatever
        they could not give back a later `--resume` reclaims."""
        while not queue.empty():
            lease = queue.get_nowait()
            if lease is not None:
                await self._frontier.release(lease)
                self._lease_ended(lease)
        self._end_workers(queue, workers)
        log.warning(
            "stopping: letting %d requests in flight finish (up to %g s)", self._active, self._config.grace_s
        )
        _, pending = await asyncio.wait(workers, timeout=self._config.grace_s)
        if pending:
            log.warning(
                "stopping: %d requests did not finish in time; they go back to the frontier", len(pending)
            )

    def _end_workers(self, queue: asyncio.Queue[Lease | None], workers: list[asyncio.Task[None]]) -> None:
        for _ in workers:
            queue.put_nowait(None)  # each worker leaves after the lease it holds

    async def _feed(self, queue: asyncio.Queue[Lease | None]) -> None:
        while True:
            if self._fatal is not None:
                raise self._fatal
            self._changed.clear()  # any lease ending from here on wakes the wait below
            free = self._free_slots()
            wait_s: float | None = None
            if free > 0:
                batch = await self._frontier.lease(free)
                for lease in batch.leases:
                    self._active += 1
                    self._hosts_in_flight[lease.request.host] += 1
                    queue.put_nowait(lease)
                if batch.leases:
                    continue
                wait_s = batch.wait_s
            if self._active == 0:
                counts = await self._frontier.counts()
                if crawl_is_finished(counts, self.stats.pages, self._config.max_pages):
                    return
                if wait_s is None:
                    raise RuntimeError(f"frontier stalled: {counts} with nothing in flight")
            await self._wait_for_change(wait_s)

    def _free_slots(self) -> int:
        free = self._config.concurrency - self._active
        if self._config.max_pages is not None:
            free = min(free, self._config.max_pages - self.stats.pages - self._active)
        return free

    async def _wait_for_change(self, timeout_s: float | None) -> None:
        if timeout_s is None:
            await self._changed.wait()
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._changed.wait()
        except TimeoutError:
            pass  # the frontier's next host is due now

    async def _work(self, queue: asyncio.Queue[Lease | None]) -> None:
        try:
            while (lease := await queue.get()) is not None:
                try:
                    await self._process(lease)
                except asyncio.CancelledError:
                    # Stopped mid-request: the URL goes back untried (False if it was already acked).
                    await self._frontier.release(lease)
                    raise
                except (StorageError, FrontierError) as exc:  # the crawl cannot go on
                    # Set before `finally` wakes the feeder, which raises it (done callbacks run later).
                    self._fatal = self._fatal or exc
                    raise
                except Exception as exc:  # the one place an unexpected error becomes data
                    log.exception("unexpected error while crawling %s", lease.request.url)
                    error = f"internal: {type(exc).__name__}: {exc}"
                    await self._commit(lease, self._unfetched(lease.request, error))
                finally:
                    self._lease_ended(lease)
        finally:
            self._changed.set()  # if the frontier or the manifest failed, the feeder raises it

    def _note_worker_failure(self, worker: asyncio.Task[None]) -> None:
        if not worker.cancelled() and worker.exception() is not None and self._fatal is None:
            self._fatal = worker.exception()

    def _lease_ended(self, lease: Lease) -> None:
        self._active -= 1
        host = lease.request.host
        self._hosts_in_flight[host] -= 1
        if not self._hosts_in_flight[host]:
            del self._hosts_in_flight[host]
        self._changed.set()

    async def _process(self, lease: Lease) -> None:
        request = lease.request
        if self._robots is not None and not await self._robots_allow(lease):
            return
        if not self._frontier.is_current(lease):
            log.warning("lease of %s was lost while this process was paused; not fetching it", request.url)
            return  # another worker has the host now; the URL comes back to whoever holds it
        response = await self._fetcher.fetch(request.url)
        self.stats.requests += 1
        retry_after_s = await self._pace_host(request.host, response)
        if response.retryable and request.attempts < self._config.retries:
            delay_s = backoff_s(request.attempts, self._rng, self._config.retry_backoff_s)
            await self._frontier.retry(lease, max(delay_s, retry_after_s or 0.0))
            self.stats.retries += 1
            log.info("retrying %s after %s", request.url, response.error)
            return
        if self._redirects_to_itself(request, response):
            # A page that redirects to itself (often to set a cookie) is fetched again, a few times.
            await self._frontier.retry(lease, 0.0)
            return
        await self._commit(lease, await self._record(request, response))

    def _redirects_to_itself(self, request: Request, response: Response) -> bool:
        if response.status not in REDIRECT_STATUSES or not response.location:
            return False
        target = normalize_url(response.location, request.url)
        return target == request.url and request.attempts < MAX_SELF_REDIRECTS

    async def _robots_allow(self, lease: Lease) -> bool:
        """Apply the host's robots.txt (fetched first if needed). False: the lease has been ended here
        (recorded as blocked, or given back to wait for robots.txt or for the host's next turn)."""
        assert self._robots is not None
        request = lease.request
        fetched_now = not self._robots.known(request.url)
        verdict = await self._robots.rules_for(request.url)
        if isinstance(verdict, RobotsUnavailable):
            if verdict.failures > self._config.retries:
                await self._commit(lease, self._unfetched(request, f"robots: {verdict.reason}"))
            else:
                await self._frontier.pace_host(request.host, blocked_for_s=verdict.retry_in_s)
                await self._frontier.release(lease)
            return False
        if verdict.crawl_delay_s is not None and self._pace(request.host).raise_floor(verdict.crawl_delay_s):
            await self._frontier.pace_host(request.host, delay_s=self._pace(request.host).delay_s)
        if not verdict.allows(request.url):
            self.stats.robots_blocked += 1
            await self._commit(lease, self._unfetched(request, "robots: disallowed by robots.txt"))
            return False
        delay_s = self._pace(request.host).delay_s
        if fetched_now and delay_s > 0:
            # The robots.txt request used this host's turn; the page waits a whole delay from now
            # (the robots request started after the lease did, so the lease's start is not enough).
            await self._frontier.pace_host(request.host, blocked_for_s=delay_s)
            await self._frontier.release(lease)
            return False
        return True

    def _pace(self, host: str) -> HostPace:
        pace = self._paces.get(host)
        if pace is None:
            pace = self._paces[host] = HostPace(floor_s=self._config.delay_s)
        return pace

    async def _pace_host(self, host: str, response: Response) -> float | None:
        """Slow the host down when it struggles (see politeness.py), and hold all of its URLs back
        for a Retry-After. Returns the Retry-After in seconds, if any."""
        pace = self._pace(host)
        if pace.observe(response.status, response.elapsed_ms):
            await self._frontier.pace_host(host, delay_s=pace.delay_s)
        if response.status not in RETRY_AFTER_STATUSES:
            return None
        retry_after_s = parse_retry_after(response.retry_after, time.time())
        if retry_after_s:
            await self._frontier.pace_host(host, blocked_for_s=retry_after_s)
        return retry_after_s

    async def _commit(self, lease: Lease, page: Page) -> None:
        if not await self._frontier.ack(lease, page):
            log.warning("lease of %s was no longer current; its record was dropped", page.url)
            return
        await self._publish(page)

    async def _publish(self, page: Page) -> None:
        """A committed record goes to the manifest, the counters and the caller."""
        self._manifest.append(page)
        self.stats.count(page)
        if page.error is not None:
            log.info("%s: %s", page.url, page.error, extra={"url": page.url, "code": page.error_code})
        self._on_page(page)

    async def _record(self, request: Request, response: Response) -> Page:
        """Store what came back, queue its links, and describe it as a manifest record."""
        final_url = request.url
        error = response.error
        path = sha256 = None
        links = 0
        if response.status in REDIRECT_STATUSES:
            final_url, error = await self._follow_redirect(request, response)
        elif response.body and (error is None or error.code == "too_large"):
            path = page_path(request.url)
            sha256 = await self._store.write(path, response.body)
            if is_html(response.content_type):
                links = await self._add_links(request, response)
        return Page(
            url=request.url,
            final_url=final_url,
            status=response.status,
            content_type=response.content_type,
            depth=request.depth,
            referrer=request.referrer,
            path=path,
            bytes=len(response.body) if path is not None else 0,
            sha256=sha256,
            fetched_at=_utc_now(),
            elapsed_ms=response.elapsed_ms,
            error=str(error) if error is not None else None,
            links=links,
        )

    async def _add_links(self, request: Request, response: Response) -> int:
        found = [
            url
            for url in await self._parser.links(response.body, request.url, response.content_type)
            if self._scope.allows(url)
        ]
        depth = request.depth + 1
        if self._config.max_depth is not None and depth > self._config.max_depth:
            return len(found)
        follow = []
        known = self._known
        for url in found:
            fp = fingerprint(url)
            if fp in known:
                continue  # most links of a page were handed to the frontier before: skip the round trip
            known.add(fp)
            new = Request(url, fp, host_key(url), depth, request.url)
            reason = trap_reason(url, self._traps)
            if reason is None:
                follow.append(new)
            else:
                await self._settle_trap(new, reason)
        if len(known) > KNOWN_LINKS_MAX:
            known.clear()  # a cache, not the seen set: the frontier still deduplicates
        if follow:
            await self._frontier.add(follow)
        return len(found)

    async def _settle_trap(self, request: Request, reason: str) -> None:
        """Record a trap link once (it is never queued, so never requested)."""
        page = self._unfetched(request, f"trap: {reason}")
        if await self._frontier.settle(request, page):
            self.stats.traps += 1
            await self._publish(page)

    async def _follow_redirect(self, request: Request, response: Response) -> tuple[str, FetchError | None]:
        """Queue the redirect's target as a URL of its own, one hop further (same depth: a redirect is
        not a link), so it is scope-, trap- and robots-checked and deduplicated like any link, and
        fetched in its host's turn. The record's `final_url` is the target. A target already seen is
        not fetched again (its own record says what it holds). Returns (final_url, error)."""
        if not response.location:
            return request.url, FetchError("redirect", f"{response.status} without a Location")
        target = normalize_url(response.location, request.url)
        if target is None:
            return request.url, FetchError("redirect", "Location is not an http(s) URL")
        if target == request.url:
            return target, FetchError("redirect_loop", f"redirects to itself {MAX_SELF_REDIRECTS + 1} times")
        if request.hops > 0 and target == request.referrer:
            return target, FetchError("redirect_loop", "redirects back to the URL that redirected here")
        if request.hops >= MAX_REDIRECT_HOPS:
            return target, FetchError("redirect", f"more than {MAX_REDIRECT_HOPS} redirects in a row")
        if not self._scope.allows(target):
            return target, FetchError("off_scope", "redirect target is outside the crawl's scope")
        reason = trap_reason(target, self._traps)
        if reason is not None:
            return target, FetchError("trap", f"redirect target: {reason}")
        await self._frontier.add([make_request(target, request.depth, request.url, request.hops + 1)])
        return target, None

    def _unfetched(self, request: Request, error: str) -> Page:
        """The record of a URL that got no response of its own (robots, trap, an internal error)."""
        return Page(
            url=request.url,
            final_url=request.url,
            status=None,
            content_type=None,
            depth=request.depth,
            referrer=request.referrer,
            path=None,
            bytes=0,
            sha256=None,
            fetched_at=_utc_now(),
            elapsed_ms=0,
            error=error,
            links=0,
        )


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

"""The crawl loop: one feeder leasing work from the frontier, N workers carrying out the policy's actions.

    frontier ──lease──▶ feeder ──▶ asyncio.Queue ──▶ worker × concurrency
        ▲                                             │ robots → fetch → store body → extract links
        └──── observe, add(links), ack(record) ◀──────┘ → manifest line → on_page

This module decides nothing about a URL: every decision (robots.txt, retries and Retry-After, redirects,
links, traps, depth, pacing) is made by the pure functions of `crawlpool.policy`, which return actions
as data; a worker only carries them out (`_carry_out`). What stays here is orchestration: the feeder
leases only as many URLs as there are idle workers (and as `max_pages` still allows), so nothing leased
waits long in the queue and a lease's start is its request's start. Links are added before the record is
acked: once a URL is acked its children are already in the frontier, so "nothing queued and nothing
leased" really means the crawl is over (`crawl_is_finished`). The feeder never polls: it waits for a
worker to end a lease, or for the frontier's next host to become due.

A failure of the crawl's own state (`FrontierError`) or of the output directory (`StorageError`) is
never a URL's error: the worker stops, and the feeder raises it, which ends the crawl.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from crawlpool.config import CrawlConfig
from crawlpool.errors import FrontierError, StorageError
from crawlpool.fetch import Fetcher, Response
from crawlpool.frontier import Frontier, FrontierCounts, Lease, PacesOnAck, Request
from crawlpool.links import is_html
from crawlpool.parsing import LinkParser
from crawlpool.paths import page_path
from crawlpool.policy.actions import (
    Action,
    Enqueue,
    Fetch,
    PaceHost,
    Record,
    Refetch,
    Release,
    Retry,
    SettleTrap,
)
from crawlpool.policy.pacing import OVERLOAD_STATUSES, Answered
from crawlpool.policy.rules import (
    Rules,
    links_to_follow,
    make_request,
    on_link,
    on_requisite,
    on_response,
    on_robots,
)
from crawlpool.policy.sitemap_rules import root_sitemaps
from crawlpool.progress import Snapshot
from crawlpool.records import Page
from crawlpool.recrawl import Recrawl
from crawlpool.requisites import css_requisites, html_requisites, is_css
from crawlpool.robots import RobotsCache, RobotsRules, RobotsUnavailable
from crawlpool.scope import Scope
from crawlpool.sitemap_feed import SitemapFeed
from crawlpool.stats import CrawlStats
from crawlpool.store import Manifest, PageStore
from crawlpool.traps import TrapLimits
from crawlpool.urls import fingerprint, host_key
from crawlpool.warc import BuiltExchange, WarcWriter

log = logging.getLogger(__name__)

# Fetch errors meaning the host itself is out of reach (said once per host while the crawl runs).
HOST_DOWN = frozenset({"dns", "connect", "tls"})
FOREIGN_LEASE_POLL_S = 1.0  # how often to ask again while only other processes' leases are out
KNOWN_LINKS_MAX = 200_000  # ~25 MB of URLs at most; past it the cache starts over


def crawl_is_finished(counts: FrontierCounts, stored: int, max_pages: int | None) -> bool:
    """The one rule for the end of a crawl: nothing is leased (so no worker can add links), and either
    nothing is queued or `max_pages` pages are stored."""
    if counts.leased:
        return False
    return counts.queued == 0 or (max_pages is not None and stored >= max_pages)


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
        recrawl: Recrawl | None = None,
        archive: WarcWriter | None = None,
        finished: Callable[[FrontierCounts], bool] | None = None,
    ) -> None:
        self._config = config
        self._frontier = frontier
        # Checked once: a runtime Protocol check costs microseconds, and it would run twice per page.
        self._paces_on_ack = frontier if isinstance(frontier, PacesOnAck) else None
        self._fetcher = fetcher
        self._store = store
        self._manifest = manifest
        self._scope = scope
        self._on_page = on_page
        self._robots = robots
        self._archive = archive
        self._parser = parser or LinkParser(config.parser, 0)
        self._rules = Rules(
            scope=scope,
            traps=TrapLimits(config.max_url_chars, config.max_segments, config.max_repeats),
            max_depth=config.max_depth,
            retries=config.retries,
            retry_backoff_s=config.retry_backoff_s,
            delay_s=config.delay_s,
        )
        self._clock = clock
        self._rng = rng or random.Random()
        self.stats = CrawlStats()
        self._active = 0  # leases handed to workers and not yet ended
        self._changed = asyncio.Event()
        self._hosts_in_flight: Counter[str] = Counter()
        # Links already handed to the frontier by this process, so that the ~95% of a page's links seen
        # before cost a set lookup instead of a Request and a frontier query. By URL, not fingerprint:
        # a link's string is hashed once, where fingerprinting it first cost four times as much.
        self._known: set[str] = set()
        self._fatal: BaseException | None = None  # a worker's fatal error, raised by the feeder
        self._told: set[str] = set()  # hosts whose trouble was said once at the default verbosity
        # For the dashboard: each host's last error (error, url), and when the feeder, with nothing
        # to lease, expects the next host to be due (None: it is not waiting for a host's turn).
        self.last_errors: dict[str, tuple[str, str]] = {}
        self.due_at: float | None = None
        self.finished = False  # run() has returned or raised: stats.outcome says how it ended
        # Hosts whose sitemaps this process queued (--sitemaps); after a resume they are queued again,
        # and the frontier drops them as seen.
        self._sitemap_hosts: set[str] = set()
        self._recrawl = recrawl  # --update: the previous run, asked before each fetch and each ack
        self._started = clock()
        # Work done by other processes of this crawl (`multiproc`): their leases count against the
        # crawl's limits here, they are told when a lease ends here, and this process's share of the
        # crawl's request slots (`slots`) shrinks when they start. A worker process is given the
        # `finished` rule of the first process, which alone knows every page stored.
        self.slots = config.concurrency
        self.elsewhere: Elsewhere | None = None
        self._finished = finished
        self.tells_records = True  # False in a worker process: the first process logs what it commits

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @property
    def frontier(self) -> Frontier:
        return self._frontier

    @property
    def robots(self) -> RobotsCache | None:
        return self._robots

    @property
    def config(self) -> CrawlConfig:
        return self._config

    async def snapshot(self) -> Snapshot:
        """The crawl's counters now, for the progress display (one frontier round trip)."""
        counts = await self._frontier.counts()
        robots_waiting, robots_retry_s = self._robots.waiting() if self._robots is not None else (0, None)
        hosts_waiting = await self._frontier.hosts_waiting()
        return Snapshot(
            pages=self.stats.pages,
            records=self.stats.records,
            discovered=counts.seen,
            queued=counts.queued,
            in_flight=self._active + (self.elsewhere.in_flight if self.elsewhere is not None else 0),
            bytes=self.stats.bytes,
            errors=dict(self.stats.by_error),
            hosts_active=len(
                self._hosts_in_flight.keys() | self.elsewhere.hosts.keys()
                if self.elsewhere is not None
                else self._hosts_in_flight
            ),
            hosts_waiting=hosts_waiting,
            # A host whose robots.txt was given up on stays in the cache but has no URL left waiting.
            hosts_robots=min(robots_waiting, hosts_waiting),
            robots_retry_s=robots_retry_s,
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
            await self._conclude()
        except asyncio.CancelledError:
            await self._stop_gracefully(queue, workers)
            with contextlib.suppress(FrontierError):
                self.stats.queued = (await self._frontier.counts()).queued
            raise
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.stats.elapsed_s = self._clock() - started
            self.finished = True
        return self.stats

    async def _conclude(self) -> None:
        """How the crawl ended (`outcome.Outcome`), once nothing is in flight."""
        counts = await self._frontier.counts()
        self.stats.queued = queued = counts.queued
        if self._config.resume:  # this run's counters are part of a longer crawl: say the whole
            self.stats.crawl_done, self.stats.crawl_seen = counts.done, counts.seen
        if queued:
            self.stats.outcome = "max_pages"  # the only way the feeder ends with work queued
        elif self.stats.nothing_reached:
            self.stats.outcome = "unreachable"
        else:
            self.stats.outcome = "finished"

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
        in_flight = self._active + (self.elsewhere.in_flight if self.elsewhere is not None else 0)
        if in_flight and self.tells_records:  # a normal stop: said at -v, not as a warning
            log.info(
                "stopping: letting %d requests in flight finish (up to %g s)",
                in_flight,
                self._config.grace_s,
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
            self.due_at = None
            if free > 0:
                batch = await self._frontier.lease(free)
                for lease in batch.leases:
                    self._active += 1
                    self._hosts_in_flight[lease.request.host] += 1
                    queue.put_nowait(lease)
                if batch.leases:
                    continue
                wait_s = batch.wait_s
                if wait_s is not None and self._active == 0:
                    self.due_at = self._clock() + wait_s
            if self._active == 0:
                counts = await self._frontier.counts()
                if self.is_finished(counts):
                    # An update re-fetches the stored URLs no link or sitemap reached again, last.
                    if self._recrawl is not None and await self._recrawl.sweep(self._queue, self._scope):
                        continue
                    return
                if wait_s is None:
                    if not counts.leased and free > 0:  # (with no slot here, other processes lease)
                        raise RuntimeError(f"frontier stalled: {counts} with nothing in flight")
                    # Leases held elsewhere (another worker of a shared crawl, or one this process lost
                    # while paused and the frontier will reap): their ends are not seen here, so ask again.
                    wait_s = FOREIGN_LEASE_POLL_S
            await self._wait_for_change(wait_s)

    def is_finished(self, counts: FrontierCounts) -> bool:
        if self._finished is not None:
            return self._finished(counts)
        return crawl_is_finished(counts, self.stats.pages, self._config.max_pages)

    def _free_slots(self) -> int:
        return min(self.slots - self._active, self.pages_left())

    def pages_left(self) -> int:
        """How many more URLs may be leased before `max_pages` is reached, if every one stored a page."""
        if self._config.max_pages is None:
            return self._config.concurrency
        elsewhere = self.elsewhere.in_flight if self.elsewhere is not None else 0
        return self._config.max_pages - self.stats.pages - self._active - elsewhere

    def wake(self) -> None:
        """Something changed elsewhere (another process ended a lease or added URLs): lease again."""
        self._changed.set()

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
        # Worker processes that wait for a lease (they hold none) are woken first, so the slot this one
        # freed goes to them: woken after, they found it taken again by this process's own feeder every
        # time one host's limit was what everyone waited for, and sat idle the whole crawl.
        if self.elsewhere is not None:
            self.elsewhere.changed()
        self._changed.set()

    async def _process(self, lease: Lease) -> None:
        request = lease.request
        if self._recrawl is not None and (unchanged := self._recrawl.skip(request)) is not None:
            await self._commit(lease, unchanged)  # a sitemap dated it before its stored fetch
            return
        if self._robots is None:
            await self._find_sitemaps(request.host, None)
        else:
            first_contact = not self._robots.known(request.url)
            verdict = await self._robots.rules_for(request.url)
            if isinstance(verdict, RobotsUnavailable):
                self._tell_robots_unavailable(request, verdict)
            await self._find_sitemaps(request.host, verdict)
            if not await self._carry_out(
                lease, on_robots(request, verdict, self._rules, first_contact=first_contact)
            ):
                return
        if not self._frontier.is_current(lease):
            log.warning(
                "lease of %s may have been lost while this process was paused; not fetching it", request.url
            )
            # Another worker may have the host by now (then the release is STALE and the reaper gave
            # the URL back); if the slot is still this worker's, the URL goes back to its queue.
            await self._frontier.release(lease)
            return
        sitemap = None
        if request.kind == "sitemap":
            sitemap = SitemapFeed(request, self._rules, queue=self._queue, settle=self._settle_trap)
            response = await self._fetcher.fetch(request.url, sink=sitemap.feed)
            # Only a 2xx body was fed to the parser: a redirect or an error is no sitemap to close.
            await sitemap.finish(complete=response.error is None and 200 <= (response.status or 0) < 300)
        elif self._recrawl is not None:
            response = await self._fetcher.fetch(request.url, headers=self._recrawl.headers(request.url))
        else:
            response = await self._fetcher.fetch(request.url)
        if response.sent:
            self.stats.requests += 1
        if response.status is None and response.error is not None and response.error.code in HOST_DOWN:
            self._tell_once(
                request.url,
                f"cannot be reached ({response.error}); its URLs are retried, then recorded as failed",
            )
        elif not response.sent and response.error is not None:
            self._tell_once(
                request.url,
                f"not fetched: {response.error.message}, and only the seeds' hosts may be at such an "
                "address (--allow-address CIDR or --allow-private lift it); its URLs are recorded as "
                "blocked_address",
            )
        actions = on_response(
            request, response, self._rules, now_epoch_s=time.time(), draw=self._rng.random()
        )
        await self._carry_out(lease, actions, response, sitemap)

    def _tell_robots_unavailable(self, request: Request, verdict: RobotsUnavailable) -> None:
        """Say at the default verbosity, once per host, that its robots.txt holds its URLs back and why;
        later tries are told at -v."""
        code, _, text = verdict.reason.partition(": ")
        what, _, detail = text.partition(": ")
        left = self._rules.retries + 1 - verdict.failures
        if left > 0:
            tries = "1 more time" if left == 1 else f"{left} more times"
            plan = f"its URLs wait; asking again in {verdict.retry_in_s:.1f} s, up to {tries}"
        else:
            tries = "1 try" if verdict.failures == 1 else f"{verdict.failures} tries"
            plan = f"giving up after {tries}: its URLs are recorded with error robots"
        message = f"{what} ({code}: {detail}); {plan}" if detail else f"{what} ({code}); {plan}"
        if not self._tell_once(request.url, message):
            log.info("%s: %s", _netloc(request.url), message, extra={"url": request.url, "code": code})

    def _tell_once(self, url: str, message: str) -> bool:
        """Log a host's trouble as a warning the first time only; False when it was told before."""
        host = _netloc(url)
        if host in self._told:
            return False
        self._told.add(host)
        log.warning("%s: %s", host, message, extra={"url": url})
        return True

    async def _find_sitemaps(self, host: str, verdict: RobotsRules | RobotsUnavailable | None) -> None:
        """With --sitemaps, queue the sitemaps of a host met for the first time, once its robots.txt
        (which may name them) has answered."""
        if not self._config.sitemaps or host in self._sitemap_hosts or isinstance(verdict, RobotsUnavailable):
            return
        self._sitemap_hosts.add(host)
        await self._queue(root_sitemaps(host, verdict.sitemaps if verdict is not None else (), self._rules))

    async def _carry_out(
        self,
        lease: Lease,
        actions: list[Action],
        response: Response | None = None,
        sitemap: SitemapFeed | None = None,
    ) -> bool:
        """Do what the policy decided, in order. True when one of the actions is `Fetch`. A healthy
        answer may go with the record's ack instead (`_answer_with_ack`)."""
        request = lease.request
        fetch = False
        answer = self._answer_with_ack(actions)
        for action in actions:
            match action:
                case Fetch():
                    fetch = True
                case PaceHost(event) if event is not answer:
                    await self._frontier.observe(request.host, event)
                case Retry(after_s, reason):
                    await self._frontier.retry(lease, after_s)
                    self.stats.retries += 1
                    log.info("retrying %s in %.1f s after %s", request.url, after_s, reason)
                case Refetch():
                    await self._frontier.retry(lease, 0.0, self_redirect=True)
                case Release():
                    await self._frontier.release(lease)
                case Enqueue(requests):
                    await self._frontier.add(requests)
                case SettleTrap():
                    await self._settle_trap(action)
                case Record():
                    if response is None or not action.fetched:
                        self.stats.robots_blocked += action.robots_blocked
                        await self._commit(lease, self._unfetched(request, action.error or ""), answer)
                    elif sitemap is not None:
                        page = self._sitemap_record(request, response, action, sitemap)
                        await self._commit(lease, page, answer)
                    else:
                        page = await self._record(request, response, action)
                        if self._archive is not None and response.exchange is not None:
                            await self._commit_archived(lease, page, response, answer)
                        else:
                            await self._commit(lease, page, answer)
        return fetch

    def _answer_with_ack(self, actions: Sequence[Action]) -> Answered | None:
        """The host's answer to send with the record's ack, in one step, when the frontier can
        (PacesOnAck): one Redis script per page instead of two. Only an answer with a status that is
        no overload signal: its pace then counts once the record is made (body stored, links
        queued), a few ms later; a slow one may still add backoff then. No answer, a timeout or an
        overload status is applied at once, as is any answer of a URL that ends without a record."""
        if self._paces_on_ack is None or not any(isinstance(a, Record) for a in actions):
            return None
        answers = [a.event for a in actions if isinstance(a, PaceHost) and isinstance(a.event, Answered)]
        if len(answers) != 1:
            return None
        answer = answers[0]
        healthy = answer.status is not None and answer.status not in OVERLOAD_STATUSES
        return answer if healthy and answer.error_code is None else None

    async def _commit_archived(
        self, lease: Lease, page: Page, response: Response, answer: Answered | None = None
    ) -> None:
        """Archive the exchange, then commit its record: see `warc.py` for why in this order.

        The append and the commit are shielded: stopped between the two (the crawl cancelled while the
        append or the ack is in flight), an exchange whose record never commits could sit ahead of
        others that do."""
        assert self._archive is not None and response.exchange is not None
        exchange = response.exchange
        if self._recrawl is not None:  # an unchanged answer is archived as a revisit of the earlier one
            page = self._recrawl.classify(page)
            exchange = self._recrawl.revisit(page, exchange)
        built = await self._archive.build(exchange)
        task = asyncio.ensure_future(self._append_and_commit(lease, page, built, answer))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                await asyncio.wait([task])
            raise

    async def _append_and_commit(
        self, lease: Lease, page: Page, built: BuiltExchange, answer: Answered | None = None
    ) -> None:
        assert self._archive is not None
        async with self._archive.order:  # commits in the order their exchanges were appended
            where = await self._archive.append(built)
            page = dataclasses.replace(page, warc_file=where.file, warc_offset=where.offset)
            if not await self._ack(lease, page, answer):
                await self._archive.undo(where)
                log.warning("lease of %s was no longer current; its record was dropped", page.url)
                return
            await self._publish(page)

    async def commit(self, lease: Lease, page: Page, answer: Answered | None = None) -> bool:
        """Commit a record (this process's, or one another process made for a lease it holds):
        classified, acked (with the host's answer, when `_answer_with_ack` chose to send it along),
        published. False: the lease was not current, and nothing was published."""
        if self._recrawl is not None:
            page = self._recrawl.classify(page)
        if not await self._ack(lease, page, answer):
            return False
        await self._publish(page)
        return True

    async def settle(self, request: Request, page: Page) -> bool:
        """Record a URL another process found must never be fetched (a trap), once."""
        if not await self._frontier.settle(request, page):
            return False
        if page.error is not None and page.error.startswith("trap:"):
            self.stats.traps += 1
        await self._publish(page)
        return True

    async def _commit(self, lease: Lease, page: Page, answer: Answered | None = None) -> None:
        if not await self.commit(lease, page, answer):
            log.warning("lease of %s was no longer current; its record was dropped", page.url)

    async def _ack(self, lease: Lease, page: Page, answer: Answered | None) -> bool:
        """Ack `page`, with the host's answer when `_answer_with_ack` chose to send it along."""
        if answer is not None and self._paces_on_ack is not None:
            return await self._paces_on_ack.ack_answered(lease, page, answer)
        return await self._frontier.ack(lease, page)

    async def _publish(self, page: Page) -> None:
        """A committed record goes to the manifest, the counters and the caller."""
        self._manifest.append(page)
        self.stats.count(page)
        if page.error is not None and self.tells_records:
            log.info("%s: %s", page.url, page.error, extra={"url": page.url, "code": page.error_code})
            self.last_errors[host_key(page.url)] = (page.error, page.url)
        self._on_page(page)

    async def _record(self, request: Request, response: Response, record: Record) -> Page:
        """Store what came back (and queue its links) as `record` says, and describe it as a record."""
        path = sha256 = None
        links = 0
        if record.store_body:
            path = page_path(request.url)
            sha256 = await self._store.write(path, response.body)
            if is_html(response.content_type) and request.kind == "page":
                links = await self._add_links(request, response)
            if self._config.page_requisites:
                await self._add_requisites(request, response)
        elif response.status == 304 and self._recrawl is not None:
            links = await self._follow_unchanged(request, response)
        return Page(
            url=request.url,
            final_url=record.final_url or request.url,
            status=response.status,
            content_type=response.content_type,
            depth=request.depth,
            referrer=request.referrer,
            path=path,
            bytes=len(response.body) if path is not None else 0,
            sha256=sha256,
            fetched_at=_utc_now(),
            elapsed_ms=response.elapsed_ms,
            error=record.error,
            links=links,
            etag=response.etag,
            last_modified=response.last_modified,
            kind=request.kind,
        )

    def _sitemap_record(
        self, request: Request, response: Response, record: Record, sitemap: SitemapFeed
    ) -> Page:
        """A sitemap's record: what was read of it and how many entries it had; its body is not kept."""
        return Page(
            url=request.url,
            final_url=record.final_url or request.url,
            status=response.status,
            content_type=response.content_type,
            depth=request.depth,
            referrer=request.referrer,
            path=None,
            bytes=sitemap.parser.bytes,
            sha256=None,
            fetched_at=_utc_now(),
            elapsed_ms=response.elapsed_ms,
            error=record.error or sitemap.parser.problem,
            links=sitemap.parser.entries,
            kind="sitemap",
        )

    async def _add_links(self, request: Request, response: Response) -> int:
        found = await self._parser.links(response.body, request.url, response.content_type)
        count, candidates = links_to_follow(request, found, self._rules)
        follow = []
        known = self._known
        for url in candidates:
            if url in known:
                continue  # most links of a page were handed to the frontier before: skip the round trip
            known.add(url)
            link = on_link(request, url, fingerprint(url), self._rules)
            if isinstance(link, SettleTrap):
                await self._settle_trap(link)
            else:
                follow.append(link)
        self._forget_known()
        if follow:
            await self._frontier.add(follow)
        return count

    async def _queue(self, requests: Sequence[Request]) -> None:
        """Hand requests to the frontier, skipping those this process handed it before."""
        fresh = self.unknown(requests)
        if fresh:
            await self._frontier.add(fresh)

    def unknown(self, requests: Sequence[Request]) -> list[Request]:
        """Those of `requests` this process has not handed the frontier (nor been told of, by `unknown`)
        before; from now on they count as handed to it."""
        known = self._known
        fresh = [r for r in requests if r.url not in known]
        known.update(r.url for r in fresh)
        self._forget_known()
        return fresh

    def _forget_known(self) -> None:
        if len(self._known) > KNOWN_LINKS_MAX:
            self._known.clear()  # a cache, not the seen set: the frontier still deduplicates

    async def _follow_unchanged(self, request: Request, response: Response) -> int:
        """An update's 304: the page is the one stored, so its links (and requisites) are those of the
        stored body, followed as usual, so that what an unchanged page newly reaches is found."""
        assert self._recrawl is not None
        previous = self._recrawl.previous(request.url)
        if previous is None or previous.path is None:
            return 0
        body = await self._store.read(previous.path)
        if body is None:
            return 0
        stored = dataclasses.replace(response, body=body, content_type=previous.content_type)
        links = 0
        if is_html(stored.content_type) and request.kind == "page":
            links = await self._add_links(request, stored)
        if self._config.page_requisites:
            await self._add_requisites(request, stored)
        return links

    async def _add_requisites(self, request: Request, response: Response) -> None:
        """Queue what a stored page (or stylesheet) needs to render: from any host, at its depth."""
        if is_html(response.content_type) and request.kind == "page":
            found = html_requisites(response.body, request.url, response.content_type)
        elif is_css(response.content_type):
            found = css_requisites(response.body, request.url)
        else:
            return
        queue = []
        for url in found:
            if url in self._known:
                continue
            self._known.add(url)
            link = on_requisite(request, url, fingerprint(url), self._rules)
            if isinstance(link, SettleTrap):
                await self._settle_trap(link)
            else:
                queue.append(link)
        if queue:
            await self._frontier.add(queue)

    async def _settle_trap(self, trap: SettleTrap) -> None:
        """Record a trap link once (it is never queued, so never requested)."""
        await self.settle(trap.request, self._unfetched(trap.request, f"trap: {trap.reason}"))

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
            kind=request.kind,
        )


class Elsewhere(Protocol):
    """The leases other processes of this crawl hold (`multiproc.pool`), as the engine counts them."""

    in_flight: int
    hosts: Counter[str]

    def changed(self) -> None:
        """A lease ended in this process: a lease another process waits for may be free now."""


def _netloc(url: str) -> str:
    """host[:port] of a normalized URL, as a person names the site."""
    return url.split("/")[2].rpartition("@")[2]


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

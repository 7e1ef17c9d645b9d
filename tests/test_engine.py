"""The engine's orchestration, with a fake fetch and a fake clock: no socket, no wait.

The decisions are proven in test_policy.py; here, that the engine carries them out and ends the crawl
as it should: finish, `max_pages`, retries and self-redirects, a worker's unexpected error, a failing
state store, and a graceful stop.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from crawlpool.config import CrawlConfig
from crawlpool.engine import FOREIGN_LEASE_POLL_S, Engine
from crawlpool.errors import FrontierError
from crawlpool.fetch import FetchError, Response
from crawlpool.frontier import FrontierCounts, Lease, LeaseBatch, Politeness
from crawlpool.frontier.memory import MemoryFrontier
from crawlpool.policy.pacing import Answered, HostEvent, HostPace
from crawlpool.records import Page
from crawlpool.scope import Scope
from crawlpool.store import Manifest, PageStore, prepare_output
from tests.virtual_time import VirtualClock

SEED = "https://site.test/"

Answer = Response | Callable[[], Response]


def page(*links: str) -> Response:
    body = "".join(f'<a href="{link}">x</a>' for link in links).encode()
    return Response(200, "text/html", b"<html>" + body, None, None, 3, None)


def failure(status: int | None, code: str) -> Response:
    return Response(status, None, b"", None, None, 3, FetchError(code, "on purpose"))


def redirect(location: str) -> Response:
    return Response(302, None, b"", location, None, 3, None)


class FakeFetcher:
    """Answers from a script: for each URL, the responses of its successive requests."""

    def __init__(self, site: dict[str, list[Response]]) -> None:
        self._site = site
        self.requests: Counter[str] = Counter()
        self.gate: asyncio.Event | None = None  # when set: fetches wait for it (a request in flight)
        self.started = asyncio.Event()

    async def fetch(self, url: str) -> Response:
        self.requests[url] += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        answers = self._site.get(url) or [failure(404, "http_4xx")]
        return answers[min(self.requests[url], len(answers)) - 1]


async def run(
    tmp_path: Path,
    site: dict[str, list[Response]],
    *,
    frontier: MemoryFrontier | None = None,
    fetcher: FakeFetcher | None = None,
    clock: VirtualClock | None = None,
    real_time: bool = False,
    **options: object,
) -> tuple[list[Page], Engine, FakeFetcher]:
    """Crawl `site` from SEED with the memory frontier, on the virtual `clock` (a fresh one by default)."""
    clock = clock or VirtualClock()
    config = CrawlConfig(output=tmp_path, robots=False, retry_backoff_s=0.0, **options)  # type: ignore[arg-type]
    fetcher = fetcher or FakeFetcher(site)
    frontier = frontier or MemoryFrontier(Politeness(config.per_host, config.delay_s), clock=clock)
    pages: list[Page] = []
    prepare_output(tmp_path, resume=True)
    async with Manifest(tmp_path) as manifest:
        engine = Engine(
            config,
            frontier=frontier,
            fetcher=fetcher,  # type: ignore[arg-type]
            store=PageStore(tmp_path),
            manifest=manifest,
            scope=Scope([SEED]),
            on_page=pages.append,
            clock=clock,
        )
        if real_time:  # the loop's own clock: a page write in a thread must not race virtual time
            await engine.run([SEED])
        else:
            with clock.patch_loop():
                await engine.run([SEED])
    return pages, engine, fetcher


SITE = {
    SEED: [page("/a", "/b")],
    SEED + "a": [page("/b", "/c")],
    SEED + "b": [page("/")],
    SEED + "c": [page()],
}


async def test_the_crawl_finishes_when_every_reachable_url_has_its_one_record(tmp_path: Path) -> None:
    pages, engine, fetcher = await run(tmp_path, SITE)
    assert sorted(p.url for p in pages) == sorted(SITE)
    assert all(p.error is None and p.path for p in pages)
    assert set(fetcher.requests.values()) == {1}
    assert (engine.stats.pages, engine.stats.requests) == (4, 4)
    assert len((tmp_path / "manifest.jsonl").read_text().splitlines()) == 4


async def test_max_pages_stops_the_crawl_with_urls_left(tmp_path: Path) -> None:
    frontier = MemoryFrontier(Politeness(per_host=1), clock=VirtualClock())
    pages, _, _ = await run(tmp_path, SITE, frontier=frontier, max_pages=2, concurrency=1, per_host=1)
    assert len(pages) == 2
    counts = await frontier.counts()
    assert counts.queued > 0 and counts.leased == 0


async def test_transient_failures_are_retried_then_the_page_is_recorded(tmp_path: Path) -> None:
    busy = Response(503, None, b"", None, "30", 3, FetchError("http_5xx", "503 Service Unavailable"))
    site = {SEED: [failure(None, "timeout"), busy, page()]}
    clock = VirtualClock()
    pages, engine, fetcher = await run(tmp_path, site, clock=clock)
    assert [(p.status, p.error) for p in pages] == [(200, None)]
    assert (fetcher.requests[SEED], engine.stats.retries) == (3, 2)
    assert 30.0 <= clock.elapsed() < 31.0  # the Retry-After held the host, on virtual time


class PacesOnAcks(MemoryFrontier):
    """Takes a host's answer with the ack (PacesOnAck, as the Redis frontier does), noting which way
    each answer came."""

    def __init__(self, politeness: Politeness, clock: VirtualClock) -> None:
        super().__init__(politeness, clock=clock)
        self.observed: list[HostEvent] = []
        self.with_ack: list[tuple[str, Answered]] = []

    async def observe(self, host: str, event: HostEvent) -> HostPace:
        self.observed.append(event)
        return await super().observe(host, event)

    async def ack_answered(self, lease: Lease, page: Page, answer: Answered) -> bool:
        self.with_ack.append((lease.request.url, answer))
        await super().observe(lease.request.host, answer)
        return await self.ack(lease, page)


async def test_a_healthy_answer_goes_with_the_ack_and_an_overload_signal_at_once(tmp_path: Path) -> None:
    clock = VirtualClock()
    frontier = PacesOnAcks(Politeness(), clock)
    site = {SEED: [page("/a")], SEED + "a": [failure(None, "timeout"), failure(503, "http_5xx"), page()]}
    pages, _, _ = await run(tmp_path, site, frontier=frontier, clock=clock)
    assert sorted(p.url for p in pages) == sorted(site)
    assert [(url, answer.status) for url, answer in frontier.with_ack] == [(SEED, 200), (SEED + "a", 200)]
    assert [(a.status, a.error_code) for a in frontier.observed if isinstance(a, Answered)] == [
        (None, "timeout"),
        (503, "http_5xx"),
    ], "an overload signal is not held back until a record"


async def test_a_self_redirect_after_three_timeouts_is_followed_not_called_a_loop(tmp_path: Path) -> None:
    site = {SEED: [failure(None, "timeout")] * 3 + [redirect(SEED), page()]}
    pages, _, fetcher = await run(tmp_path, site, retries=3)
    assert [(p.status, p.error) for p in pages] == [(200, None)]
    assert fetcher.requests[SEED] == 5


async def test_a_page_that_always_redirects_to_itself_is_a_loop(tmp_path: Path) -> None:
    pages, _, fetcher = await run(tmp_path, {SEED: [redirect(SEED)]})
    assert [p.error for p in pages] == ["redirect_loop: redirects to itself 4 times"]
    assert fetcher.requests[SEED] == 4


async def test_an_unexpected_error_is_recorded_and_the_crawl_goes_on(tmp_path: Path) -> None:
    class Broken(FakeFetcher):
        async def fetch(self, url: str) -> Response:
            if url == SEED + "a":
                raise RuntimeError("a bug")
            return await super().fetch(url)

    pages, _, _ = await run(tmp_path, SITE, fetcher=Broken(SITE))
    errors = {p.url: p.error for p in pages}
    assert errors[SEED + "a"] == "internal: RuntimeError: a bug"
    assert errors[SEED + "b"] is None  # linked from the seed too: the crawl went on


class PausedPastFreshness(MemoryFrontier):
    """Says a lease is not current the first time it is asked about each URL (a worker woke from a
    pause past most of its lease, as the Redis frontier judges it), while the lease still stands."""

    def __init__(self, politeness: Politeness, clock: VirtualClock) -> None:
        super().__init__(politeness, clock=clock)
        self.asked: set[str] = set()

    def is_current(self, lease: Lease) -> bool:
        if lease.request.url in self.asked:
            return super().is_current(lease)
        self.asked.add(lease.request.url)
        return False


async def test_a_lease_not_known_current_is_given_back_unfetched_and_crawled_later(tmp_path: Path) -> None:
    clock = VirtualClock()
    frontier = PausedPastFreshness(Politeness(), clock=clock)
    pages, _, fetcher = await asyncio.wait_for(run(tmp_path, SITE, frontier=frontier, clock=clock), 10)
    assert sorted(p.url for p in pages) == sorted(SITE)  # none left in flight for ever
    assert set(fetcher.requests.values()) == {1}  # never fetched on the lease it doubted


class FailingAcks(MemoryFrontier):
    async def ack(self, lease: Lease, page: Page) -> bool:
        raise FrontierError("crawl state: the disk is full")


async def test_a_state_store_failure_ends_the_crawl_and_is_no_urls_error(tmp_path: Path) -> None:
    frontier = FailingAcks(Politeness(), clock=VirtualClock())
    with pytest.raises(FrontierError, match="the disk is full"):
        await run(tmp_path, SITE, frontier=frontier)
    assert (tmp_path / "manifest.jsonl").read_text() == ""  # no "internal" record was made of it


async def test_a_graceful_stop_lets_the_request_in_flight_finish_and_gives_the_rest_back(
    tmp_path: Path,
) -> None:
    fetcher = FakeFetcher({SEED: [page("/a", "/b")]})
    fetcher.gate = asyncio.Event()
    frontier = MemoryFrontier(Politeness(), clock=VirtualClock())
    crawl = asyncio.create_task(
        run(tmp_path, {}, frontier=frontier, fetcher=fetcher, grace_s=5.0, real_time=True)
    )
    await fetcher.started.wait()
    crawl.cancel()
    await asyncio.sleep(0)  # let the cancellation reach the engine before the request ends
    fetcher.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await crawl
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 1 and SEED in lines[0]  # the request in flight finished and was recorded
    counts = await frontier.counts()
    assert (counts.done, counts.leased, counts.queued) == (1, 0, 2)  # its links wait for --resume


class OthersHoldLeases(MemoryFrontier):
    """A frontier whose queued URLs are, for a while, all behind leases another process holds (a shared
    crawl's other worker, or leases this process lost while paused): nothing to lease, no time to wait
    for, and nothing in flight here."""

    def __init__(self, *args: Any, blocked_for: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.blocked_for = blocked_for

    async def lease(self, limit: int) -> LeaseBatch:
        if self.blocked_for > 0:
            return LeaseBatch([], None)
        return await super().lease(limit)

    async def counts(self) -> FrontierCounts:
        counts = await super().counts()
        if self.blocked_for == 0:
            return counts
        self.blocked_for -= 1  # each look is a second later: the other process's lease ends in time
        return replace(counts, leased=counts.leased + 1)


async def test_leases_held_by_another_process_are_waited_for_not_a_stall(tmp_path: Path) -> None:
    clock = VirtualClock()
    frontier = OthersHoldLeases(Politeness(), clock=clock, blocked_for=3)
    pages, _, _ = await run(tmp_path, SITE, frontier=frontier, clock=clock)
    assert sorted(p.url for p in pages) == sorted(SITE)
    assert clock() >= 3 * FOREIGN_LEASE_POLL_S, "it asked again once a second, without a busy loop"

"""The Frontier contract: every backend passes this suite unchanged. A backend joins by adding a module
to tests/frontier_backends/ (see its __init__)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

import pytest

from crawlpool.frontier import Frontier, Politeness, Request, RobotsState
from crawlpool.frontier.base import ROBOTS_FAILURES_KEPT_S
from crawlpool.policy.pacing import Answered, Blocked, FloorRaised
from crawlpool.records import Page
from crawlpool.reports import status_lines
from crawlpool.urls import fingerprint, host_key
from tests.frontier_backends import backend_modules

BACKENDS = backend_modules()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


FrontierFactory = Callable[[Politeness], Awaitable[Frontier]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS, ids=[m.NAME for m in BACKENDS])
async def make_frontier(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[FrontierFactory]:
    """Opens frontiers of the backend under test; each call gets a fresh, empty crawl."""
    module = request.param
    async with AsyncExitStack() as stack:
        opened = 0

        async def factory(politeness: Politeness) -> Frontier:
            nonlocal opened
            opened += 1
            backend = module.open_backend(politeness, clock, tmp_path / f"frontier-{opened}")
            return await stack.enter_async_context(backend)

        yield factory


def req(url: str, depth: int = 0) -> Request:
    return Request(url, fingerprint(url), host_key(url), depth)


def page(url: str) -> Page:
    return Page(url, url, 200, "text/html", 0, None, None, 0, None, "2026-01-01T00:00:00Z", 1, None, 0)


A = [f"http://a.test/{i}" for i in range(6)]
B = [f"http://b.test/{i}" for i in range(6)]


async def test_add_queues_each_fingerprint_once(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness(per_host=10))
    assert await frontier.add([req(A[0]), req(A[1]), req(A[0])]) == 2
    assert await frontier.add([req(A[1]), req(A[2])]) == 1
    counts = await frontier.counts()
    assert (counts.seen, counts.queued, counts.leased, counts.done) == (3, 3, 0, 0)


async def test_done_urls_are_never_queued_again(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness(per_host=10))
    await frontier.add([req(A[0])])
    (lease,) = (await frontier.lease(5)).leases
    assert await frontier.ack(lease, page(A[0]))
    assert await frontier.add([req(A[0])]) == 0
    assert (await frontier.lease(5)).leases == []


async def test_lease_hands_out_at_most_per_host_per_host(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness(per_host=2))
    await frontier.add([req(u) for u in A + B])
    batch = await frontier.lease(10)
    hosts = [lease.request.host for lease in batch.leases]
    assert sorted(hosts) == sorted([host_key(A[0])] * 2 + [host_key(B[0])] * 2)
    # Nothing more until a lease ends; waiting alone will not help.
    again = await frontier.lease(10)
    assert again.leases == [] and again.wait_s is None
    assert await frontier.ack(batch.leases[0], page(batch.leases[0].request.url))
    (next_lease,) = (await frontier.lease(10)).leases
    assert next_lease.request.host == batch.leases[0].request.host


async def test_delay_spaces_lease_starts_per_host(make_frontier: FrontierFactory, clock: FakeClock) -> None:
    frontier = await make_frontier(Politeness(per_host=5, delay_s=2.0))
    await frontier.add([req(u) for u in A[:3] + B[:1]])
    first = await frontier.lease(10)
    assert sorted(lease.request.url for lease in first.leases) == [A[0], B[0]]
    assert first.wait_s == pytest.approx(2.0)
    clock.now += 1.5
    early = await frontier.lease(10)
    assert early.leases == [] and early.wait_s == pytest.approx(0.5)
    clock.now += 0.5
    assert [lease.request.url for lease in (await frontier.lease(10)).leases] == [A[1]]


async def test_urls_of_a_host_come_out_in_order(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness(per_host=1))
    await frontier.add([req(u) for u in A[:3]])
    seen = []
    for _ in range(3):
        (lease,) = (await frontier.lease(10)).leases
        seen.append(lease.request.url)
        await frontier.ack(lease, page(lease.request.url))
    assert seen == A[:3]


async def test_retry_waits_its_delay_and_counts_the_attempt(
    make_frontier: FrontierFactory, clock: FakeClock
) -> None:
    frontier = await make_frontier(Politeness(per_host=1))
    await frontier.add([req(A[0])])
    (lease,) = (await frontier.lease(1)).leases
    assert await frontier.retry(lease, delay_s=5)
    waiting = await frontier.lease(1)
    assert waiting.leases == [] and waiting.wait_s == pytest.approx(5)
    assert (await frontier.counts()).queued == 1
    clock.now += 5
    (again,) = (await frontier.lease(1)).leases
    assert again.request.url == A[0] and again.request.attempts == 1
    assert again.token != lease.token


async def test_release_puts_the_url_back_first_without_an_attempt(
    make_frontier: FrontierFactory,
) -> None:
    frontier = await make_frontier(Politeness(per_host=1))
    await frontier.add([req(A[0]), req(A[1])])
    (lease,) = (await frontier.lease(1)).leases
    assert await frontier.release(lease)
    (again,) = (await frontier.lease(1)).leases
    assert again.request.url == A[0] and again.request.attempts == 0


async def test_a_lease_ends_once(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness(per_host=2))
    await frontier.add([req(A[0])])
    (lease,) = (await frontier.lease(1)).leases
    assert await frontier.ack(lease, page(A[0]))
    assert not await frontier.ack(lease, page(A[0]))
    assert not await frontier.retry(lease, delay_s=0)
    assert not await frontier.release(lease)
    counts = await frontier.counts()
    assert (counts.queued, counts.leased, counts.done) == (0, 0, 1)


async def test_counts_follow_the_lifecycle(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness(per_host=5))
    await frontier.add([req(u) for u in A[:4]])
    batch = await frontier.lease(3)
    counts = await frontier.counts()
    assert (counts.queued, counts.leased) == (1, 3)
    await frontier.ack(batch.leases[0], page(A[0]))
    await frontier.release(batch.leases[1])
    await frontier.retry(batch.leases[2], delay_s=0)
    counts = await frontier.counts()
    assert (counts.seen, counts.queued, counts.leased, counts.done) == (4, 3, 0, 1)


async def test_a_busy_host_does_not_block_another(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness(per_host=1))
    await frontier.add([req(u) for u in A[:3]])
    (held,) = (await frontier.lease(5)).leases
    await frontier.add([req(B[0])])
    (other,) = (await frontier.lease(5)).leases
    assert other.request.host == host_key(B[0])
    assert held.request.host == host_key(A[0])


async def test_a_crawl_delay_changes_the_delay_of_that_host_only(
    make_frontier: FrontierFactory, clock: FakeClock
) -> None:
    frontier = await make_frontier(Politeness(per_host=5, delay_s=1.0))
    await frontier.add([req(u) for u in A[:3] + B[:3]])
    assert len((await frontier.lease(10)).leases) == 2
    assert (await frontier.observe(host_key(A[0]), FloorRaised(10.0))).delay_s == 10.0
    clock.now += 1.0
    batch = await frontier.lease(10)
    assert [lease.request.host for lease in batch.leases] == [host_key(B[0])]
    assert batch.wait_s == pytest.approx(1.0)  # b's next turn comes before a's
    clock.now += 9.0
    assert {lease.request.url for lease in (await frontier.lease(10)).leases} == {A[1], B[2]}


async def test_a_blocked_host_hands_out_nothing_until_the_block_ends(
    make_frontier: FrontierFactory, clock: FakeClock
) -> None:
    frontier = await make_frontier(Politeness(per_host=5))
    await frontier.add([req(u) for u in A[:2]])
    await frontier.observe(host_key(A[0]), Blocked(30.0))
    blocked = await frontier.lease(10)
    assert blocked.leases == [] and blocked.wait_s == pytest.approx(30.0)
    clock.now += 30.0
    assert len((await frontier.lease(10)).leases) == 2


async def test_observed_answers_pace_the_host_as_the_policy_says(
    make_frontier: FrontierFactory, clock: FakeClock
) -> None:
    frontier = await make_frontier(Politeness(per_host=1, delay_s=0.5))
    await frontier.add([req(u) for u in A[:3]])
    (lease,) = (await frontier.lease(10)).leases
    first = await frontier.observe(host_key(A[0]), Answered(503, 5))
    second = await frontier.observe(host_key(A[0]), Answered(503, 5))
    assert (first.delay_s, second.delay_s) == (0.75, 1.0)  # the floor, plus a backoff that doubled
    assert await frontier.ack(lease, page(A[0]))
    assert (await frontier.lease(10)).wait_s == pytest.approx(1.0)
    assert (await frontier.observe(host_key(A[0]), Answered(200, 5))).delay_s == 0.75  # recovering


async def test_the_delay_runs_from_when_the_request_went_out_not_from_its_lease(
    make_frontier: FrontierFactory, clock: FakeClock
) -> None:
    # A worker may hold a lease a while before its request goes out (its own queue, a paused
    # process): the answer says when the request started, and the next start waits the delay from then.
    frontier = await make_frontier(Politeness(per_host=1, delay_s=2.0))
    await frontier.add([req(u) for u in A[:2]])
    (lease,) = (await frontier.lease(10)).leases
    clock.now += 2.4  # sent 1.9 s after the lease, answered 0.5 s later
    await frontier.observe(host_key(A[0]), Answered(200, 500))
    assert await frontier.ack(lease, page(A[0]))
    early = await frontier.lease(10)
    assert early.leases == [] and early.wait_s == pytest.approx(1.5)
    clock.now += 1.5
    assert [lease.request.url for lease in (await frontier.lease(10)).leases] == [A[1]]


async def test_an_answer_without_a_request_moves_no_start(
    make_frontier: FrontierFactory, clock: FakeClock
) -> None:
    frontier = await make_frontier(Politeness(per_host=1, delay_s=2.0))
    await frontier.add([req(u) for u in A[:2]])
    (lease,) = (await frontier.lease(10)).leases
    clock.now += 2.4
    await frontier.observe(host_key(A[0]), Answered(None, 0, "blocked_address"))  # never sent
    assert await frontier.ack(lease, page(A[0]))
    assert [lease.request.url for lease in (await frontier.lease(10)).leases] == [A[1]]


async def test_status_shows_the_hosts_backed_off_or_blocked(
    make_frontier: FrontierFactory, clock: FakeClock
) -> None:
    frontier = await make_frontier(Politeness(per_host=1, delay_s=0.5))
    await frontier.add([req(A[0]), req(B[0])])
    await frontier.observe(host_key(A[0]), Answered(503, 5))
    await frontier.observe(host_key(A[0]), Blocked(30.0))
    await frontier.observe(host_key(B[0]), Answered(200, 5))
    (held,) = (await frontier.status()).backoff
    assert (held.host, held.delay_s, held.extra_s) == (host_key(A[0]), 0.75, 0.25)
    assert 29.0 <= held.blocked_for_s <= 30.0
    lines = status_lines(await frontier.status(), None)
    assert any(
        line.startswith(f"  backing off    {host_key(A[0])}: 0.75 s between requests") for line in lines
    )
    clock.now += 31.0
    await frontier.observe(host_key(A[0]), Answered(200, 5))  # forgiven, and the block is over
    assert (await frontier.status()).backoff == ()


async def test_a_self_redirect_comes_back_without_using_an_attempt(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness(per_host=5))
    await frontier.add([req(A[0])])
    (lease,) = (await frontier.lease(1)).leases
    assert await frontier.retry(lease, 0.0, self_redirect=True)
    (again,) = (await frontier.lease(1)).leases
    assert (again.request.attempts, again.request.self_redirects) == (0, 1)
    assert await frontier.retry(again, 0.0)
    (third,) = (await frontier.lease(1)).leases
    assert (third.request.attempts, third.request.self_redirects) == (1, 1)


async def test_settle_records_an_unseen_url_without_queueing_it(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness(per_host=5))
    await frontier.add([req(A[0])])
    assert await frontier.settle(req(A[1]), page(A[1]))
    assert not await frontier.settle(req(A[1]), page(A[1])), "settled twice"
    assert not await frontier.settle(req(A[0]), page(A[0])), "settled a queued URL"
    assert await frontier.add([req(A[1])]) == 0, "a settled URL is seen"
    counts = await frontier.counts()
    assert (counts.seen, counts.queued, counts.leased, counts.done) == (2, 1, 0, 1)
    assert [lease.request.url for lease in (await frontier.lease(5)).leases] == [A[0]]


async def test_requests_keep_their_redirect_hops(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness(per_host=5))
    hopped = Request(A[0], fingerprint(A[0]), host_key(A[0]), depth=1, referrer=A[1], hops=3)
    await frontier.add([hopped])
    (lease,) = (await frontier.lease(5)).leases
    assert lease.request == hopped


async def test_requests_keep_their_kind_and_lastmod_through_a_retry(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness(per_host=5))
    sitemap = Request(A[0], fingerprint(A[0]), host_key(A[0]), depth=2, kind="sitemap")
    dated = Request(A[1], fingerprint(A[1]), host_key(A[1]), depth=0, referrer=A[0], lastmod="2024-05-01")
    await frontier.add([sitemap, dated])
    leases = (await frontier.lease(5)).leases
    assert [lease.request for lease in leases] == [sitemap, dated]
    assert await frontier.retry(leases[0], 0.0)
    (again,) = (await frontier.lease(5)).leases
    assert (again.request.kind, again.request.depth, again.request.attempts) == ("sitemap", 2, 1)


async def test_a_lease_is_current_until_it_ends(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness(per_host=5))
    await frontier.add([req(A[0])])
    (lease,) = (await frontier.lease(5)).leases
    assert frontier.is_current(lease)
    await frontier.ack(lease, page(A[0]))
    assert not frontier.is_current(lease)


async def test_meta_values_are_kept_and_claimed_once(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness())
    assert await frontier.get_meta("crawl") is None
    assert await frontier.claim_meta("crawl", "first") is None, "the first claim stores its value"
    assert await frontier.claim_meta("crawl", "second") == "first", "a later claim gets the stored one"
    assert await frontier.get_meta("crawl") == "first"
    await frontier.set_meta("updated", "2026-01-01T00:00:00Z")
    await frontier.set_meta("updated", "2026-01-02T00:00:00Z")
    assert await frontier.get_meta("updated") == "2026-01-02T00:00:00Z"


async def test_committed_pages_are_the_acked_and_settled_records_in_order(
    make_frontier: FrontierFactory,
) -> None:
    frontier = await make_frontier(Politeness(per_host=5))
    await frontier.add([req(A[0]), req(A[1]), req(A[2])])
    leases = {lease.request.url: lease for lease in (await frontier.lease(5)).leases}
    await frontier.ack(leases[A[1]], page(A[1]))
    await frontier.settle(req(A[3]), page(A[3]))
    await frontier.retry(leases[A[2]], 60.0)
    await frontier.ack(leases[A[0]], page(A[0]))
    assert not await frontier.ack(leases[A[0]], page(A[0])), "acked twice"
    assert [p async for p in frontier.committed_pages()] == [page(A[1]), page(A[3]), page(A[0])]


async def test_status_counts_the_crawl(make_frontier: FrontierFactory) -> None:
    frontier = await make_frontier(Politeness(per_host=5))
    await frontier.add([req(A[0]), req(A[1]), req(A[2]), req(B[0])])
    leases = {lease.request.url: lease for lease in (await frontier.lease(5)).leases}
    failed = replace(page(A[1]), status=404, error="http_4xx: 404 Not Found")
    await frontier.ack(leases[A[1]], failed)
    await frontier.ack(leases[A[0]], page(A[0]))
    status = await frontier.status()
    assert status.state == "running"
    assert (status.seen, status.done, status.queued, status.in_flight) == (4, 2, 0, 2)
    assert status.failures == {"http_4xx": 1}
    await frontier.ack(leases[A[2]], page(A[2]))
    await frontier.ack(leases[B[0]], page(B[0]))
    status = await frontier.status()
    assert status.state == "finished"
    assert (status.seen, status.done, status.queued, status.in_flight) == (4, 4, 0, 0)


# --- robots.txt state ------------------------------------------------------------------------------


def follows_fake_clock(frontier: Frontier) -> bool:
    """Redis expires robots.txt state on its own clock (PX / PTTL), never the suite's."""
    return not type(frontier).__module__.endswith(".redis")


async def test_robots_state_is_stored_per_host_with_what_is_left_of_its_validity(
    make_frontier: FrontierFactory, clock: FakeClock
) -> None:
    frontier = await make_frontier(Politeness())
    a, b = host_key(A[0]), host_key(B[0])
    assert await frontier.robots(a) is None
    rules = RobotsState("User-agent: *\nDisallow: /p\n", None, 0, 100.0)
    await frontier.set_robots(a, rules)
    await frontier.set_robots(b, RobotsState(None, None, 0, 50.0))
    got = await frontier.robots(a)
    assert got is not None
    assert (got.body, got.reason, got.failures) == (rules.body, None, 0)
    assert 0 < got.valid_for_s <= 100.0
    allow_all = await frontier.robots(b)
    assert allow_all is not None and allow_all.body is None and 0 < allow_all.valid_for_s <= 50.0
    if follows_fake_clock(frontier):
        clock.now += 30.0
        later = await frontier.robots(a)
        assert later is not None and later.valid_for_s == pytest.approx(70.0)
        clock.now += 70.0
        assert await frontier.robots(a) is None, "rules past their TTL"
        assert await frontier.robots(b) is None


async def test_robots_state_is_replaced_and_an_unavailable_count_outlives_its_retry_time(
    make_frontier: FrontierFactory, clock: FakeClock
) -> None:
    frontier = await make_frontier(Politeness())
    a = host_key(A[0])
    await frontier.set_robots(a, RobotsState("User-agent: *\nDisallow: /\n", None, 0, 100.0))
    await frontier.set_robots(a, RobotsState(None, "robots.txt answered 503", 3, 20.0))
    got = await frontier.robots(a)
    assert got is not None
    assert (got.body, got.reason, got.failures) == (None, "robots.txt answered 503", 3)
    assert 0 < got.valid_for_s <= 20.0
    if follows_fake_clock(frontier):
        clock.now += 25.0
        due = await frontier.robots(a)
        assert due == RobotsState(None, "robots.txt answered 503", 3, 0.0), "kept, with its count"
        clock.now += ROBOTS_FAILURES_KEPT_S
        assert await frontier.robots(a) is None


async def test_hosts_waiting_counts_hosts_whose_turn_has_not_come(
    make_frontier: FrontierFactory, clock: FakeClock
) -> None:
    frontier = await make_frontier(Politeness(per_host=1, delay_s=2.0))
    await frontier.add([req(u) for u in A[:2] + B[:2] + [f"http://c.test/{i}" for i in range(2)]])
    assert await frontier.hosts_waiting() == 0, "every host is due"
    first = await frontier.lease(2)
    assert len(first.leases) == 2
    for lease in first.leases:
        await frontier.ack(lease, page(lease.request.url))
    assert await frontier.hosts_waiting() == 2, "the two hosts just hit wait their delay; the third is due"
    # Which two hosts came first is the backend's choice (a bucketed Redis crawl spreads them).
    (third,) = {host_key(A[0]), host_key(B[0]), host_key("http://c.test/0")} - {
        lease.request.host for lease in first.leases
    }
    await frontier.observe(third, Blocked(30.0))
    assert await frontier.hosts_waiting() == 3
    clock.now += 2.0
    assert await frontier.hosts_waiting() == 1, "only the blocked host still waits"


async def test_host_rows_list_the_busiest_hosts_with_their_pacing(
    make_frontier: FrontierFactory, clock: FakeClock
) -> None:
    frontier = await make_frontier(Politeness(per_host=2, delay_s=0.5))
    await frontier.add([req(u) for u in A[:4]])
    (lease,) = (await frontier.lease(1)).leases
    await frontier.add([req(u) for u in B[:2]])
    await frontier.observe(host_key(B[0]), Blocked(30.0))
    rows = {row.host: row for row in await frontier.host_rows(10)}
    a, b = rows[host_key(A[0])], rows[host_key(B[0])]
    assert (a.queued, a.in_flight, a.pace.delay_s) == (3, 1, 0.5)
    assert (b.queued, b.in_flight) == (2, 0) and b.blocked_for_s == pytest.approx(30.0)
    assert [row.host for row in await frontier.host_rows(1)] == [host_key(A[0])], "busiest first"
    await frontier.ack(lease, page(lease.request.url))

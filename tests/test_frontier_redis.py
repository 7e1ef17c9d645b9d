"""The Redis frontier beyond the contract suite: several workers on one crawl, fencing, reaping, time.

Every test runs against the session's private redis-server (tests/redis_server.py) in a crawl of its
own. Workers are RedisFrontier instances with distinct worker ids; time is a shared FakeClock unless a
test is about the server's clock.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from crawlpool.errors import FrontierError
from crawlpool.frontier import Lease, Politeness, Request, WorkerStatus
from crawlpool.records import Page
from crawlpool.urls import fingerprint, host_key
from tests.redis_server import drop_crawl, new_crawl_id, redis_url

pytestmark = pytest.mark.redis


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


OpenWorker = Callable[..., Awaitable[Any]]
ONE_PER_HOST = Politeness(per_host=1)


@pytest.fixture
def url() -> str:
    return redis_url()


@pytest.fixture
def crawl_id(url: str) -> str:
    return new_crawl_id()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def raw(url: str, crawl_id: str) -> AsyncIterator[Any]:
    """A plain client to look at the crawl's keys; the crawl's keys are deleted afterwards."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()
        await drop_crawl(url, crawl_id)


@pytest.fixture
async def open_worker(url: str, crawl_id: str, clock: FakeClock, raw: Any) -> AsyncIterator[OpenWorker]:
    """Opens workers of the test's crawl: `await open_worker(politeness, name=..., **options)`."""
    from crawlpool.frontier.redis import RedisFrontier

    async with AsyncExitStack() as stack:
        opened = 0

        async def factory(
            politeness: Politeness = ONE_PER_HOST, *, name: str | None = None, **options: Any
        ) -> RedisFrontier:
            nonlocal opened
            opened += 1
            options.setdefault("clock", clock)
            frontier = await RedisFrontier.open(
                url, crawl_id, politeness, worker_id=name or f"w{opened}", **options
            )
            stack.push_async_callback(frontier.aclose)
            return frontier

        yield factory


def req(url: str, depth: int = 0) -> Request:
    return Request(url, fingerprint(url), host_key(url), depth)


def page(lease: Lease, error: str | None = None) -> Page:
    url = lease.request.url
    status = 404 if error else 200
    return Page(url, url, status, "text/html", 0, None, None, 0, None, "2026-01-01T00:00:00Z", 1, error, 0)


def urls(host: str, n: int) -> list[str]:
    return [f"http://{host}/{i}" for i in range(n)]


async def all_records(raw: Any, worker: Any) -> int:
    """The records of the crawl, in every worker's stream."""
    return sum([await raw.xlen(worker._keys.records(w)) for w in await raw.hkeys(worker._keys.claims)])


def hosts_of(leases: list[Lease]) -> Counter[str]:
    return Counter(lease.request.host for lease in leases)


@pytest.mark.parametrize("per_host", [1, 3])
async def test_concurrent_leases_never_share_a_slot(open_worker: OpenWorker, raw: Any, per_host: int) -> None:
    workers = [await open_worker(Politeness(per_host=per_host)) for _ in range(5)]
    await workers[0].add([req(u) for h in range(40) for u in urls(f"h{h}.test", 4)])
    batches = await asyncio.gather(*(workers[i % 5].lease(1) for i in range(100)))
    leases = [lease for batch in batches for lease in batch.leases]
    expected = min(100, 40 * per_host)  # one URL per free slot, and there are 40 × per_host slots
    assert len(leases) == expected
    assert max(hosts_of(leases).values()) == per_host
    assert len({lease.request.fp for lease in leases}) == expected
    owners = [json.loads(v) for v in (await raw.hgetall(workers[0]._keys.owner)).values()]
    busy = [owner for owner in owners if "fp" in owner]
    assert len(busy) == expected and len({owner["t"] for owner in busy}) == expected
    assert (await workers[0].counts()).leased == expected


async def test_a_stale_token_takes_and_acks_nothing(
    open_worker: OpenWorker, clock: FakeClock, raw: Any
) -> None:
    w1 = await open_worker(lease_ms=1000)
    w2 = await open_worker(lease_ms=1000)
    await w1.add([req(u) for u in urls("a.test", 3)])
    (first,) = (await w1.lease(5)).leases
    assert await w1.release(first)  # w1 keeps the slot, idle, for its next URL
    clock.now += 2  # w1 paused: its slot lease expired
    assert await w2.reap() == 0  # the slot had no URL out; it is freed
    (taken,) = (await w2.lease(5)).leases
    assert taken.token != first.token
    # w1 wakes: its idle slot's token is stale, so its take gets nothing, and w2's lease stands.
    assert (await w1.lease(5)).leases == []
    assert await w2.ack(taken, page(taken))
    assert await all_records(raw, w1) == 1


async def test_an_ack_hands_out_the_next_url_of_a_host_without_delay_through_its_slot(
    open_worker: OpenWorker, raw: Any
) -> None:
    w1 = await open_worker()
    await w1.add([req(u) for u in urls("a.test", 3)])
    (first,) = (await w1.lease(1)).leases
    assert await w1.ack(first, page(first))
    # The next URL is in flight in Redis already, under the same token; to the caller it is queued
    # until lease() hands it out, which needs no call to Redis.
    assert await raw.hget(w1._keys.meta, "leased") == "1"
    assert (await w1.counts()).queued == 2 and (await w1.counts()).leased == 0
    sent = w1._scripts.pipeliner.batches
    (second,) = (await w1.lease(1)).leases
    assert w1._scripts.pipeliner.batches == sent
    assert second.token == first.token and second.request.url != first.request.url
    assert w1.is_current(second)
    assert await w1.ack(second, page(second))
    assert await all_records(raw, w1) == 2
    # Closing gives the URL handed out by the last ack back, untried and uncharged.
    await w1.aclose()
    assert await raw.hmget(w1._keys.meta, ["queued", "leased"]) == ["1", "0"]
    (left,) = await raw.lrange(w1._keys.host(first.request.host)[0], 0, -1)
    assert json.loads(left)["attempts"] == 0


async def test_an_ack_hands_out_a_due_retry_of_its_host_first_and_counts_it_out(
    open_worker: OpenWorker, clock: FakeClock, raw: Any
) -> None:
    w1 = await open_worker(Politeness(per_host=2))
    await w1.add([req(u) for u in urls("a.test", 4)])
    first, second = (await w1.lease(2)).leases
    assert await w1.retry(first, 1.0)
    state = w1._keys.host(first.request.host)[2]
    assert await raw.hget(state, "retries") == "1"  # what spares an ack the look when there is none
    clock.now += 1.5
    assert await w1.ack(second, page(second))
    (handed,) = (await w1.lease(1)).leases  # the ack's next URL: the retry, now due, before the queue
    assert handed.request.url == first.request.url and handed.request.attempts == 1
    assert await raw.hget(state, "retries") == "0"


async def test_an_answer_with_the_ack_moves_the_hosts_last_start_to_when_the_request_went_out(
    open_worker: OpenWorker, clock: FakeClock
) -> None:
    # The contract suite's test of this, with the answer in the ack's own script (end.lua).
    from crawlpool.policy.pacing import Answered

    w1 = await open_worker(Politeness(per_host=1, delay_s=2.0))
    await w1.add([req(u) for u in urls("a.test", 2)])
    (lease,) = (await w1.lease(1)).leases
    clock.now += 2.4  # sent 1.9 s after the lease, answered 0.5 s later
    assert await w1.ack_answered(lease, page(lease), Answered(200, 500))
    early = await w1.lease(1)
    assert early.leases == [] and early.wait_s == pytest.approx(1.5)
    clock.now += 1.5
    assert len((await w1.lease(1)).leases) == 1


async def test_no_url_is_handed_out_by_an_ack_when_the_host_has_a_delay(open_worker: OpenWorker) -> None:
    w1 = await open_worker(Politeness(per_host=1, delay_s=0.5))
    await w1.add([req(u) for u in urls("a.test", 3)])
    (first,) = (await w1.lease(1)).leases
    assert await w1.ack(first, page(first))
    assert not w1._next
    assert (await w1.counts()).queued == 2


async def test_a_url_an_ack_handed_out_to_a_worker_that_then_paused_is_reaped_and_its_ack_is_stale(
    open_worker: OpenWorker, clock: FakeClock, raw: Any
) -> None:
    w1 = await open_worker(lease_ms=1000)
    w2 = await open_worker(lease_ms=1000)
    await w1.add([req(u) for u in urls("a.test", 2)])
    (first,) = (await w1.lease(1)).leases
    assert await w1.ack(first, page(first))
    (second,) = (await w1.lease(1)).leases  # handed out by the ack
    clock.now += 2  # w1 paused past its lease
    assert await w2.reap() == 1
    (taken,) = (await w2.lease(5)).leases
    assert taken.request.url == second.request.url and taken.request.attempts == 1
    assert not await w1.ack(second, page(second))
    assert await w2.ack(taken, page(taken))
    assert await all_records(raw, w1) == 2


async def test_a_stale_token_cannot_extend_or_ack(
    open_worker: OpenWorker, clock: FakeClock, raw: Any
) -> None:
    w1 = await open_worker(lease_ms=1000)
    w2 = await open_worker(lease_ms=1000)
    await w1.add([req(u) for u in urls("a.test", 2)])
    (zombie,) = (await w1.lease(5)).leases
    clock.now += 2
    assert await w2.reap() == 1
    (taken,) = (await w2.lease(5)).leases
    assert taken.request == Request(**{**_fields(zombie.request), "attempts": 1})
    assert await w1.heartbeat() == [f"{zombie.request.host}#0"]
    assert not await w1.ack(zombie, page(zombie))
    assert not await w1.retry(zombie, 0)
    assert not await w1.release(zombie)
    assert await all_records(raw, w1) == 0
    assert await w2.heartbeat() == []
    assert await w2.ack(taken, page(taken))


def _fields(request: Request) -> dict[str, Any]:
    return {name: getattr(request, name) for name in Request.__slots__}


async def test_two_racing_reapers_requeue_once(open_worker: OpenWorker, clock: FakeClock) -> None:
    dead = await open_worker(Politeness(per_host=2), lease_ms=1000)
    await dead.add([req(u) for u in urls("a.test", 4) + urls("b.test", 1)])
    out = (await dead.lease(3)).leases
    assert len(out) == 3
    await dead.aclose(release=False)
    reapers = [await open_worker(Politeness(per_host=2), lease_ms=1000) for _ in range(3)]
    clock.now += 1.5
    moved = await asyncio.gather(*(reaper.reap() for reaper in reapers), reapers[0].reap())
    assert sum(moved) == 3
    counts = await reapers[0].counts()
    assert (counts.queued, counts.leased) == (5, 0)
    again = (await reapers[1].lease(10)).leases
    attempts = {lease.request.url: lease.request.attempts for lease in again}
    assert {url: attempts[url] for url in (lease.request.url for lease in out)} == {
        lease.request.url: 1 for lease in out
    }


async def test_add_is_idempotent_across_workers(open_worker: OpenWorker) -> None:
    w1, w2 = await open_worker(), await open_worker()
    batch = [req(u) for h in range(5) for u in urls(f"h{h}.test", 10)]
    added = await asyncio.gather(w1.add(batch), w2.add(batch), w1.add(batch[::-1]), w2.add(batch[:7]))
    assert sum(added) == 50
    counts = await w2.counts()
    assert (counts.seen, counts.queued) == (50, 50)


async def test_links_another_worker_queued_are_not_sent_to_add_lua(
    open_worker: OpenWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    w1, w2 = await open_worker(), await open_worker()
    assert await w1.add([req(u) for u in urls("a.test", 3)]) == 3
    sent: list[list[str | int]] = []
    add = w2._scripts.add

    def counted(*, keys: list[str], args: list[str | int]) -> Awaitable[Any]:
        sent.append(args)
        return add(keys=keys, args=args)

    monkeypatch.setattr(w2._scripts, "add", counted)
    assert await w2.add([req(u) for u in urls("a.test", 3)]) == 0
    assert sent == [], "every link was seen: add.lua is not called"
    assert await w2.add([req(u) for u in urls("a.test", 5)]) == 2
    fps = {str(req(u).fp) for u in urls("a.test", 5)[3:]}
    assert len(sent) == 1 and fps <= set(sent[0]) and len(sent[0]) == 3 + 1 + 4 * 2, "only the 2 new links"
    assert (await w1.counts()).queued == 5


async def test_a_worker_told_that_others_hold_every_slot_asks_again_only_after_a_while(
    open_worker: OpenWorker, clock: FakeClock
) -> None:
    w1, w2 = await open_worker(ONE_PER_HOST, urls_per_lease=1), await open_worker(ONE_PER_HOST)
    await w1.add([req(u) for u in urls("a.test", 2)])
    (lease,) = (await w1.lease(1)).leases
    batches = w2._scripts.pipeliner.batches
    told = await w2.lease(1)
    assert (told.leases, told.wait_s) == ([], 1.0), "w1 holds the slot: ask again within POLL_S"
    assert w2._scripts.pipeliner.batches == batches + 1
    assert await w1.ack(lease, page(lease))  # the slot is free now, but w2 was told otherwise just now
    trusted = await w2.lease(1)
    assert w2._scripts.pipeliner.batches == batches + 1, "asked Redis again at once"
    assert (trusted.leases, trusted.wait_s) == ([], pytest.approx(0.05)), "ask again when the trust ends"
    clock.now += 0.06
    (got,) = (await w2.lease(1)).leases
    assert got.request.url == "http://a.test/1"


async def test_a_floor_that_is_no_number_of_seconds_is_refused_before_redis(open_worker: OpenWorker) -> None:
    from crawlpool.policy.pacing import FloorRaised

    worker = await open_worker()
    with pytest.raises(ValueError, match="no delay"):
        await worker.observe("http://a.test:80", FloorRaised(float("inf")))
    assert (await worker.observe("http://a.test:80", FloorRaised(2.0))).floor_s == 2.0


async def test_per_host_holds_across_workers_for_a_whole_crawl(open_worker: OpenWorker, raw: Any) -> None:
    workers = [await open_worker(Politeness(per_host=2), urls_per_lease=3) for _ in range(3)]
    everything = [u for h in ("a.test", "b.test", "c.test") for u in urls(h, 8)]
    await workers[0].add([req(u) for u in everything])
    rng = random.Random(7)
    out: dict[int, tuple[Any, Lease]] = {}  # fp → (worker, lease)
    acked: list[str] = []
    for _ in range(200):
        for worker in workers:
            for lease in (await worker.lease(3)).leases:
                assert lease.request.fp not in out
                out[lease.request.fp] = (worker, lease)
            assert max(hosts_of([lease for _, lease in out.values()]).values(), default=0) <= 2
        for fp in rng.sample(sorted(out), k=len(out) // 2 + 1) if out else []:
            worker, lease = out.pop(fp)
            assert await worker.ack(lease, page(lease))
            acked.append(lease.request.url)
        if await workers[1].is_done():
            break
    assert sorted(acked) == sorted(everything)
    records = [entry for w in workers for entry in await raw.xrange(w._keys.records(w.worker_id))]
    assert sorted(json.loads(fields["page"])["url"] for _, fields in records) == sorted(everything)


async def test_is_done_only_when_everything_is_acked(open_worker: OpenWorker, raw: Any) -> None:
    w1 = await open_worker(Politeness(per_host=3))
    w2 = await open_worker(Politeness(per_host=3))
    meta = w1._keys.meta
    assert await w1.is_done()  # an empty crawl is done
    await w1.add([req(u) for u in urls("a.test", 3)])
    assert not await w2.is_done()
    assert await raw.hget(meta, "state") == "running"
    one, two, three = (await w1.lease(3)).leases
    assert await w1.ack(one, page(one))
    assert await w1.retry(two, 0)
    assert not await w2.is_done()
    assert await w1.ack(three, page(three))
    (two,) = (await w2.lease(3)).leases
    assert not await w1.is_done()
    assert await w2.ack(two, page(two, error="http_4xx: 404"))
    assert await w1.is_done() and await w2.is_done()
    assert await raw.hget(meta, "state") == "done"
    await w2.add([req("http://a.test/more")])
    assert await raw.hget(meta, "state") == "running"
    assert not await w1.is_done()


async def test_a_dead_workers_hosts_come_back_after_the_lease(
    open_worker: OpenWorker, clock: FakeClock
) -> None:
    dead = await open_worker(lease_ms=3000)
    await dead.add([req(u) for u in urls("a.test", 2)])
    (lost,) = (await dead.lease(5)).leases
    await dead.aclose(release=False)  # no release, no heartbeat: as if killed
    live = await open_worker(lease_ms=3000)
    waiting = await live.lease(5)
    assert waiting.leases == [] and waiting.wait_s is not None  # another worker holds a.test
    clock.now += 2.9
    assert await live.reap() == 0
    clock.now += 0.2
    assert await live.reap() == 1
    (again,) = (await live.lease(5)).leases
    assert (again.request.url, again.request.attempts) == (lost.request.url, 1)


async def test_a_restarted_worker_reclaims_its_slots_at_once(open_worker: OpenWorker) -> None:
    before = await open_worker(name="m1-0")
    await before.add([req(u) for u in urls("a.test", 2)])
    (lost,) = (await before.lease(5)).leases
    await before.aclose(release=False)
    after = await open_worker(name="m1-0")
    (again,) = (await after.lease(5)).leases
    assert (again.request.url, again.request.attempts) == (lost.request.url, 1)


async def test_aclose_gives_the_slots_back_uncharged(open_worker: OpenWorker) -> None:
    leaving = await open_worker()
    await leaving.add([req(u) for u in urls("a.test", 2)])
    (out,) = (await leaving.lease(5)).leases
    await leaving.aclose()
    other = await open_worker()
    (again,) = (await other.lease(5)).leases
    assert again.request == out.request


async def test_urls_per_lease_bounds_how_long_a_worker_keeps_a_host(
    open_worker: OpenWorker, clock: FakeClock
) -> None:
    w1 = await open_worker(urls_per_lease=2)
    w2 = await open_worker(urls_per_lease=2)
    await w1.add([req(u) for u in urls("a.test", 3)])
    for _ in range(2):
        (lease,) = (await w1.lease(1)).leases
        assert (await w2.lease(1)).leases == []
        assert await w1.ack(lease, page(lease))
    clock.now += 0.06  # past the time w2 trusts its answer that w1 holds the only slot
    (third,) = (await w2.lease(1)).leases  # w1 gave the slot up after its 2nd URL
    assert third.request.url == "http://a.test/2"


async def test_time_comes_from_the_server(open_worker: OpenWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    w1 = await open_worker(Politeness(per_host=1, delay_s=30.0), clock=None)
    w2 = await open_worker(Politeness(per_host=1, delay_s=30.0), clock=None)
    await w1.add([req(u) for u in urls("a.test", 2)])
    (first,) = (await w1.lease(5)).leases
    assert await w1.ack(first, page(first))  # the next start is 30 s away, so w1 frees the slot
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)  # w2's machine runs an hour ahead
    batch = await w2.lease(5)
    assert batch.leases == []
    assert batch.wait_s is not None and 20.0 < batch.wait_s <= 30.0


async def test_records_and_queued_urls_are_json(open_worker: OpenWorker, raw: Any) -> None:
    worker = await open_worker()
    referred = Request("http://a.test/é", fingerprint("http://a.test/é"), "http://a.test:80", 2, "http://x/")
    await worker.add([referred, req("http://a.test/2")])
    (lease,) = (await worker.lease(1)).leases
    assert lease.request == referred
    queued = await raw.lrange(f"{worker._keys.prefix}q:http://a.test:80", 0, -1)
    assert [json.loads(record)["url"] for record in queued] == ["http://a.test/2"]
    record = page(lease)
    assert await worker.ack(lease, record)
    ((_, fields),) = await raw.xrange(worker._keys.records(worker.worker_id))
    assert Page.from_dict(json.loads(fields["page"])) == record
    assert (int(fields["fp"]), fields["worker"]) == (referred.fp, worker.worker_id)


async def test_the_seen_set_is_made_of_intsets(open_worker: OpenWorker, raw: Any) -> None:
    worker = await open_worker()
    await worker.add([req(u) for u in urls("a.test", 300)])
    buckets = [key async for key in raw.scan_iter(match=f"{worker._keys.prefix}seen:*")]
    assert buckets and sum([await raw.scard(key) for key in buckets]) == 300
    assert {await raw.object("encoding", key) for key in buckets} == {"intset"}


async def test_status_shows_workers_and_errors(open_worker: OpenWorker) -> None:
    w1 = await open_worker(Politeness(per_host=2), name="m1-0")
    await w1.add([req(u) for u in urls("a.test", 4)])
    one, _ = (await w1.lease(2)).leases
    await w1.ack(one, page(one, error="http_4xx: gone"))  # hands out the host's next URL (no delay)
    status = await w1.status()
    assert (status.seen, status.queued, status.in_flight, status.done) == (4, 1, 2, 1)
    assert status.failures == {"http_4xx": 1}
    assert status.state == "running"
    assert status.politeness == Politeness(per_host=2)
    # one URL finished in the last 10 s: 0.1 a second
    assert status.workers == (
        WorkerStatus("m1-0", slots=2, in_flight=2, heartbeat_age_s=0.0, urls_per_s=0.1),
    )


def lose_the_first_end_reply(
    monkeypatch: pytest.MonkeyPatch, worker: Any, meanwhile: Callable[[], Awaitable[None]] | None = None
) -> list[int]:
    """The worker's next end.lua call runs in Redis but its reply is lost (after `meanwhile`, run with the
    script as it is); the worker's retry and later calls go through. Returns the count of calls, live."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    end = worker._scripts.end
    calls = [0]

    async def lossy(**kwargs: Any) -> Any:
        calls[0] += 1
        result = await end(**kwargs)
        if calls[0] == 1:
            if meanwhile is not None:
                monkeypatch.setattr(worker._scripts, "end", end)
                await meanwhile()
                monkeypatch.setattr(worker._scripts, "end", lossy)
            raise RedisConnectionError("Connection reset by peer")
        return result

    monkeypatch.setattr(worker._scripts, "end", lossy)
    return calls


async def test_an_ack_whose_reply_was_lost_counts_once(
    open_worker: OpenWorker, monkeypatch: pytest.MonkeyPatch, raw: Any
) -> None:
    worker = await open_worker()
    await worker.add([req("http://a.test/1")])
    (lease,) = (await worker.lease(1)).leases
    calls = lose_the_first_end_reply(monkeypatch, worker)
    assert await worker.ack(lease, page(lease))  # run again after the lost reply: it had committed
    assert calls == [2]
    assert not await worker.ack(lease, page(lease))  # a real second ack
    assert await all_records(raw, worker) == 1
    assert (await worker.counts()).done == 1


async def test_a_zombies_resent_ack_is_not_taken_for_the_record_of_its_url_under_a_later_lease(
    open_worker: OpenWorker, clock: FakeClock, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    w1 = await open_worker(lease_ms=1000)
    w2 = await open_worker(lease_ms=1000)
    await w1.add([req("http://a.test/1")])
    (zombie,) = (await w1.lease(1)).leases
    clock.now += 2  # w1 paused past its lease; the URL comes back and w1 leases it again
    assert await w2.reap() == 1
    (again,) = (await w1.lease(1)).leases
    assert again.request.url == zombie.request.url and again.token != zombie.token

    async def the_later_lease_commits() -> None:
        assert await w1.ack(again, page(again))

    lose_the_first_end_reply(monkeypatch, w1, meanwhile=the_later_lease_commits)  # its STALE reply
    assert not await w1.ack(zombie, page(zombie)), "the zombie's ack committed nothing: no second line"
    assert await all_records(raw, w1) == 1


async def test_an_ack_called_again_after_a_frontier_error_finds_what_its_first_call_committed(
    open_worker: OpenWorker, monkeypatch: pytest.MonkeyPatch, raw: Any
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    w1 = await open_worker(Politeness(per_host=2), lease_ms=300)  # it rides out a lost reply 0.3 s
    await w1.add([req(u) for u in urls("a.test", 2)])
    one, two = (await w1.lease(2)).leases
    end = w1._scripts.end

    async def every_reply_lost(**kwargs: Any) -> Any:
        await end(**kwargs)
        raise RedisConnectionError("Connection reset by peer")

    monkeypatch.setattr(w1._scripts, "end", every_reply_lost)
    with pytest.raises(FrontierError):
        await w1.ack(one, page(one))  # it committed; no reply came back
    monkeypatch.setattr(w1._scripts, "end", end)
    assert await w1.ack(two, page(two))  # the worker now knows a later id of its stream
    assert await w1.ack(one, page(one)), "its first call's record counts, found above that call's id"
    assert await all_records(raw, w1) == 2


async def test_a_worker_joining_a_crawl_from_before_lets_its_unread_ack_ids_go(
    open_worker: OpenWorker, raw: Any
) -> None:
    w1 = await open_worker()
    old = w1._keys.prefix + "acks"
    await raw.zadd(old, {"7:123": 1})  # what an older version kept for every ack
    await open_worker()
    assert not await raw.exists(old)


async def test_unreachable_redis_is_a_one_line_frontier_error(url: str) -> None:
    from crawlpool.frontier.redis import RedisFrontier

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    address = f"redis://:secret@127.0.0.1:{port}/0"
    with pytest.raises(FrontierError) as caught:
        await RedisFrontier.open(address, new_crawl_id(), Politeness())
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "secret" not in message and "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_a_redis_lost_mid_crawl_is_ridden_out_then_stops_the_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Redis vanishes under a worker: it retries with backoff for a bounded time, then raises one
    FrontierError that says the state is kept and how to rejoin (its own server: the shared one stays)."""
    import shutil

    from crawlpool.frontier.redis import RedisFrontier
    from tests import redis_server

    redis_url()  # skips (or fails under CRAWLPOOL_REQUIRE_REDIS=1) like every Redis test
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs a redis-server binary to stop mid-test")
    port = redis_server._free_port()
    server = await asyncio.create_subprocess_exec(
        binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
        "--dir", str(tmp_path),
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 5
        while not redis_server._pings(port):  # waiting for a process to listen, bounded
            assert time.monotonic() < deadline, "redis-server did not start"
        frontier = await RedisFrontier.open(f"redis://127.0.0.1:{port}/0", "lost", Politeness(), lease_ms=500)
        await frontier.add([req("http://a.test/1")])
        server.terminate()
        await server.wait()
        started = time.monotonic()
        with pytest.raises(FrontierError, match=r"lost .* --resume to rejoin"):
            await frontier.lease(1)
        assert time.monotonic() - started < 5, "the outage was not bounded"
        await frontier.aclose(release=False)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()

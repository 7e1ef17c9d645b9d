"""A crawl spread over key buckets: on a real 3-master Redis Cluster (tests/redis_cluster.py) every
master carries a share of the work, and on one server with 4 buckets the crawl-wide answers (done,
tokens, counts) hold across buckets. The contract suite runs on both too (tests/frontier_backends)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from crawlpool.frontier import Politeness, Request
from crawlpool.records import Page
from crawlpool.urls import fingerprint, host_key
from tests.redis_cluster import evalsha_calls
from tests.redis_server import drop_crawl, new_crawl_id, redis_url

pytestmark = pytest.mark.redis


def req(url: str) -> Request:
    return Request(url, fingerprint(url), host_key(url), 0)


def page(url: str) -> Page:
    return Page(url, url, 200, "text/html", 0, None, None, 0, None, "2026-01-01T00:00:00Z", 1, None, 0)


async def test_each_master_of_a_cluster_carries_a_share_of_a_crawl() -> None:
    from crawlpool.frontier.redis import RedisFrontier
    from tests import redis_cluster

    url = redis_cluster.cluster_url()
    crawl_id = new_crawl_id()
    before = [await evalsha_calls(port) for port in redis_cluster.ports]
    frontier = await RedisFrontier.open(url, crawl_id, Politeness(per_host=1, delay_s=0), worker_id="w")
    try:
        urls = [f"http://h{h}.test/{i}" for h in range(40) for i in range(3)]
        assert await frontier.add([req(u) for u in urls]) == len(urls)
        done: list[str] = []
        while not await frontier.is_done():
            batch = await frontier.lease(16)
            for lease in batch.leases:
                assert await frontier.ack(lease, page(lease.request.url))
                done.append(lease.request.url)
        counts = await frontier.counts()
        assert sorted(done) == sorted(urls)  # every URL once
        assert (counts.seen, counts.queued, counts.leased, counts.done) == (120, 0, 0, 120)
        assert (await frontier.status()).state == "finished"
        # `crawlpool status --frontier redis+cluster://...` finds it on its master and sums its buckets.
        from crawlpool.frontier.redis_crawls import list_crawls

        (listed,) = [status for status in await list_crawls(url) if status.crawl_id == crawl_id]
        assert (listed.state, listed.done, listed.seen, listed.queued) == ("finished", 120, 120, 0)
    finally:
        await frontier.aclose()
        await drop_crawl(url, crawl_id)
    after = [await evalsha_calls(port) for port in redis_cluster.ports]
    shares = [b - a for a, b in zip(before, after, strict=True)]
    assert all(share > 0 for share in shares), f"scripts run per master: {shares}"


@pytest.fixture
async def bucketed() -> Any:
    """A 4-bucket crawl on the session's one server, with a FakeClock-free worker."""
    from crawlpool.frontier.redis import RedisFrontier

    url, crawl_id = redis_url(), new_crawl_id()
    frontier = await RedisFrontier.open(
        url, crawl_id, Politeness(per_host=1, delay_s=0), worker_id="w", buckets=4
    )
    try:
        yield frontier
    finally:
        await frontier.aclose()
        await drop_crawl(url, crawl_id)


def hosts_in_two_buckets(frontier: Any) -> tuple[str, str]:
    """Two hosts in different buckets of the frontier's crawl."""
    layout = frontier._layout
    for a, b in itertools.combinations((f"h{i}.test" for i in range(50)), 2):
        if layout.bucket_of(host_key(f"http://{a}/")) != layout.bucket_of(host_key(f"http://{b}/")):
            return a, b
    raise AssertionError("no two hosts in two buckets")


async def test_done_is_never_seen_while_a_page_moves_its_links_to_another_bucket(bucketed: Any) -> None:
    """The race of a crawl over buckets: done is read bucket by bucket, and meanwhile a page of bucket
    A adds its link in bucket B (which was already read as empty) and acks (before A is read). Each
    read alone sees nothing queued or leased; the second pass must not call that done."""
    frontier = bucketed
    host_a, host_b = hosts_in_two_buckets(frontier)
    bucket_a, bucket_b = (frontier._layout.bucket_of(host_key(f"http://{h}/")) for h in (host_a, host_b))
    await frontier.add([req(f"http://{host_a}/")])
    (lease,) = (await frontier.lease(1)).leases
    link = f"http://{host_b}/linked"

    reads = 0
    each = frontier._each

    async def interleaved(read: Callable[[Any], Awaitable[Any]]) -> list[Any]:
        nonlocal reads
        reads += 1
        if reads > 1:
            return await each(read)
        # The first pass reads B first; the page's add and ack fall between B and A.
        out: dict[int, Any] = {}
        order = [bucket_b, *(b for b in range(4) if b not in (bucket_a, bucket_b)), bucket_a]
        for b in order:
            if b == bucket_a:
                assert await frontier.add([req(link)]) == 1
                assert await frontier.ack(lease, page(lease.request.url))
            out[b] = await frontier._call(read(frontier._layout.buckets[b]))
        return [out[b] for b in range(4)]

    frontier._each = interleaved
    first_pass_saw_nothing = not await frontier.is_done()
    frontier._each = each
    assert first_pass_saw_nothing, "done was declared while a link sat queued in another bucket"
    assert reads == 2, "the first pass saw every bucket empty: only the second could tell"
    (again,) = (await frontier.lease(1)).leases
    assert again.request.url == link
    assert await frontier.ack(again, page(link))
    assert await frontier.is_done()


async def test_tokens_of_different_buckets_never_meet(bucketed: Any) -> None:
    frontier = bucketed
    await frontier.add([req(f"http://h{i}.test/") for i in range(40)])
    leases = (await frontier.lease(40)).leases
    assert len(leases) == 40
    tokens = [lease.token for lease in leases]
    assert len(set(tokens)) == 40
    assert all(lease.token % 4 == frontier._layout.bucket_of(lease.request.host) for lease in leases)
    for lease in leases:
        assert await frontier.ack(lease, page(lease.request.url))
    assert (await frontier.counts()).done == 40
    assert await frontier.is_done()


async def test_a_bucket_failing_mid_lease_leaves_the_others_urls_to_the_next_lease(bucketed: Any) -> None:
    """Buckets answer separately: when one bucket's take fails, the URLs the others handed out are in
    flight under this worker, so the next lease must serve them (not leave them to the reaper)."""
    from crawlpool.errors import FrontierError

    frontier = bucketed
    host_a, host_b = hosts_in_two_buckets(frontier)
    url_a = f"http://{host_a}/"
    await frontier.add([req(url_a), req(f"http://{host_b}/")])
    failing_counts = frontier._layout.of(host_key(f"http://{host_b}/")).counts
    run = frontier._run

    async def one_bucket_fails(script: Any, keys: list[str], args: list[Any], on_retry: Any = None) -> Any:
        if script.name == "take" and keys[0] == failing_counts:
            raise FrontierError("redis frontier: lost a node")
        return await run(script, keys, args, on_retry)

    frontier._run = one_bucket_fails
    with pytest.raises(FrontierError, match="lost a node"):
        await frontier.lease(2)
    frontier._run = run
    (lease,) = (await frontier.lease(1)).leases
    assert lease.request.url == url_a
    assert await frontier.ack(lease, page(url_a))
    assert (await frontier.counts()).done == 1


async def test_a_bad_or_unreachable_cluster_url_is_one_clear_error() -> None:
    from crawlpool.errors import ConfigError, FrontierError
    from crawlpool.frontier.redis import RedisFrontier
    from tests.redis_server import _free_port

    with pytest.raises(ConfigError, match=r"bad URL redis\+cluster://127\.0\.0\.1:7000/3: .*db.* must be 0"):
        await RedisFrontier.open("redis+cluster://127.0.0.1:7000/3", "c", Politeness())
    nobody = f"redis+cluster://127.0.0.1:{_free_port()}"
    with pytest.raises(FrontierError, match=rf"cannot use {re.escape(nobody)}: .*cannot be connected"):
        await RedisFrontier.open(nobody, "c", Politeness())


async def test_a_crawl_from_before_buckets_keeps_its_one_bucket() -> None:
    """A crawl's meta without `buckets` was made with every key under one tag: it opens as one bucket
    whatever the opener asks for, and the bucket count of a new crawl is fixed by its first worker."""
    import redis.asyncio as aioredis

    from crawlpool.frontier.redis import RedisFrontier

    url, old, new = redis_url(), new_crawl_id(), new_crawl_id()
    client = aioredis.from_url(url, decode_responses=True)
    await client.hset(
        f"crawlpool:{{{old}}}:meta",
        mapping={"schema": 1, "per_host": 1, "delay_ms": 0, "seen_bits": 14, "state": "running"},
    )
    await client.aclose()
    try:
        frontier = await RedisFrontier.open(url, old, Politeness(per_host=1, delay_s=0), buckets=4)
        assert frontier._layout.n == 1
        await frontier.aclose()
        first = await RedisFrontier.open(url, new, Politeness(), buckets=4)
        second = await RedisFrontier.open(url, new, Politeness(), buckets=8)
        assert (first._layout.n, second._layout.n) == (4, 4)
        await first.aclose()
        await second.aclose()
    finally:
        await drop_crawl(url, old)
        await drop_crawl(url, new)

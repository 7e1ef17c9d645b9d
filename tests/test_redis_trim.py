"""Trimming the Redis frontier's records streams (redis_trim.py, lua/trim.lua): what a worker may
claim, a worker's stream shrinking as it confirms, and a worker killed between an ack and its manifest
line still repaired exactly once. Against the session's private redis-server, and those marked
BACKENDS also against a local 3-master Redis Cluster (tests/redis_cluster.py), where a worker has a
stream in each of the crawl's 16 key buckets; time is a FakeClock (stream ids are Redis' own clock:
the keep window, KEEP_MS, is set to 0 where records must go)."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from crawlpool.errors import StorageError
from crawlpool.frontier import Lease, Politeness, Request
from crawlpool.frontier.redis_trim import Claims
from crawlpool.records import Page
from crawlpool.store import MANIFEST_NAME, STATE_DIR, Manifest, rewrite_manifest, with_manifest
from crawlpool.urls import fingerprint, host_key
from tests.redis_server import drop_crawl, new_crawl_id, redis_url

LEASE_MS = 60_000
START_S = 5000.0


# -- what a worker may claim (no Redis) ------------------------------------------------------------


def test_a_claim_stops_below_every_record_in_flight_or_not_yet_synced() -> None:
    claims = Claims(known="10-0")
    first = claims.sent()
    claims.saw("20-0")
    second = claims.sent()
    claims.answered(second, True, "25-0")  # committed: its line is written, not yet fsynced
    synced = claims.unsynced()
    assert claims.claim(0) == "10-0", "an ack in flight may commit anywhere above what was known"
    claims.answered(first, False)  # stale: no record
    assert claims.claim(0) == "25-0", "a record whose line was not fsynced holds the claim at its id"
    assert claims.claim(synced) is None, "after the fsync nothing is held: the caller claims `known`"
    assert claims.known == "25-0"


def test_a_call_that_never_answered_holds_the_claim_for_good() -> None:
    claims = Claims(known="10-0")
    claims.sent()  # its reply was lost: it may have committed a record whose line is not written
    claims.saw("99-0")
    done = claims.sent()
    claims.answered(done, True)  # an ALREADY that was this worker's: the id is above 99-0
    assert claims.claim(claims.unsynced()) == "10-0"


# -- the manifest's side (no Redis) ----------------------------------------------------------------


def plain_page(url: str) -> Page:
    return Page(url, url, 200, "text/html", 0, None, None, 0, None, "2026-01-01T00:00:00Z", 1, None, 0)


async def test_a_manifest_whose_append_failed_confirms_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Manifest(tmp_path) as manifest:
        manifest.append(plain_page("http://a.test/1"))
        await manifest.sync()

        def disk_full(fd: int, data: Any) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("os.write", disk_full)
        with pytest.raises(StorageError):
            manifest.append(plain_page("http://a.test/2"))
        with pytest.raises(StorageError, match="sync"):
            await manifest.sync()


async def test_the_repair_keeps_the_manifest_and_adds_each_held_record_once(tmp_path: Path) -> None:
    lines = [plain_page(f"http://a.test/{i}").to_json() for i in range(4)]
    # 0 (its record trimmed), 1 twice, 2 cut short by a kill; 3 never written
    (tmp_path / MANIFEST_NAME).write_text("\n".join([lines[0], lines[1], lines[1], lines[2][:30]]))

    async def held() -> AsyncIterator[Page]:
        for i in (1, 2, 3):
            yield plain_page(f"http://a.test/{i}")

    repaired = [page.url async for page in with_manifest(tmp_path, held())]
    assert repaired == [f"http://a.test/{i}" for i in range(4)]


# -- against Redis ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = START_S

    def __call__(self) -> float:
        return self.now


class Worker:
    """A frontier with a manifest in its own directory, as a crawl's worker has."""

    def __init__(self, frontier: Any, output: Path, manifest: Manifest) -> None:
        self.frontier = frontier
        self.output = output
        self.manifest = manifest

    async def commit(self, lease: Lease, *, write: bool = True) -> None:
        page = page_of(lease)
        assert await self.frontier.ack(lease, page)
        if write:
            self.manifest.append(page)


OpenWorker = Callable[[str], Awaitable[Worker]]


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> tuple[str, int | None]:
    """The URL and key buckets of a new crawl: the session's one server with one bucket ("single",
    the default) or 4 ("buckets"), or its Redis Cluster with the cluster's default ("cluster")."""
    kind = getattr(request, "param", "single")
    if kind == "cluster":
        from tests import redis_cluster

        return redis_cluster.cluster_url(), None
    return redis_url(), 4 if kind == "buckets" else None


@pytest.fixture
def url(backend: tuple[str, int | None]) -> str:
    return backend[0]


# One server (one key bucket: a stream per worker) and a 3-master cluster (16: a stream per bucket)
BACKENDS = pytest.mark.parametrize("backend", ["single", "cluster"], indirect=True)


def masters(url: str) -> list[int]:
    """The ports of the servers holding the crawl's keys: the one server, or every master."""
    if "+cluster" in url:
        from tests import redis_cluster

        return list(redis_cluster.ports)
    port = urlsplit(url).port
    assert port is not None
    return [port]


@pytest.fixture
async def crawl(url: str) -> AsyncIterator[tuple[str, Any]]:
    from crawlpool.frontier.redis_connection import connect

    crawl_id = new_crawl_id()
    client = connect(url)  # a RedisCluster for a cluster URL: it routes each stream to its master
    try:
        yield crawl_id, client
    finally:
        await client.aclose()
        await drop_crawl(url, crawl_id)


@pytest.fixture
async def open_worker(
    backend: tuple[str, int | None], crawl: tuple[str, Any], tmp_path: Path, clock: FakeClock
) -> AsyncIterator[OpenWorker]:
    from crawlpool.frontier.redis import RedisFrontier

    url, buckets = backend
    async with AsyncExitStack() as stack:

        async def factory(name: str) -> Worker:
            output = tmp_path / name
            (output / STATE_DIR / "tmp").mkdir(parents=True, exist_ok=True)
            frontier = await RedisFrontier.open(
                url,
                crawl[0],
                Politeness(per_host=4),
                worker_id=name,
                lease_ms=LEASE_MS,
                clock=clock,
                buckets=buckets,
            )
            stack.push_async_callback(frontier.aclose)
            manifest = await stack.enter_async_context(Manifest(output))
            frontier.confirm_with(manifest.sync)
            return Worker(frontier, output, manifest)

        yield factory


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def no_keep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("crawlpool.frontier.redis_calls.KEEP_MS", 0)


def req(url: str) -> Request:
    return Request(url, fingerprint(url), host_key(url), 0)


def page_of(lease: Lease) -> Page:
    url = lease.request.url
    return Page(url, url, 200, "text/html", 0, None, None, 0, None, "2026-01-01T00:00:00Z", 1, None, 0)


async def stream_urls(client: Any, key: str) -> list[str]:
    return [json.loads(fields["page"])["url"] for _, fields in await client.xrange(key)]


def manifest_urls(output: Path) -> list[str]:
    return [json.loads(line)["url"] for line in (output / MANIFEST_NAME).read_text().splitlines()]


def stream_of(frontier: Any, url: str, worker: str) -> str:
    """`worker`'s records stream in the key bucket of `url`'s host."""
    return str(frontier._layout.of(host_key(url)).records(worker))


async def held_by(client: Any, frontier: Any, worker: str) -> dict[str, list[str]]:
    """The URLs each non-empty records stream of `worker` holds, by stream key (every bucket)."""
    streams = [keys.records(worker) for keys in frontier._layout.buckets]
    held = {key: await stream_urls(client, key) for key in streams}
    return {key: urls for key, urls in held.items() if urls}


def hosts_by_bucket(frontier: Any, per_bucket: int) -> list[list[str]]:
    """`per_bucket` host names for each key bucket of the frontier's crawl."""
    layout = frontier._layout
    found: list[list[str]] = [[] for _ in range(layout.n)]
    for i in itertools.count():
        host = f"h{i}.test"
        bucket = found[layout.bucket_of(host_key(f"http://{host}/"))]
        if len(bucket) < per_bucket:
            bucket.append(host)
        if all(len(hosts) == per_bucket for hosts in found):
            return found
    raise AssertionError("unreachable")


async def lease_all(frontier: Any, n: int) -> list[Lease]:
    leases: list[Lease] = []
    while len(leases) < n:
        batch = await frontier.lease(n - len(leases))
        assert batch.leases, "every URL's host is due"
        leases += batch.leases
    return leases


@pytest.mark.redis
async def test_each_stream_shrinks_to_what_its_worker_confirmed(
    open_worker: OpenWorker, crawl: tuple[str, Any], no_keep: None
) -> None:
    client = crawl[1]
    w1, w2 = await open_worker("w1"), await open_worker("w2")
    await w1.frontier.add([req(f"http://h{i}.test/") for i in range(5)])
    a1, a2, a3, a4 = (await w1.frontier.lease(4)).leases
    (b1,) = (await w2.frontier.lease(1)).leases
    for worker, lease in ((w1, a1), (w2, b1), (w1, a2)):
        await worker.commit(lease)
    streams = {w: f"crawlpool:{{{crawl[0]}}}:records:{w}" for w in ("w1", "w2")}
    assert [await client.xlen(streams[w]) for w in ("w1", "w2")] == [2, 1]

    async def commits_while_syncing() -> None:
        await w1.commit(a3)  # its line is written after the fsync began: the fsync may miss it
        await w1.commit(a4)
        await w1.manifest.sync()

    w1.frontier._sync = commits_while_syncing
    await w1.frontier.confirm_records()
    assert await stream_urls(client, streams["w1"]) == [a3.request.url, a4.request.url]
    w1.frontier._sync = w1.manifest.sync
    await w1.frontier.confirm_records()
    assert await stream_urls(client, streams["w1"]) == [a4.request.url], "the last entry always stays"
    assert await client.xlen(streams["w2"]) == 1, "w2 confirmed nothing: its stream is untouched"
    await w2.frontier.confirm_records()
    assert await stream_urls(client, streams["w2"]) == [b1.request.url]
    assert manifest_urls(w1.output) == [u.request.url for u in (a1, a2, a3, a4)]


@pytest.mark.redis
@BACKENDS
async def test_each_bucket_stream_shrinks_at_its_own_claim_on_every_master(
    url: str, open_worker: OpenWorker, crawl: tuple[str, Any], no_keep: None
) -> None:
    """A worker has one stream per key bucket, each with its node's ids and its own claim: a record
    committed while the fsync ran holds back its own bucket's stream and no other, and every master
    that holds streams sees them shrink."""
    client = crawl[1]
    w1 = await open_worker("w1")
    hosts = hosts_by_bucket(w1.frontier, 3)
    urls = [f"http://{host}/" for bucket in hosts for host in bucket]
    await w1.frontier.add([req(u) for u in urls])
    leases = {lease.request.url: lease for lease in await lease_all(w1.frontier, len(urls))}
    late = [leases.pop(f"http://{host}/") for host in hosts[0][1:]]  # two of bucket 0's, committed late
    for lease in leases.values():
        await w1.commit(lease)

    async def commits_while_syncing() -> None:
        for lease in late:  # their lines are written after the fsync began: it may miss them
            await w1.commit(lease)
        await w1.manifest.sync()

    streams = {keys.records("w1"): b for b, keys in enumerate(w1.frontier._layout.buckets)}
    on_master: dict[int, dict[str, int]] = {}  # port → stream → entries, before any trim
    for port in masters(url):
        node = connect_node(port)
        try:
            found = [key async for key in node.scan_iter(match="crawlpool:*records:w1", count=500)]
            on_master[port] = {key: int(await node.xlen(key)) for key in found if key in streams}
        finally:
            await node.aclose()
    assert all(on_master.values()), f"every master holds some of w1's streams: {on_master}"
    first_bucket = stream_of(w1.frontier, urls[0], "w1")
    before = sorted((key == first_bucket, n) for held in on_master.values() for key, n in held.items())
    assert before == [(False, 3)] * (len(streams) - 1) + [(True, 1)]

    w1.frontier._sync = commits_while_syncing
    await w1.frontier.confirm_records()
    first, *others = (await held_by(client, w1.frontier, "w1")).items()
    assert first == (stream_of(w1.frontier, urls[0], "w1"), [lease.request.url for lease in late])
    assert all(len(held) == 1 for _, held in others), "each other bucket is cut at its own claim"
    w1.frontier._sync = w1.manifest.sync
    await w1.frontier.confirm_records()
    for port, held in on_master.items():
        node = connect_node(port)
        try:
            assert [await node.xlen(key) for key in held] == [1] * len(held), "the last entry stays"
        finally:
            await node.aclose()
    assert sorted(manifest_urls(w1.output)) == sorted(urls)


@pytest.mark.redis
@pytest.mark.parametrize("backend", ["buckets", "cluster"], indirect=True)
async def test_a_call_that_failed_holds_back_its_own_bucket_stream_and_no_other(
    open_worker: OpenWorker, crawl: tuple[str, Any], no_keep: None
) -> None:
    """An ack whose outcome is unknown may have committed a record whose line was never written: its
    bucket's stream keeps what came after it, while the worker's streams in other buckets (other
    ids, other claims) are trimmed as usual."""
    from crawlpool.errors import FrontierError

    w1 = await open_worker("w1")
    hosts = hosts_by_bucket(w1.frontier, 3)
    urls = [f"http://{host}/" for bucket in hosts for host in bucket]
    await w1.frontier.add([req(u) for u in urls])
    leases = {lease.request.url: lease for lease in await lease_all(w1.frontier, len(urls))}
    unknown = leases.pop(urls[0])
    failing, run = w1.frontier._layout.buckets[0].counts, w1.frontier._run

    async def lost_on_the_way(script: Any, keys: list[str], args: list[Any], on_retry: Any = None) -> Any:
        if script.name == "end" and keys[0] == failing:
            raise FrontierError("redis frontier: connection lost")
        return await run(script, keys, args, on_retry)

    w1.frontier._run = lost_on_the_way
    with pytest.raises(FrontierError):
        await w1.commit(unknown)
    w1.frontier._run = run
    for u in urls[1:]:
        await w1.commit(leases[u])
    await w1.frontier.confirm_records()
    held = await held_by(crawl[1], w1.frontier, "w1")
    assert held.pop(stream_of(w1.frontier, urls[0], "w1")) == urls[1:3]
    assert len(held) == len(hosts) - 1 and all(len(kept) == 1 for kept in held.values())


def connect_node(port: int) -> Any:
    """A plain client of one server (a cluster's master: its own keys only)."""
    import redis.asyncio as aioredis

    return aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True)


@pytest.mark.redis
@BACKENDS
async def test_recent_records_stay_for_the_status_rates(
    open_worker: OpenWorker, crawl: tuple[str, Any]
) -> None:
    w1 = await open_worker("w1")
    await w1.frontier.add([req(f"http://h{i}.test/") for i in range(3)])
    for lease in await lease_all(w1.frontier, 3):
        await w1.commit(lease)
    await w1.frontier.confirm_records()
    await w1.frontier.confirm_records()
    held = await held_by(crawl[1], w1.frontier, "w1")
    assert sum(map(len, held.values())) == 3, "the last 10 s were trimmed"
    status = await w1.frontier.status()
    assert status.updated is not None and [w.urls_per_s for w in status.workers] == [0.3]


_KILLED_WORKER = """
import asyncio, os, signal, sys
from pathlib import Path
from crawlpool.frontier import Politeness
from crawlpool.frontier.redis import RedisFrontier
from crawlpool.records import Page
from crawlpool.store import Manifest

async def main(url, crawl_id, output):
    frontier = await RedisFrontier.open(
        url, crawl_id, Politeness(per_host=4), worker_id="w1", lease_ms=%(lease)d, clock=lambda: %(now)r
    )
    async with Manifest(Path(output)) as manifest:
        frontier.confirm_with(manifest.sync)
        for write in (True, True, False):
            (lease,) = (await frontier.lease(1)).leases
            url = lease.request.url
            page = Page(url, url, 200, "text/html", 0, None, None, 0, None, "2026-01-01T00:00Z", 1, None, 0)
            assert await frontier.ack(lease, page)
            if not write:
                os.kill(os.getpid(), signal.SIGKILL)  # committed in Redis, its line never written
            manifest.append(page)
            await frontier.confirm_records()

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.redis
@BACKENDS
async def test_a_worker_killed_between_ack_and_manifest_line_is_repaired_exactly_once(
    url: str,
    open_worker: OpenWorker,
    crawl: tuple[str, Any],
    clock: FakeClock,
    tmp_path: Path,
    no_keep: None,
) -> None:
    crawl_id, client = crawl
    w2 = await open_worker("w2")
    mine = [f"http://a{i}.test/" for i in range(3)]
    await w2.frontier.add([req(u) for u in mine])
    output = tmp_path / "w1"
    (output / STATE_DIR / "tmp").mkdir(parents=True)
    code = _KILLED_WORKER % {"lease": LEASE_MS, "now": START_S}
    killed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", code, url, crawl_id, str(output)], capture_output=True
    )
    assert killed.returncode == -9, killed.stderr.decode()
    assert len(manifest_urls(output)) == 2
    (lost,) = set(mine) - set(manifest_urls(output))
    stream = stream_of(w2.frontier, lost, "w1")
    assert lost in await stream_urls(client, stream)

    # w1 stays dead while w2 works and confirms: w1's unconfirmed record stays.
    clock.now += 2 * LEASE_MS / 1000
    await w2.frontier.add([req(f"http://b{i}.test/") for i in range(3)])
    for lease in await lease_all(w2.frontier, 3):
        await w2.commit(lease)
    await w2.frontier.confirm_records()
    await w2.frontier.confirm_records()
    assert all(len(urls) == 1 for urls in (await held_by(client, w2.frontier, "w2")).values())
    assert lost in await stream_urls(client, stream)

    # w1 resumes: its repair finds the lost record, once; its next confirmation trims its stream.
    from crawlpool.frontier.redis import RedisFrontier

    w1 = await RedisFrontier.open(url, crawl_id, Politeness(per_host=4), worker_id="w1", clock=clock)
    try:
        assert await rewrite_manifest(output, with_manifest(output, w1.committed_pages())) == 3
        assert sorted(manifest_urls(output)) == sorted(mine)
        async with Manifest(output) as manifest:
            w1.confirm_with(manifest.sync)
            await w1.confirm_records()
        assert await stream_urls(client, stream) == [lost], "only the last entry stays"
    finally:
        await w1.aclose()
    assert sorted(manifest_urls(output)) == sorted(mine)

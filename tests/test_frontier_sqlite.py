"""The SQLite frontier beyond the contract: state that outlives the process, the lock, records, meta,
status numbers, bad files, and a kill -9 in the middle of a crawl."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from crawlpool.errors import FrontierError
from crawlpool.frontier import FrontierStatus, Politeness, Request, RobotsState
from crawlpool.frontier.sqlite import SqliteFrontier, read_status_at
from crawlpool.policy.pacing import Blocked, FloorRaised
from crawlpool.records import Page
from crawlpool.urls import fingerprint, host_key

SRC = Path(__file__).parents[1] / "src"
A = [f"http://a.test/{i}" for i in range(6)]
B = [f"http://b.test/{i}" for i in range(6)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def req(url: str, depth: int = 0, referrer: str | None = None) -> Request:
    return Request(url, fingerprint(url), host_key(url), depth, referrer)


def page(url: str, *, error: str | None = None, path: str | None = "pages/x") -> Page:
    return Page(url, url, 200, "text/html", 0, None, path, 1, None, "2026-01-01T00:00:00Z", 1, error, 0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "crawl.db"


async def test_state_survives_close_and_reopen(db: Path, clock: FakeClock) -> None:
    politeness = Politeness(per_host=1, delay_s=5.0)
    frontier = await SqliteFrontier.open(db, politeness, clock)
    await frontier.add([req(u, 1, "http://seed.test/") for u in A[:4] + B[:2]])
    first = (await frontier.lease(10)).leases
    assert [lease.request.url for lease in first] == [A[0], B[0]]
    assert await frontier.ack(first[0], page(A[0]))
    await frontier.set_meta("seeds", '["http://seed.test/"]')
    await frontier.aclose()  # b.test/0 is still leased: a crash, as far as the file can tell

    frontier = await SqliteFrontier.open(db, politeness, clock)
    try:
        counts = await frontier.counts()
        assert (counts.seen, counts.queued, counts.leased, counts.done) == (6, 5, 0, 1)
        assert await frontier.add([req(A[0]), req(A[1]), req(B[5])]) == 1
        assert await frontier.get_meta("seeds") == '["http://seed.test/"]'
        assert await frontier.get_meta("never-set") is None
        assert [p.url async for p in frontier.committed_pages()] == [A[0]]
        # Both hosts started a lease at clock.now before the close: neither is due yet.
        early = await frontier.lease(10)
        assert early.leases == [] and early.wait_s == pytest.approx(5.0)
        clock.now += 5.0
        again = (await frontier.lease(10)).leases
        assert [lease.request for lease in again] == [
            req(A[1], 1, "http://seed.test/"),
            req(B[0], 1, "http://seed.test/"),
        ]
    finally:
        await frontier.aclose()


async def test_leases_left_at_close_come_back_first_in_order_without_an_attempt(
    db: Path, clock: FakeClock
) -> None:
    frontier = await SqliteFrontier.open(db, Politeness(per_host=3), clock)
    await frontier.add([req(u) for u in A[:5]])
    held = (await frontier.lease(3)).leases
    assert [lease.request.url for lease in held] == A[:3]
    await frontier.aclose()

    frontier = await SqliteFrontier.open(db, Politeness(per_host=5), clock)
    try:
        assert (await frontier.counts()).leased == 0
        again = (await frontier.lease(5)).leases
        assert [lease.request.url for lease in again] == A[:5]
        assert all(lease.request.attempts == 0 for lease in again)
        # A lease from before the reopen is not current, even if a token number were reused.
        assert not await frontier.ack(held[0], page(A[0]))
        assert len({lease.token for lease in again} | {lease.token for lease in held}) == 8
    finally:
        await frontier.aclose()


async def test_retries_and_pacing_survive_reopen(db: Path, clock: FakeClock) -> None:
    frontier = await SqliteFrontier.open(db, Politeness(per_host=2), clock)
    await frontier.add([req(A[0]), req(B[0]), req(B[1])])
    (lease_a, lease_b) = (await frontier.lease(2)).leases
    assert await frontier.retry(lease_a, delay_s=10)
    assert await frontier.release(lease_b)
    await frontier.observe(host_key(B[0]), FloorRaised(3.0))
    await frontier.observe(host_key(B[0]), Blocked(20.0))
    await frontier.aclose()

    frontier = await SqliteFrontier.open(db, Politeness(per_host=2), clock)
    try:
        assert (await frontier.counts()).queued == 3
        waiting = await frontier.lease(5)
        assert waiting.leases == [] and waiting.wait_s == pytest.approx(10)
        clock.now += 10
        (retried,) = (await frontier.lease(5)).leases
        assert retried.request.url == A[0] and retried.request.attempts == 1
        clock.now += 10
        (b_first,) = (await frontier.lease(5)).leases  # the block is over; the 3 s delay holds
        assert b_first.request.url == B[0]
        assert (await frontier.lease(5)).wait_s == pytest.approx(3.0)
    finally:
        await frontier.aclose()


async def test_a_second_open_is_refused_while_the_first_holds_the_state(db: Path, clock: FakeClock) -> None:
    first = await SqliteFrontier.open(db, Politeness(), clock)
    with pytest.raises(FrontierError) as refused:
        await SqliteFrontier.open(db, Politeness(), clock)
    message = str(refused.value)
    assert message == f"crawl state {db} is in use by another crawlpool process (pid {os.getpid()})"
    await first.aclose()
    second = await SqliteFrontier.open(db, Politeness(), clock)
    await second.aclose()


async def test_committed_pages_come_in_commit_order(db: Path, clock: FakeClock) -> None:
    frontier = await SqliteFrontier.open(db, Politeness(per_host=10), clock)
    try:
        await frontier.add([req(u) for u in A])
        leases = (await frontier.lease(6)).leases
        for lease in reversed(leases):
            assert await frontier.ack(lease, page(lease.request.url))
        assert [p.url async for p in frontier.committed_pages()] == list(reversed(A))
        assert [p.url async for p in frontier.committed_pages(start=4)] == [A[1], A[0]]
        assert [p async for p in frontier.committed_pages(start=6)] == []
        assert await frontier.committed_count() == 6
        (first,) = [p async for p in frontier.committed_pages(start=5)]
        assert first == page(A[0])
    finally:
        await frontier.aclose()


async def test_status_counts_states_outcomes_and_hosts(db: Path, clock: FakeClock) -> None:
    frontier = await SqliteFrontier.open(db, Politeness(per_host=10), clock)
    try:
        await frontier.set_meta("started", "2026-01-01T00:00:00Z")
        await frontier.add([req(u) for u in A + B[:2]])
        leases = {lease.request.url: lease for lease in (await frontier.lease(8)).leases}
        await frontier.ack(leases[A[0]], page(A[0]))
        await frontier.ack(leases[A[1]], page(A[1], error="too_large: cut at 10 MiB"))
        await frontier.ack(leases[A[2]], page(A[2], error="http_4xx: 404 Not Found", path=None))
        await frontier.ack(leases[A[3]], page(A[3], error="timeout", path=None))
        await frontier.ack(leases[A[4]], page(A[4], error="http_4xx: 410 Gone", path=None))
        await frontier.retry(leases[A[5]], delay_s=30)
        await frontier.release(leases[B[0]])
        assert await frontier.status() == FrontierStatus(
            state="running",
            seen=8,
            queued=2,
            retrying=1,
            in_flight=1,
            done=5,
            failures={"http_4xx": 2, "timeout": 1, "too_large": 1},
            pages_stored=2,
            hosts=2,
            started="2026-01-01T00:00:00Z",
        )
    finally:
        await frontier.aclose()
    read = read_status_at(db)  # read-only, no lock: what a killed process left is stopped, not running
    assert (read.state, read.in_flight, read.queued, read.done) == ("stopped", 1, 2, 5)


def write_foreign_file(db: Path, kind: str) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    if kind == "text":
        db.write_bytes(b"not a database, only text long enough to fill a SQLite header and more\n" * 100)
    else:
        other = sqlite3.connect(db)
        other.execute("CREATE TABLE notes(text TEXT)")
        other.commit()
        other.close()


@pytest.mark.parametrize(
    ("kind", "message"),
    [("text", "the file is not a SQLite database"), ("other app", "is not a crawlpool database")],
)
async def test_a_file_that_is_not_a_crawl_state_gives_a_frontier_error(
    db: Path, clock: FakeClock, kind: str, message: str
) -> None:
    write_foreign_file(db, kind)
    with pytest.raises(FrontierError, match=message) as raised:
        await SqliteFrontier.open(db, Politeness(), clock)
    assert "\n" not in str(raised.value) and str(db) in str(raised.value)
    # The failed open let go of the lock: the next opener gets the same message, not "in use".
    with pytest.raises(FrontierError, match=message):
        await SqliteFrontier.open(db, Politeness(), clock)


VERSION_1 = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE hosts(id INTEGER PRIMARY KEY, host TEXT NOT NULL UNIQUE,
    last_start REAL, delay_s REAL, blocked_until REAL);
CREATE TABLE urls(id INTEGER PRIMARY KEY, fp INTEGER NOT NULL, url TEXT NOT NULL, host INTEGER NOT NULL,
    depth INTEGER NOT NULL, referrer TEXT, attempts INTEGER NOT NULL, state INTEGER NOT NULL,
    seq INTEGER NOT NULL, due REAL, hops INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX urls_fp ON urls(fp);
CREATE TABLE records(seq INTEGER PRIMARY KEY, fp INTEGER NOT NULL, page TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1'), ('opens', '3');
INSERT INTO hosts VALUES (1, 'https://a.test:443', NULL, 2.0, NULL);
"""


async def test_a_version_1_state_is_upgraded_in_place(db: Path, clock: FakeClock) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.executescript(VERSION_1)
    conn.execute(
        "INSERT INTO urls(fp, url, host, depth, referrer, attempts, state, seq) "
        "VALUES (?, ?, 1, 0, NULL, 2, 0, 1)",
        (fingerprint(A[0]), A[0]),
    )
    conn.commit()
    conn.close()
    frontier = await SqliteFrontier.open(db, Politeness(per_host=2, delay_s=0.5), clock)
    try:
        (lease,) = (await frontier.lease(5)).leases
        assert (lease.request.url, lease.request.attempts, lease.request.self_redirects) == (A[0], 2, 0)
        assert (lease.request.kind, lease.request.lastmod) == ("page", None)
        assert await frontier.get_meta("schema_version") == "3"
    finally:
        await frontier.aclose()


async def test_a_version_2_state_gains_kind_and_lastmod(db: Path, clock: FakeClock) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.executescript(VERSION_1)
    conn.execute("ALTER TABLE hosts ADD COLUMN pace TEXT")
    conn.execute("ALTER TABLE urls ADD COLUMN self_redirects INTEGER NOT NULL DEFAULT 0")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.execute(
        "INSERT INTO urls(fp, url, host, depth, referrer, attempts, state, seq, self_redirects) "
        "VALUES (?, ?, 1, 0, NULL, 0, 0, 1, 1)",
        (fingerprint(A[0]), A[0]),
    )
    conn.commit()
    conn.close()
    frontier = await SqliteFrontier.open(db, Politeness(per_host=2), clock)
    try:
        (lease,) = (await frontier.lease(5)).leases
        assert (lease.request.self_redirects, lease.request.kind, lease.request.lastmod) == (1, "page", None)
        assert await frontier.get_meta("schema_version") == "3"
    finally:
        await frontier.aclose()


async def test_a_state_of_another_schema_version_is_refused(db: Path, clock: FakeClock) -> None:
    frontier = await SqliteFrontier.open(db, Politeness(), clock)
    await frontier.set_meta("schema_version", "99")
    await frontier.aclose()
    with pytest.raises(FrontierError, match="has schema version 99; this crawlpool reads version 3"):
        await SqliteFrontier.open(db, Politeness(), clock)


async def test_a_closed_frontier_refuses_work(db: Path, clock: FakeClock) -> None:
    frontier = await SqliteFrontier.open(db, Politeness(), clock)
    await frontier.aclose()
    await frontier.aclose()  # closing twice is harmless
    with pytest.raises(FrontierError, match="is closed"):
        await frontier.add([req(A[0])])


CHILD = """
import asyncio, sys, types
from pathlib import Path

# Start fast: skip the package's __init__, which imports the whole crawler; only the frontier is needed.
package = types.ModuleType("crawlpool")
package.__path__ = [sys.argv[2]]
sys.modules["crawlpool"] = package

from crawlpool.frontier import Politeness, Request
from crawlpool.frontier.sqlite import SqliteFrontier
from crawlpool.records import Page
from crawlpool.urls import fingerprint, host_key

def req(i):
    url = f"http://h{i % 3}.test/{i}"
    return Request(url, fingerprint(url), host_key(url), 0)

async def main():
    frontier = await SqliteFrontier.open(Path(sys.argv[1]), Politeness(per_host=4))
    await frontier.add([req(i) for i in range(20)])
    acked, next_url = 0, 20
    while True:
        for lease in (await frontier.lease(6)).leases:
            await frontier.add([req(i) for i in range(next_url, next_url + 3)])
            next_url += 3
            url = lease.request.url
            page = Page(url, url, 200, None, 0, None, None, 0, None, "2026-01-01T00:00:00Z", 1, None, 3)
            await frontier.ack(lease, page)
            acked += 1
            print(acked, flush=True)

asyncio.run(main())
"""


def run_child_until_acked(db: Path, acks: int) -> None:
    """Run CHILD on `db`, wait until it reports `acks` committed acks, then SIGKILL it mid-loop."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(SRC / "crawlpool")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    watchdog = threading.Timer(30, child.kill)  # a hung child ends the wait below with EOF
    watchdog.start()
    try:
        assert child.stdout is not None
        reported = 0
        while reported < acks:
            line = child.stdout.readline()
            assert line, f"child ended early: {child.communicate()[1].decode()[-2000:]}"
            reported = int(line)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    finally:
        watchdog.cancel()
        child.kill()
        child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


async def test_kill_9_mid_crawl_loses_nothing(db: Path) -> None:
    acks = 40
    run_child_until_acked(db, acks)

    frontier = await SqliteFrontier.open(db, Politeness(per_host=1000))
    try:
        counts = await frontier.counts()
        assert counts.leased == 0 and counts.done >= acks
        assert counts.seen == counts.done + counts.queued
        done = [p.url async for p in frontier.committed_pages()]
        assert len(done) == len(set(done)) == counts.done == await frontier.committed_count()
        queued: list[str] = []
        while batch := (await frontier.lease(1000)).leases:
            queued += [lease.request.url for lease in batch]
            for lease in batch:
                await frontier.ack(lease, page(lease.request.url))
        # Every URL the child ever added is either done with its record or still queued, never both.
        assert not set(done) & set(queued)
        assert sorted(done + queued) == sorted(f"http://h{i % 3}.test/{i}" for i in range(counts.seen))
    finally:
        await frontier.aclose()


async def test_robots_state_survives_close_and_reopen(db: Path, clock: FakeClock) -> None:
    frontier = await SqliteFrontier.open(db, Politeness(), clock)
    await frontier.set_robots(
        "http://a.test:80", RobotsState("User-agent: *\nDisallow: /p\n", None, 0, 100.0)
    )
    await frontier.set_robots("http://b.test:80", RobotsState(None, "robots.txt answered 503", 2, 10.0))
    await frontier.aclose()

    clock.now += 5.0
    frontier = await SqliteFrontier.open(db, Politeness(), clock)
    try:
        assert await frontier.robots("http://a.test:80") == RobotsState(
            "User-agent: *\nDisallow: /p\n", None, 0, 95.0
        )
        assert await frontier.robots("http://b.test:80") == RobotsState(
            None, "robots.txt answered 503", 2, 5.0
        )
    finally:
        await frontier.aclose()


async def test_a_state_from_before_the_robots_table_gains_it(db: Path, clock: FakeClock) -> None:
    frontier = await SqliteFrontier.open(db, Politeness(), clock)
    await frontier.aclose()
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE robots")
    conn.close()
    frontier = await SqliteFrontier.open(db, Politeness(), clock)
    try:
        assert await frontier.robots("http://a.test:80") is None
        await frontier.set_robots("http://a.test:80", RobotsState(None, None, 0, 60.0))
        assert await frontier.robots("http://a.test:80") == RobotsState(None, None, 0, 60.0)
    finally:
        await frontier.aclose()


async def test_a_resume_may_lower_the_delay_but_a_crawl_delay_stays(db: Path, clock: FakeClock) -> None:
    frontier = await SqliteFrontier.open(db, Politeness(per_host=1, delay_s=1.0), clock)
    await frontier.add([req(A[0]), req(B[0])])
    await frontier.observe(host_key(A[0]), FloorRaised(0.5))  # no effect: below --delay
    await frontier.observe(host_key(B[0]), FloorRaised(3.0))  # B's robots.txt: Crawl-delay 3
    await frontier.aclose()

    frontier = await SqliteFrontier.open(db, Politeness(per_host=1, delay_s=0.0), clock)
    try:
        rows = {row.host: row.pace.floor_s for row in await frontier.host_rows(10)}
        assert rows == {host_key(A[0]): 0.0, host_key(B[0]): 3.0}
    finally:
        await frontier.aclose()
    frontier = await SqliteFrontier.open(db, Politeness(per_host=1, delay_s=5.0), clock)
    try:
        rows = {row.host: row.pace.floor_s for row in await frontier.host_rows(10)}
        assert rows == {host_key(A[0]): 5.0, host_key(B[0]): 5.0}
    finally:
        await frontier.aclose()


def test_an_empty_wal_touched_by_a_reader_is_not_a_write(tmp_path: Path) -> None:
    import os

    from crawlpool.frontier.sqlite import _last_write

    state, wal = tmp_path / "frontier.db", tmp_path / "frontier.db-wal"
    state.write_bytes(b"x")
    wal.write_bytes(b"")
    os.utime(state, (1_700_000_000, 1_700_000_000))
    os.utime(wal, (1_800_000_000, 1_800_000_000))  # a dashboard or status opened and closed it later
    assert _last_write(state) == "2023-11-14T22:13:20Z"
    wal.write_bytes(b"frames of a killed run")
    os.utime(wal, (1_800_000_000, 1_800_000_000))
    assert _last_write(state) == "2027-01-15T08:00:00Z"

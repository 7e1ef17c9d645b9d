"""Frontier cost per crawled page, memory vs sqlite; and the sqlite frontier's footprint when it is large.

    python -m benchmarks.frontier_ops                     # 20,000 pages of simulated crawl traffic
    python -m benchmarks.frontier_ops --queued 1000000    # peak RSS and DB size with 1M URLs queued

The traffic is what the engine sends: per round, `lease` of 1..8 URLs, then per leased URL one `add` of
50 links (a few new, the rest already seen) and one `ack`. Requests, fingerprints and link lists are
built before the clock starts, so the timing is the frontier's own; it is CPU time of this process
(user + system, so SQLite's writes count), which other load on the machine disturbs less than wall time.
The frontier's clock is fake and the delay 0, so politeness never idles the loop.

`--queued N` adds N distinct URLs, 50 at a time and one host per batch like a page's links, in a fresh
subprocess per backend so that each peak RSS (ru_maxrss) belongs to that backend alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from crawlpool.frontier import Frontier, MemoryFrontier, Politeness, Request
from crawlpool.frontier.sqlite import SqliteFrontier
from crawlpool.records import Page
from crawlpool.urls import fingerprint, host_key

HOSTS = 50
LINKS = 50
NEW_PER_PAGE = 3  # new URLs among a page's links; the rest are already seen


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_request(i: int, referrer: str | None = None, depth: int = 0) -> Request:
    url = f"https://h{i % HOSTS}.example/section/{i // HOSTS}/page-{i}.html"
    return Request(url, fingerprint(url), host_key(url), depth, referrer)


def make_page(request: Request) -> Page:
    return Page(
        request.url, request.url, 200, "text/html", request.depth, request.referrer,
        f"pages/{request.host}/{request.fp}.html", 12345, "0" * 64, "2026-01-01T00:00:00Z", 12, None, LINKS,
    )  # fmt: skip


def make_traffic(pages: int, seed: int) -> tuple[list[Request], dict[int, list[Request]]]:
    """Seeds and, for each URL fingerprint a page will be crawled from, its 50 links."""
    rng = random.Random(seed)
    total = HOSTS + pages * NEW_PER_PAGE
    pool = [make_request(i) for i in range(total)]
    links: dict[int, list[Request]] = {}
    fresh = HOSTS
    for request in pool[: pages + HOSTS]:
        new = pool[fresh : fresh + NEW_PER_PAGE]
        fresh += len(new)
        old = [pool[rng.randrange(fresh)] for _ in range(LINKS - len(new))]
        links[request.fp] = new + old
    return pool[:HOSTS], links


async def crawl(
    frontier: Frontier, seeds: list[Request], links: dict[int, list[Request]], pages: int
) -> float:
    """Seconds spent driving `pages` pages of traffic through `frontier`."""
    rng = random.Random(1)
    await frontier.add(seeds)
    done = 0
    started = time.process_time()
    while done < pages:
        batch = await frontier.lease(rng.randint(1, 8))
        if not batch.leases:
            raise RuntimeError(f"frontier ran dry after {done} pages")
        for lease in batch.leases:
            await frontier.add(links.get(lease.request.fp, []))
            await frontier.ack(lease, make_page(lease.request))
            done += 1
    return time.process_time() - started


async def compare(pages: int) -> None:
    seeds, links = make_traffic(pages, seed=7)
    politeness = Politeness(per_host=8, delay_s=0.0)
    memory_s = await crawl(MemoryFrontier(politeness, FakeClock()), seeds, links, pages)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        sqlite = await SqliteFrontier.open(path, politeness, FakeClock())
        try:
            sqlite_s = await crawl(sqlite, seeds, links, pages)
            counts = await sqlite.counts()
        finally:
            await sqlite.aclose()
        size = _db_bytes(path)
    per_memory, per_sqlite = memory_s / pages * 1e6, sqlite_s / pages * 1e6
    print(f"{pages} pages, {LINKS} links each ({NEW_PER_PAGE} new), lease 1..8 at a time")
    print(f"  memory: {per_memory:8.1f} µs/page (CPU)")
    print(f"  sqlite: {per_sqlite:8.1f} µs/page (CPU)   ({counts.seen} URLs seen, DB {size / 1e6:.1f} MB)")
    print(
        f"  sqlite/memory: {per_sqlite / per_memory:.1f}x; sqlite adds {per_sqlite - per_memory:.1f} µs/page"
    )


def batches(total: int, size: int) -> Iterator[list[Request]]:
    """Like a page's links, each batch is of one host (the hosts take turns)."""
    for start in range(0, total, size):
        host = start // size % HOSTS
        referrer = f"https://h{host}.example/index-{start}.html"
        yield [make_request(i * HOSTS + host, referrer, 1) for i in range(start, min(start + size, total))]


async def fill(backend: str, queued: int, directory: Path) -> None:
    """Queue `queued` distinct URLs in batches of 50; print time, peak RSS and DB size."""
    politeness = Politeness()
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    path = directory / "state.db"
    frontier: Frontier
    frontier = (
        MemoryFrontier(politeness) if backend == "memory" else await SqliteFrontier.open(path, politeness)
    )
    elapsed = 0.0
    for batch in batches(queued, LINKS):
        started = time.process_time()
        await frontier.add(batch)
        elapsed += time.process_time() - started
    counts = await frontier.counts()
    await frontier.aclose()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    line = (
        f"  {backend}: {counts.queued} queued, add {elapsed / (queued / LINKS) * 1e6:.0f} µs CPU per "
        f"batch of {LINKS}, peak RSS {peak_kib / 1024:.0f} MiB (at start {baseline_kib / 1024:.0f} MiB)"
    )
    if backend == "sqlite":
        started = time.process_time()
        reopened = await SqliteFrontier.open(path, politeness)
        reopen_s = time.process_time() - started
        await reopened.aclose()
        line += f", DB {_db_bytes(path) / 1e6:.0f} MB ({_db_bytes(path) / queued:.0f} B/URL)"
        line += f", reopen {reopen_s * 1e3:.0f} ms CPU"
    print(line)


def _db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if not p.name.endswith(".lock"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=20_000, help="pages of simulated crawl traffic")
    parser.add_argument("--queued", type=int, help="instead: queue this many URLs and report footprint")
    parser.add_argument("--backend", choices=["memory", "sqlite"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.queued is None:
        asyncio.run(compare(args.pages))
    elif args.backend is not None:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(fill(args.backend, args.queued, Path(tmp)))
    else:
        print(f"{args.queued} distinct URLs added in batches of {LINKS}, each backend in its own process")
        for backend in ("memory", "sqlite"):
            command = [sys.executable, "-m", "benchmarks.frontier_ops", "--queued", str(args.queued)]
            subprocess.run([*command, "--backend", backend], check=True, env=os.environ)


if __name__ == "__main__":
    main()

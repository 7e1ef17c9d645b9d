"""The Redis backend on a local 3-master Redis Cluster (tests/redis_cluster.py), its crawl in the
cluster's default number of key buckets, driven by the suite's clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from crawlpool.frontier import Frontier, Politeness
from tests.redis_cluster import cluster_url
from tests.redis_server import drop_crawl, new_crawl_id

NAME = "redis-cluster"


@asynccontextmanager
async def open_backend(
    politeness: Politeness, clock: Callable[[], float], tmp_path: Path
) -> AsyncIterator[Frontier]:
    url = cluster_url()  # skips (or fails) here, at run time, when the cluster cannot be started
    from crawlpool.frontier.redis import RedisFrontier

    crawl_id = new_crawl_id()
    frontier = await RedisFrontier.open(url, crawl_id, politeness, worker_id="contract", clock=clock)
    try:
        yield frontier
    finally:
        await frontier.aclose()
        await drop_crawl(url, crawl_id)

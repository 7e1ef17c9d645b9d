"""The Redis backend with its keys in 4 buckets (as on a Redis Cluster) on the session's one server:
the contract suite over the bucketed layout, without a cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from crawlpool.frontier import Frontier, Politeness
from tests.redis_server import drop_crawl, new_crawl_id, redis_url

NAME = "redis-buckets"


@asynccontextmanager
async def open_backend(
    politeness: Politeness, clock: Callable[[], float], tmp_path: Path
) -> AsyncIterator[Frontier]:
    url = redis_url()
    from crawlpool.frontier.redis import RedisFrontier

    crawl_id = new_crawl_id()
    frontier = await RedisFrontier.open(
        url, crawl_id, politeness, worker_id="contract", clock=clock, buckets=4
    )
    try:
        yield frontier
    finally:
        await frontier.aclose()
        await drop_crawl(url, crawl_id)

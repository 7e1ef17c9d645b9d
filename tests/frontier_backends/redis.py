"""The Redis backend under the contract suite: a fresh crawl in the session's redis-server per frontier,
driven by the suite's clock (so Redis TIME is not used)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from crawlpool.frontier import Frontier, Politeness
from tests.redis_server import drop_crawl, new_crawl_id, redis_url

NAME = "redis"


@asynccontextmanager
async def open_backend(
    politeness: Politeness, clock: Callable[[], float], tmp_path: Path
) -> AsyncIterator[Frontier]:
    url = redis_url()  # skips (or fails) here, at run time, when no server is available
    from crawlpool.frontier.redis import RedisFrontier

    crawl_id = new_crawl_id()
    frontier = await RedisFrontier.open(url, crawl_id, politeness, worker_id="contract", clock=clock)
    try:
        yield frontier
    finally:
        await frontier.aclose()
        await drop_crawl(url, crawl_id)

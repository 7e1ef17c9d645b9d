from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from crawlpool.frontier import Frontier, MemoryFrontier, Politeness

NAME = "memory"


@asynccontextmanager
async def open_backend(
    politeness: Politeness, clock: Callable[[], float], tmp_path: Path
) -> AsyncIterator[Frontier]:
    frontier = MemoryFrontier(politeness, clock)
    try:
        yield frontier
    finally:
        await frontier.aclose()

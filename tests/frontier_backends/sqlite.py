from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from crawlpool.frontier import Frontier, Politeness
from crawlpool.frontier.sqlite import SqliteFrontier

NAME = "sqlite"


@asynccontextmanager
async def open_backend(
    politeness: Politeness, clock: Callable[[], float], tmp_path: Path
) -> AsyncIterator[Frontier]:
    frontier = await SqliteFrontier.open(tmp_path / "state.db", politeness, clock)
    try:
        yield frontier
    finally:
        await frontier.aclose()

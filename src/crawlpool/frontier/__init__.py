"""Frontier backends behind one protocol; `open_frontier` picks one from the `--frontier` value."""

from __future__ import annotations

import time
from collections.abc import Callable

from crawlpool.errors import ConfigError
from crawlpool.frontier.base import (
    Frontier,
    FrontierCounts,
    Lease,
    LeaseBatch,
    Politeness,
    Request,
)
from crawlpool.frontier.memory import MemoryFrontier

__all__ = [
    "Frontier",
    "FrontierCounts",
    "Lease",
    "LeaseBatch",
    "MemoryFrontier",
    "Politeness",
    "Request",
    "open_frontier",
]


def open_frontier(spec: str, politeness: Politeness, clock: Callable[[], float] = time.monotonic) -> Frontier:
    """The frontier named by a `--frontier` value."""
    if spec == "memory":
        return MemoryFrontier(politeness, clock)
    raise ConfigError(f"frontier: {spec!r} is not available yet")

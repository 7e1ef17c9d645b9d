"""Virtual time for an asyncio loop: timers fire at once, in order, and `now()` says when they were due.

The loop's clock is replaced by a counter, and its selector is asked to wait for nothing: whenever the
loop would sleep until its next timer, the counter jumps there instead. Real I/O (threads, sockets) still
completes, only without waiting. So a crawl that backs off for a minute runs in milliseconds, and a test
can assert that it did wait a minute, on this clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock


class VirtualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.start = self.time = start

    def __call__(self) -> float:
        return self.time

    def elapsed(self) -> float:
        return self.time - self.start

    @contextmanager
    def patch_loop(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        selector = loop._selector  # type: ignore[attr-defined]
        real_select = selector.select

        def select(timeout: float | None = None) -> Any:
            if timeout is not None and timeout > 0:
                self.time += timeout
            return real_select(0)

        with mock.patch.object(selector, "select", select), mock.patch.object(loop, "time", self):
            yield

"""The Redis frontier's background loops (heartbeat and reaper): one step every few seconds, a
FrontierError logged and tried again next round, a crash logged once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from crawlpool.errors import FrontierError

log = logging.getLogger("crawlpool.frontier.redis")  # the frontier's own logger, as before the split


def start_every(name: str, interval_s: float, step: Callable[[], Awaitable[object]]) -> asyncio.Task[None]:
    """Run `step` every `interval_s` in a task named `crawlpool-redis-<name>` until it is cancelled."""
    task = asyncio.get_running_loop().create_task(_every(interval_s, step), name=f"crawlpool-redis-{name}")
    task.add_done_callback(_log_crash)
    return task


async def _every(interval_s: float, step: Callable[[], Awaitable[object]]) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await step()
        except FrontierError as exc:
            log.warning("%s", exc)  # the next round tries again; the engine sees errors itself


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped", task.get_name(), exc_info=task.exception())

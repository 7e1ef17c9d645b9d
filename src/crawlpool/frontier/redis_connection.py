"""How the Redis frontier talks to an unreliable Redis: errors become one-line FrontierErrors without
the password, and a lost connection is ridden out for a bounded time (see frontier/redis.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crawlpool.errors import FrontierError

log = logging.getLogger("crawlpool.frontier.redis")  # the frontier's own logger, as before the split


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + netloc).geturl()


def frontier_error(safe: str, exc: RedisError) -> FrontierError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return FrontierError(f"redis frontier at {safe}: {reason}")


async def with_retries(
    attempt: Callable[[], Awaitable[Any]],
    safe: str,
    outage_s: float,
    on_retry: Callable[[], None] | None = None,
) -> Any:
    """Run `attempt`, riding out a lost connection for up to `outage_s` with exponential backoff.

    Running a script again after a lost reply is safe: add is idempotent, an ack that had committed
    answers ALREADY, and slots leased by a lost reply simply expire and are reaped. Past the bound,
    FrontierError stops this worker; the crawl's state stays in Redis for the next run to rejoin."""
    waited_s, pause_s = 0.0, 0.1
    while True:
        try:
            return await attempt()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            if waited_s >= outage_s:
                raise FrontierError(
                    f"redis frontier: lost {safe} for {outage_s:g} s ({exc}); this worker stops, "
                    "the crawl's state stays in Redis: run the same command with --resume to rejoin it"
                ) from exc
            log.warning("redis at %s unreachable (%s); retrying in %.1f s", safe, exc, pause_s)
            if on_retry is not None:
                on_retry()
            await asyncio.sleep(pause_s)  # backing off from a failing server, not waiting for an event
            waited_s += pause_s
            pause_s = min(pause_s * 2, 5.0)
        except RedisError as exc:
            raise frontier_error(safe, exc) from exc

"""How the Redis frontier talks to an unreliable Redis: the client for a URL (one server, or a Redis
Cluster for `redis+cluster://` and `rediss+cluster://`), errors become one-line FrontierErrors without
the password, and a lost connection is ridden out for a bounded time (see frontier/redis.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crawlpool.errors import FrontierError

log = logging.getLogger("crawlpool.frontier.redis")  # the frontier's own logger, as before the split


CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
# redis-py's cluster errors (no node reachable, a bad argument) are not RedisErrors: caught as both.
REDIS_ERRORS = (RedisError, RedisClusterException)
Client = aioredis.Redis | RedisCluster


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def connect(url: str, *, retry: bool = True) -> Client:
    """The client for `url`: a RedisCluster (which finds every node from the one named) for a cluster
    scheme, else one server. `retry=False` turns redis-py's retries off (see frontier/redis.py: a
    script whose reply was lost must not be resent blindly). Raises ValueError for a bad URL."""
    timeouts: dict[str, Any] = {"socket_connect_timeout": 10, "socket_timeout": 30}
    if is_cluster(url):
        plain = url.replace("+cluster", "", 1)
        if not retry:
            # MOVED/ASK redirections are still followed: they mean the command did not run there.
            timeouts["retry"] = Retry(NoBackoff(), 0)
        try:
            return RedisCluster.from_url(plain, decode_responses=True, **timeouts)
        except RedisClusterException as exc:  # e.g. a database other than 0: a cluster has one
            raise ValueError(str(exc)) from None
    if not retry:
        timeouts["retry"] = Retry(NoBackoff(), 0)
    return aioredis.from_url(url, decode_responses=True, **timeouts)


async def server_version(client: Client) -> tuple[tuple[int, int], str]:
    """The oldest Redis version among the servers (every primary of a cluster), as (major, minor) and
    as the server wrote it."""
    if isinstance(client, RedisCluster):
        infos = list((await client.info("server", target_nodes=RedisCluster.PRIMARIES)).values())
    else:
        infos = [await client.info("server")]
    texts = [str(info["redis_version"]) for info in infos]
    versions = [(tuple(int(part) for part in text.split(".")[:2]), text) for text in texts]
    (major, minor), text = min(versions)
    return (major, minor), text


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + netloc).geturl()


def frontier_error(safe: str, exc: Exception) -> FrontierError:
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
        except REDIS_ERRORS as exc:
            raise frontier_error(safe, exc) from exc

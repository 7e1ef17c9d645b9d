"""The Redis frontier's automatic pipelining (frontier/redis_pipeline.py), against the session's private
redis-server: calls made together share one pipeline, yet each gets its own reply or error, and a script
the server forgot is loaded again without the caller noticing."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.redis_server import redis_url

pytestmark = pytest.mark.redis

ECHO = "return {KEYS[1], ARGV[1]}"
FAIL_ON_BOOM = "if ARGV[1] == 'boom' then return redis.error_reply('boom asked') end return ARGV[1]"


def sha(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    import redis.asyncio as aioredis

    connection = aioredis.from_url(redis_url(), decode_responses=True)
    try:
        yield connection
    finally:
        await connection.aclose()


async def test_calls_made_together_share_one_pipeline_and_each_gets_its_own_reply(client: Any) -> None:
    from crawlpool.frontier.redis_pipeline import Pipeliner

    pipeliner = Pipeliner(client)
    await client.script_load(ECHO)
    replies = await asyncio.gather(*(pipeliner.call(sha(ECHO), ECHO, [f"k{i}"], [i]) for i in range(50)))
    assert replies == [[f"k{i}", str(i)] for i in range(50)]
    assert pipeliner.batches == 1
    # One after the other, each call is its own round trip.
    for i in range(3):
        assert await pipeliner.call(sha(ECHO), ECHO, ["k"], [i]) == ["k", str(i)]
    assert pipeliner.batches == 4


async def test_one_failing_script_fails_only_its_own_call(client: Any) -> None:
    from redis.exceptions import ResponseError

    from crawlpool.frontier.redis_pipeline import Pipeliner

    pipeliner = Pipeliner(client)
    await client.script_load(FAIL_ON_BOOM)
    calls = [pipeliner.call(sha(FAIL_ON_BOOM), FAIL_ON_BOOM, ["k"], [arg]) for arg in ("a", "boom", "c")]
    replies = await asyncio.gather(*calls, return_exceptions=True)
    assert replies[0] == "a" and replies[2] == "c"
    assert isinstance(replies[1], ResponseError) and "boom asked" in str(replies[1])
    assert pipeliner.batches == 1


async def test_a_script_the_server_does_not_know_is_loaded_and_sent_again(client: Any) -> None:
    from crawlpool.frontier.redis_pipeline import Pipeliner

    source = "return 'fresh ' .. ARGV[1]"  # never loaded: EVALSHA answers NOSCRIPT first
    pipeliner = Pipeliner(client)
    assert await client.script_exists(sha(source)) == [False]
    replies = await asyncio.gather(*(pipeliner.call(sha(source), source, ["k"], [i]) for i in range(3)))
    assert replies == ["fresh 0", "fresh 1", "fresh 2"]
    assert await client.script_exists(sha(source)) == [True]
    assert pipeliner.batches == 2  # the first try, then the NOSCRIPT calls alone


async def test_plain_commands_share_the_pipeline_with_scripts_the_server_must_load(client: Any) -> None:
    from crawlpool.frontier.redis_pipeline import Pipeliner

    source = "return 'loaded ' .. ARGV[1]"  # never loaded: its call is sent twice, the commands once
    pipeliner = Pipeliner(client)
    await client.sadd("pipeline-test-set", "x")
    try:
        replies = await asyncio.gather(
            pipeliner.command("SISMEMBER", "pipeline-test-set", "x"),
            pipeliner.call(sha(source), source, ["k"], [1]),
            pipeliner.command("SADD", "pipeline-test-set", "y"),
            pipeliner.command("SISMEMBER", "pipeline-test-set", "z"),
        )
    finally:
        members = await client.smembers("pipeline-test-set")
        await client.delete("pipeline-test-set")
    assert replies == [1, "loaded 1", 1, 0]
    assert members == {"x", "y"}, "a command was sent again with the NOSCRIPT retry"
    assert pipeliner.batches == 2


async def test_a_lost_server_is_every_calls_connection_error() -> None:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    from crawlpool.frontier.redis_pipeline import Pipeliner

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    dead = aioredis.from_url(f"redis://127.0.0.1:{port}/0", retry=Retry(NoBackoff(), 0))
    try:
        pipeliner = Pipeliner(dead)
        calls = [pipeliner.call(sha(ECHO), ECHO, ["k"], [i]) for i in range(3)]
        replies = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await dead.aclose()
    assert all(isinstance(reply, RedisConnectionError) for reply in replies), replies

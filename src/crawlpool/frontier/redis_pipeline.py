"""Automatic pipelining of the Redis frontier's script calls (and of the few plain commands sent with them,
add's seen reads): every call made in one turn of the event loop goes to Redis in one pipeline, so one
round trip serves the many tasks of a worker that end their pages together.

Why: a worker's fetches end in bursts, and each page costs a few script calls (observe, add, ack, take).
Sent one by one, each is a round trip, and on the server a read, a write and an event-loop wake-up: a
third of Redis' CPU per page was that system time. Batched, those costs are shared by the whole batch.

What does not change: each script is still one atomic step, a call's reply (or error) is its own, and a
task's calls keep their order (a task sends its next call only after the reply to the last). Calls of
different tasks were never ordered. When the connection fails, every call of the batch fails alike, and
each caller decides, as before, whether to try again (frontier/redis_connection.py: with_retries). A
script the server does not know (NOSCRIPT: it restarted or was flushed) did not run: it is loaded and
those calls alone are sent again. On a Redis Cluster the pipeline is redis-py's ClusterPipeline: it
sends each call to the node of its keys' slot (each script's KEYS share one slot), one round trip per
node, and SCRIPT LOAD goes to every primary.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, RedisError


@dataclass(frozen=True, slots=True)
class ScriptCall:
    sha: str  # '': a plain command, `args` (its name first)
    source: str
    keys: list[str]
    args: list[str | int]
    reply: asyncio.Future[Any]


class Pipeliner:
    """Collects script calls (EVALSHA) and plain commands, and sends those of one event-loop turn in one
    pipeline."""

    def __init__(self, client: aioredis.Redis | RedisCluster) -> None:
        self._client = client
        self._batch: list[ScriptCall] = []
        self._sending: set[asyncio.Task[None]] = set()  # strong references to the batches in flight
        self.batches = 0  # pipelines sent (for tests and benchmarks)

    def call(self, sha: str, source: str, keys: list[str], args: list[str | int]) -> asyncio.Future[Any]:
        """The reply of EVALSHA `sha` (whose text is `source`) with `keys` and `args`, once sent."""
        return self._queue(ScriptCall(sha, source, keys, args, asyncio.get_running_loop().create_future()))

    def command(self, *args: str | int) -> asyncio.Future[Any]:
        """The reply of a plain command (`args`: its name, then its key first), once sent."""
        return self._queue(ScriptCall("", "", [], list(args), asyncio.get_running_loop().create_future()))

    def _queue(self, call: ScriptCall) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        reply = call.reply
        self._batch.append(call)
        if len(self._batch) == 1:
            loop.call_soon(self._flush)  # after every task ready in this turn has added its calls
        return reply

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[ScriptCall]) -> None:
        try:
            replies = await self._replies(batch)
        except BaseException:  # cancelled, or a bug: no caller may wait forever
            for call in batch:
                call.reply.cancel()
            raise
        for call, reply in zip(batch, replies, strict=True):
            if call.reply.done():
                continue  # its caller was cancelled meanwhile
            if isinstance(reply, Exception):
                call.reply.set_exception(reply)
            else:
                call.reply.set_result(reply)

    async def _replies(self, batch: list[ScriptCall]) -> list[Any]:
        """One reply or error per call; a failed connection is every call's error."""
        try:
            replies = await self._execute(batch)
            unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if unknown:
                for source in {batch[i].source for i in unknown}:
                    await self._client.script_load(source)
                again = await self._execute([batch[i] for i in unknown])
                for i, reply in zip(unknown, again, strict=True):
                    replies[i] = reply
        except (RedisError, RedisClusterException, OSError) as exc:
            return [exc] * len(batch)
        return replies

    async def _execute(self, batch: list[ScriptCall]) -> list[Any]:
        self.batches += 1
        pipe = self._client.pipeline(transaction=False)
        for call in batch:
            if call.sha:
                pipe.execute_command("EVALSHA", call.sha, len(call.keys), *call.keys, *call.args)
            else:
                pipe.execute_command(*call.args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

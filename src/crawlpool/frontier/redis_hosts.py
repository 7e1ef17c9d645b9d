"""Host rows of a Redis crawl for the dashboard (see frontier/redis.py for the key schema).

Redis keeps no index of hosts by size, so the rows come from the hosts it does index: slots ready or
leased (`h:ready`, `h:leased`) and hosts held back (`h:paced`), at most `SCANNED` of them, then one
pipelined round trip reads each one's queue, retries, URLs in flight and pacing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from crawlpool.frontier.base import HostRow
from crawlpool.frontier.redis_keys import Keys, slot_host
from crawlpool.policy.pacing import HostPace

SCANNED = 2_000  # slots and paced hosts looked at: a display, not worth a long scan


async def redis_host_rows(
    client: Any,
    keys: Keys,
    call: Callable[[Any], Awaitable[Any]],
    now_ms: int,
    limit: int,
    default: HostPace,
) -> list[HostRow]:
    """The `limit` busiest hosts among those Redis indexes, read-only; `default` is the pace of a host
    never observed (the crawl's delay)."""
    slots = await call(client.zrange(keys.ready, 0, SCANNED - 1))
    slots += await call(client.zrange(keys.leased, 0, SCANNED - 1))
    names = {slot_host(slot) for slot in slots}
    names.update(await call(client.zrange(keys.paced, 0, SCANNED - 1)))
    hosts = sorted(names)
    pipe = client.pipeline(transaction=False)
    for host in hosts:
        queue, retry, state, inflight = keys.host(host)
        pipe.llen(queue)
        pipe.zcard(retry)
        pipe.hlen(inflight)
        pipe.hmget(state, ["pace", "blocked_until_ms"])
    replies = await call(pipe.execute()) if hosts else []
    rows = []
    for i, host in enumerate(hosts):
        queued, retrying, in_flight, (pace, blocked) = replies[4 * i : 4 * i + 4]
        rows.append(
            HostRow(
                host,
                int(queued) + int(retrying),
                int(in_flight),
                HostPace.from_json(json.loads(pace)) if pace else default,
                max(0.0, (int(blocked or 0) - now_ms) / 1000),
            )
        )
    rows.sort(key=lambda row: (-(row.queued + row.in_flight), row.host))
    return rows[:limit]

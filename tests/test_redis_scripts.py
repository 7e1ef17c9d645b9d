"""Each Lua script of the Redis frontier on its own, against the session's private redis-server.

Every test builds KEYS and ARGV by hand, in the order the script's `lua/<name>.lua` header names
them, sets up the keys it reads with plain Redis commands (or with another script), and checks the
reply and the keys the script left behind. Time is passed in ARGV[1] (`NOW`), never Redis TIME.
The last tests check the headers themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import pytest

from tests.redis_server import drop_crawl, new_crawl_id, redis_url
from tests.test_policy import PACING_ROWS

pytestmark = pytest.mark.redis

NOW = 1_000_000  # ms, passed as ARGV[1]
LEASE_MS = 60_000
PER_HOST = 2
DELAY_MS = 1000
CRAWL = {"per_host": PER_HOST, "delay_ms": DELAY_MS, "urls_per_lease": 10}  # written into the scripts


@dataclass
class Env:
    client: Any  # redis.asyncio.Redis with decode_responses=True
    scripts: Any  # crawlpool.frontier.redis_scripts.Scripts
    keys: Any  # crawlpool.frontier.redis_keys.Keys

    def host(self, host: str) -> list[str]:
        """q, retry, host (cfg) and inflight of `host`."""
        return list(self.keys.host(host))

    async def owner(self, slot: str) -> dict[str, Any] | None:
        raw = await self.client.hget(self.keys.owner, slot)
        return None if raw is None else dict(json.loads(raw))

    async def meta(self, *fields: str) -> list[int]:
        return [int(v or 0) for v in await self.client.hmget(self.keys.meta, list(fields))]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    import redis.asyncio as aioredis

    from crawlpool.frontier.redis_keys import Keys
    from crawlpool.frontier.redis_scripts import Scripts

    url, crawl_id = redis_url(), new_crawl_id()
    client = aioredis.from_url(url, decode_responses=True)
    try:
        yield Env(client, Scripts(client, **CRAWL), Keys(crawl_id))
    finally:
        await client.aclose()
        await drop_crawl(url, crawl_id)


def record(path: str, host: str = "a.test", attempts: int = 0) -> str:
    url = f"http://{host}/{path}"
    return json.dumps(
        {"url": url, "fp": str(fp_of(url)), "host": host, "depth": 0, "referrer": None, "attempts": attempts},
        separators=(",", ":"),
    )


def fp_of(url: str) -> int:
    return int.from_bytes(hashlib.sha1(url.encode()).digest()[:8], "big", signed=True)


async def lease_slot(env: Env, slot: str, token: int, *, fp: str | None = None, n: int = 0) -> None:
    """Make `slot` leased by worker w1 with `token`, as lease_slots (and take, with fp) would."""
    owner: dict[str, Any] = {"w": "w1", "t": token, "n": n}
    if fp is not None:
        owner["fp"] = fp
    await env.client.hset(env.keys.owner, slot, json.dumps(owner))
    await env.client.zadd(env.keys.leased, {slot: NOW + LEASE_MS})


async def take_one(env: Env, slot: str, token: int) -> str:
    """Run take for one new slot of a.test; returns its result."""
    k = env.keys
    (result,), _ = await env.scripts.take(
        keys=[k.meta, k.ready, k.leased, k.owner, *env.host("a.test")],
        args=[NOW, 5, slot, token, 1, "n"],
    )
    return str(result)


def end_call(
    env: Env,
    token: int,
    rec: str,
    mode: str,
    payload: str = "",
    extra: str = "",
    answer: list[Any] | None = None,
    after: str = "0-0",
) -> Any:
    """end.lua; `answer`: [status, elapsed_ms, error code] of the host's answer, paced in the same step;
    `after`: the last id of the worker's stream it had seen."""
    k = env.keys
    fp = json.loads(rec)["fp"]
    paced = ["answer", *answer] if answer else []
    return env.scripts.end(
        keys=[
            k.meta,
            k.ready,
            k.leased,
            k.owner,
            *env.host("a.test"),
            k.records("w1"),
            k.done_by,
            k.paced,
        ],
        args=[
            NOW,
            "a.test",
            fp,
            token,
            mode,
            payload,
            extra,
            "w1",
            "",
            after,
            *paced,
        ],
    )


# -- init, add, settle ---------------------------------------------------------------------------


async def test_init_writes_the_config_once_and_returns_the_stored_one(env: Env) -> None:
    k = env.keys
    assert await env.scripts.init(keys=[k.meta], args=[NOW, 1, 2, 1000, 14, 1]) == [
        "1",
        "2",
        "1000",
        "14",
        "1",
    ]
    # A later worker with other values gets the first worker's.
    assert await env.scripts.init(keys=[k.meta], args=[NOW + 5, 1, 8, 50, 4, 16]) == [
        "1",
        "2",
        "1000",
        "14",
        "1",
    ]
    meta = await env.client.hgetall(k.meta)
    assert meta["created_ms"] == str(NOW) and meta["state"] == "running"
    assert [meta[c] for c in ("seen", "queued", "leased")] == ["0", "0", "0"]
    assert "done" not in meta, "done is seen - queued - leased"


async def test_add_queues_new_fingerprints_per_host_and_scores_their_free_slots(env: Env) -> None:
    k = env.keys
    a1, a2, b1 = record("1"), record("2"), record("1", "b.test")
    keys = [k.meta, k.ready, k.leased, k.seen(0), k.seen(7), *env.host("a.test")[:3], *env.host("b.test")[:3]]
    args: list[str | int] = [NOW, 2, 2, "a.test", "b.test"]
    args += [1, 1, json.loads(a1)["fp"], a1, 2, 1, json.loads(a2)["fp"], a2, 1, 2, json.loads(b1)["fp"], b1]
    assert await env.scripts.add(keys=keys, args=args) == 3
    assert await env.client.lrange(env.host("a.test")[0], 0, -1) == [a1, a2]
    assert await env.client.lrange(env.host("b.test")[0], 0, -1) == [b1]
    assert await env.client.smembers(k.seen(0)) == {json.loads(a1)["fp"], json.loads(b1)["fp"]}
    assert await env.client.smembers(k.seen(7)) == {json.loads(a2)["fp"]}
    # Never started: due at once (score 0), every slot of both hosts.
    ready = await env.client.zrange(k.ready, 0, -1, withscores=True)
    assert sorted(ready) == [("a.test#0", 0), ("a.test#1", 0), ("b.test#0", 0), ("b.test#1", 0)]
    assert await env.meta("seen", "queued") == [3, 3]


async def test_add_is_idempotent_a_second_add_of_the_same_fp_adds_nothing(env: Env) -> None:
    k = env.keys
    rec = record("1")
    keys = [k.meta, k.ready, k.leased, k.seen(0), *env.host("a.test")[:3]]
    args: list[str | int] = [NOW, 1, 1, "a.test", 1, 1, json.loads(rec)["fp"], rec]
    assert await env.scripts.add(keys=keys, args=args) == 1
    assert await env.scripts.add(keys=keys, args=args) == 0
    assert await env.client.llen(env.host("a.test")[0]) == 1
    assert await env.meta("seen", "queued") == [1, 1]


async def test_add_of_a_new_url_makes_a_done_crawl_running_again(env: Env) -> None:
    k = env.keys
    await env.client.hset(k.meta, mapping={"state": "done", "seen": 0, "queued": 0})
    rec = record("1")
    keys = [k.meta, k.ready, k.leased, k.seen(0), *env.host("a.test")[:3]]
    args: list[str | int] = [NOW, 1, 1, "a.test", 1, 1, json.loads(rec)["fp"], rec]
    assert await env.scripts.add(keys=keys, args=args) == 1
    assert await env.client.hget(k.meta, "state") == "running"


async def test_settle_records_an_unseen_url_once(env: Env) -> None:
    k = env.keys
    keys = [k.meta, k.seen(3), k.records("w1"), k.done_by]
    record_id = await env.scripts.settle(keys=keys, args=["-42", '{"page":1}', "robots", "w1"])
    assert await env.scripts.settle(keys=keys, args=["-42", '{"page":2}', "robots", "w1"]) == 0
    ((stream_id, entry),) = await env.client.xrange(k.records("w1"))
    assert record_id == stream_id, "settle answers its record's id"
    assert entry == {"fp": "-42", "worker": "w1", "page": '{"page":1}'}
    assert await env.client.hgetall(k.done_by) == {"robots": "1"}
    assert await env.meta("seen", "queued", "leased") == [1, 0, 0], "seen, so done (seen - queued - leased)"


# -- lease_slots, take ---------------------------------------------------------------------------


async def test_lease_slots_moves_due_slots_to_leased_with_fresh_tokens(env: Env) -> None:
    k = env.keys
    await env.client.zadd(k.ready, {"a.test#0": NOW - 5, "b.test#0": NOW, "c.test#0": NOW + 300})
    keys = [k.ready, k.leased, k.owner, k.tok]
    pairs, (wait_ms, leased) = await env.scripts.lease_slots(keys=keys, args=[NOW, LEASE_MS, "w1", 5, 1, 0])
    assert pairs == ["a.test#0", 1, "b.test#0", 2]
    assert (wait_ms, leased) == (300, 2)  # c.test#0 is due in 300 ms
    assert await env.client.zrange(k.leased, 0, -1, withscores=True) == [
        ("a.test#0", NOW + LEASE_MS),
        ("b.test#0", NOW + LEASE_MS),
    ]
    assert await env.owner("a.test#0") == {"w": "w1", "t": 1, "n": 0}
    assert await env.client.zrange(k.ready, 0, -1) == ["c.test#0"]
    assert await env.client.exists(k.workers) == 0  # the heartbeat is beat.lua's
    # n = 0 leases nothing and only answers the wait; an empty ready answers -1.
    assert await env.scripts.lease_slots(keys=keys, args=[NOW, LEASE_MS, "w1", 0, 1, 0]) == [[], [300, 2]]
    await env.client.delete(k.ready)
    assert await env.scripts.lease_slots(keys=keys, args=[NOW, LEASE_MS, "w1", 3, 1, 0]) == [[], [-1, 2]]


async def test_lease_slots_never_hands_out_the_same_slot_twice_under_concurrency(env: Env) -> None:
    k = env.keys
    await env.client.zadd(k.ready, {f"h{i}.test#0": NOW for i in range(20)})
    keys = [k.ready, k.leased, k.owner, k.tok]
    replies = await asyncio.gather(
        *(env.scripts.lease_slots(keys=keys, args=[NOW, LEASE_MS, f"w{i}", 1, 1, 0]) for i in range(50))
    )
    handed = [slot for pairs, _ in replies for slot in pairs[0::2]]
    tokens = [token for pairs, _ in replies for token in pairs[1::2]]
    assert sorted(handed) == sorted(f"h{i}.test#0" for i in range(20))  # each once, none lost
    assert len(set(tokens)) == 20
    assert await env.client.zcard(k.ready) == 0 and await env.client.zcard(k.leased) == 20


async def test_take_hands_out_one_url_per_slot_and_records_it_in_flight(env: Env) -> None:
    k = env.keys
    q, _, cfg, inflight = env.host("a.test")
    first, second = record("1"), record("2")
    await env.client.rpush(q, first, second)
    await env.client.hset(k.meta, mapping={"queued": 2, "leased": 0})
    await lease_slot(env, "a.test#0", 7)
    assert await take_one(env, "a.test#0", 7) == first
    fp = json.loads(first)["fp"]
    assert await env.client.hget(inflight, fp) == f"0|7|{first}"
    assert await env.owner("a.test#0") == {"w": "w1", "t": 7, "n": 1, "fp": fp}
    assert await env.client.hget(cfg, "last_start_ms") == str(NOW)
    assert await env.meta("queued", "leased") == [1, 1]
    assert await env.client.lrange(q, 0, -1) == [second]
    # The host just started: its other slot is scored at the next start, NOW + delay.
    assert await env.client.zscore(k.ready, "a.test#1") == NOW + DELAY_MS
    # The same slot again: a URL is in flight.
    assert await take_one(env, "a.test#0", 7) == "BUSY"


async def test_take_answers_stale_skip_and_freed(env: Env) -> None:
    k = env.keys
    q = env.host("a.test")[0]
    await env.client.rpush(q, record("1"))
    await lease_slot(env, "a.test#0", 7)
    await lease_slot(env, "a.test#1", 8)
    assert await take_one(env, "a.test#0", 6) == "STALE"  # not the owner's token
    assert await take_one(env, "gone.test#0", 1) == "STALE"  # no owner at all
    results, _ = await env.scripts.take(
        keys=[k.meta, k.ready, k.leased, k.owner, *env.host("a.test")],
        args=[NOW, 0, "a.test#0", 7, 1, "h", "a.test#1", 8, 1, "n"],
    )
    # Limit 0: a held idle slot is kept (SKIP), a slot leased for this call is freed.
    assert results == ["SKIP", "FREED"]
    assert await env.owner("a.test#1") is None
    assert await env.client.zscore(k.leased, "a.test#1") is None
    assert await env.client.zscore(k.ready, "a.test#1") == 0  # the host still has a URL queued


async def test_take_moves_due_retries_to_the_front_of_the_queue(env: Env) -> None:
    q, d, _, _ = env.host("a.test")
    queued, due, later = record("1"), record("2", attempts=1), record("3", attempts=1)
    await env.client.rpush(q, queued)
    await env.client.zadd(d, {due: NOW - 1, later: NOW + 10})
    await lease_slot(env, "a.test#0", 7)
    assert await take_one(env, "a.test#0", 7) == due
    assert await env.client.lrange(q, 0, -1) == [queued]
    assert await env.client.zrange(d, 0, -1) == [later]


# -- end -----------------------------------------------------------------------------------------


async def in_flight(env: Env, token: int, *recs: str) -> str:
    """One URL of a.test in flight on a.test#0 under `token` (through take); the rest stay queued.
    The host's last start is cleared first, so that take may start it now."""
    await env.client.hdel(env.host("a.test")[2], "last_start_ms")
    await env.client.rpush(env.host("a.test")[0], *recs)
    await env.client.hset(env.keys.meta, mapping={"seen": len(recs), "queued": len(recs), "leased": 0})
    await lease_slot(env, "a.test#0", token)
    return await take_one(env, "a.test#0", token)


async def test_end_ack_commits_once_then_answers_already(env: Env) -> None:
    k = env.keys
    rec = await in_flight(env, 7, record("1"))
    reply = await end_call(env, 7, rec, "ack", '{"page":1}', "ok")
    ((stream_id, entry),) = await env.client.xrange(k.records("w1"))
    assert reply == ["FREED", "a.test#0", stream_id], "an ack answers its record's id last"
    assert entry == {"fp": json.loads(rec)["fp"], "t": "7", "worker": "w1", "page": '{"page":1}'}
    assert await env.client.hgetall(k.done_by) == {}  # failures by code only: an ok costs no command
    seen, queued, leased = await env.meta("seen", "queued", "leased")
    assert (queued, leased, seen - queued - leased) == (0, 0, 1), "done is seen - queued - leased"
    assert await env.owner("a.test#0") is None  # nothing queued: the slot was freed, and not re-scored
    assert await env.client.zscore(k.ready, "a.test#0") is None
    # The same ack again (a lost reply, retried): ALREADY, nothing changes.
    assert await end_call(env, 7, rec, "ack", '{"page":1}', "ok") == ["ALREADY"]
    assert await env.client.xlen(k.records("w1")) == 1


async def test_a_resent_ack_finds_its_record_among_the_workers_records_since_it_was_first_sent(
    env: Env,
) -> None:
    k = env.keys
    before = await env.client.xadd(k.records("w1"), {"fp": "1", "worker": "w1", "page": "{}"})
    rec = await in_flight(env, 7, record("2"))
    await end_call(env, 7, rec, "ack", '{"page":2}', "ok", after=before)
    for i in range(600):  # other acks of this worker since: the search reads them a page at a time
        await env.client.xadd(k.records("w1"), {"fp": str(1000 + i), "worker": "w1", "page": "{}"})
    assert await end_call(env, 7, rec, "ack", '{"page":2}', "ok", after=before) == ["ALREADY"]
    last = (await env.client.xrevrange(k.records("w1"), count=1))[0][0]
    assert await end_call(env, 7, rec, "ack", '{"page":2}', "ok", after=last) == ["STALE"], (
        "a record below `after` is no record of this call"
    )
    other = json.dumps({**json.loads(rec), "fp": "3"})
    assert await end_call(env, 7, other, "ack", "{}", "ok", after=before) == ["STALE"]
    assert await end_call(env, 8, rec, "ack", '{"page":2}', "ok", after=before) == ["STALE"], (
        "the record of the same URL under another lease (a zombie's ack, its reply lost) is not its own"
    )
    assert await env.client.xlen(k.records("w1")) == 602


async def test_an_ack_with_the_hosts_answer_paces_it_once_in_the_same_step(env: Env) -> None:
    """The answer an ack carries counts as pace.lua would count it, and only when the URL ends there:
    a resent ack (ALREADY) or a stale one leaves the host's pace alone."""
    cfg = env.host("a.test")[2]
    rec = await in_flight(env, 7, record("1"), record("2"))
    reply = await end_call(env, 7, rec, "ack", "{}", "ok", answer=["503", "40", ""])
    assert reply[0] == "FREED", "backed off before the slot's fate is decided: the host is not due now"
    floor, extra, baseline, answers = json.loads(await env.client.hget(cfg, "pace"))
    assert (extra > 0, baseline, answers) == (True, 40, 1), "a 503 backs the host off"
    delay_ms = int(await env.client.hget(cfg, "delay_ms"))
    assert delay_ms == round((floor + extra) * 1000) > DELAY_MS
    assert await env.client.zscore(env.keys.paced, "a.test") is not None
    ready = await env.client.zrange(env.keys.ready, 0, -1, withscores=True)
    assert ready and all(score == NOW + delay_ms for _, score in ready), "its free slots wait the new delay"
    paced = await env.client.hget(cfg, "pace")
    assert await end_call(env, 7, rec, "ack", "{}", "ok", answer=["503", "40", ""]) == ["ALREADY"]
    assert await end_call(env, 99, rec, "ack", "{}", "ok", answer=["503", "40", ""]) == ["STALE"]
    assert await env.client.hget(cfg, "pace") == paced, "counted once"


async def test_end_keeps_the_slot_when_the_host_may_start_again_now(env: Env) -> None:
    rec = await in_flight(env, 7, record("1"), record("2"))
    await env.client.hset(env.host("a.test")[2], "delay_ms", 0)  # no delay: next URL due at once
    assert (await end_call(env, 7, rec, "ack", "{}", "http_5xx"))[:2] == ["KEPT", "a.test#0"]
    assert await env.owner("a.test#0") == {"w": "w1", "t": 7, "n": 1}
    assert await env.client.hgetall(env.keys.done_by) == {"http_5xx": "1"}


async def test_end_retry_and_release_requeue_the_url(env: Env) -> None:
    q, d, _, inflight = env.host("a.test")
    rec = await in_flight(env, 7, record("1"))
    again = record("1", attempts=1)
    assert await end_call(env, 7, rec, "retry", again, "2500") == ["FREED", "a.test#0"]
    assert await env.client.zrange(d, 0, -1, withscores=True) == [(again, NOW + 2500)]
    assert await env.client.hlen(inflight) == 0
    assert await env.meta("queued", "leased") == [1, 0]

    await env.client.delete(d)
    rec = await in_flight(env, 8, record("2"))
    assert await end_call(env, 8, rec, "release") == ["FREED", "a.test#0"]
    assert await env.client.lrange(q, 0, -1) == [rec]  # back at the front, attempts unchanged


async def test_a_stale_token_gets_stale_from_take_end_and_extend(env: Env) -> None:
    k = env.keys
    rec = await in_flight(env, 7, record("1"))
    # The slot was reaped and leased again with token 9: token 7 is stale everywhere.
    await lease_slot(env, "a.test#0", 9, fp=json.loads(rec)["fp"])
    assert await take_one(env, "a.test#0", 7) == "STALE"
    for mode in ("ack", "retry", "release"):
        assert await end_call(env, 7, rec, mode, "{}", "0") == ["STALE"]
    lost = await env.scripts.extend(keys=[k.leased, k.owner], args=[NOW + 10, LEASE_MS, "w1", "a.test#0", 7])
    assert lost == ["a.test#0"]
    assert await env.client.xlen(k.records("w1")) == 0
    assert await env.client.zscore(k.leased, "a.test#0") == NOW + LEASE_MS  # not pushed


# -- extend, expired, reclaim --------------------------------------------------------------------


async def test_extend_pushes_the_deadlines_of_owned_slots_and_returns_the_lost(env: Env) -> None:
    k = env.keys
    await lease_slot(env, "a.test#0", 7)
    lost = await env.scripts.extend(
        keys=[k.leased, k.owner],
        args=[NOW + 100, LEASE_MS, "w1", "a.test#0", 7, "b.test#0", 3],
    )
    assert lost == ["b.test#0"]
    assert await env.client.zscore(k.leased, "a.test#0") == NOW + 100 + LEASE_MS
    assert await env.client.zscore(k.leased, "b.test#0") is None  # never added by extend
    # A deadline is never moved back.
    await env.scripts.extend(keys=[k.leased, k.owner], args=[NOW, LEASE_MS, "w1", "a.test#0", 7])
    assert await env.client.zscore(k.leased, "a.test#0") == NOW + 100 + LEASE_MS


async def test_expired_lists_slots_past_their_deadline_only(env: Env) -> None:
    k = env.keys
    await env.client.zadd(k.leased, {"a.test#0": NOW - 10, "b.test#0": NOW, "c.test#0": NOW + 1})
    assert await env.scripts.expired(keys=[k.leased], args=[NOW, 100]) == ["a.test#0", "b.test#0"]
    assert await env.scripts.expired(keys=[k.leased], args=[NOW, 1]) == ["a.test#0"]
    assert await env.client.zcard(k.leased) == 3  # read-only


def reclaim_call(env: Env, now: int, mode: str, *slots: tuple[str, int]) -> Any:
    k = env.keys
    args: list[str | int] = [now, mode, "w1"]
    for slot, token in slots:
        args += [slot, token, 1]
    return env.scripts.reclaim(keys=[k.meta, k.ready, k.leased, k.owner, *env.host("a.test")], args=args)


async def test_reclaim_expired_requeues_the_url_with_one_more_attempt(env: Env) -> None:
    k = env.keys
    q, _, _, inflight = env.host("a.test")
    rec = await in_flight(env, 7, record("1"))
    assert await reclaim_call(env, NOW + LEASE_MS - 1, "expired", ("a.test#0", 0)) == 0  # not yet
    assert await reclaim_call(env, NOW + LEASE_MS, "expired", ("a.test#0", 0)) == 1
    (back,) = await env.client.lrange(q, 0, -1)
    assert json.loads(back) == {**json.loads(rec), "attempts": 1}
    assert await env.client.hlen(inflight) == 0
    assert await env.owner("a.test#0") is None  # the token is dead
    assert await env.client.zscore(k.leased, "a.test#0") is None
    assert await env.client.zscore(k.ready, "a.test#0") is not None
    assert await env.meta("queued", "leased") == [1, 0]


async def test_two_reclaims_racing_over_one_expired_slot_requeue_its_url_once(env: Env) -> None:
    q = env.host("a.test")[0]
    await in_flight(env, 7, record("1"))
    later = NOW + LEASE_MS + 1
    moved = await asyncio.gather(*(reclaim_call(env, later, "expired", ("a.test#0", 0)) for _ in range(2)))
    assert sorted(moved) == [0, 1]
    assert await env.client.llen(q) == 1
    assert await env.meta("queued", "leased") == [1, 0]


async def test_reclaim_release_checks_the_token_and_charges_no_attempt(env: Env) -> None:
    q = env.host("a.test")[0]
    rec = await in_flight(env, 7, record("1"))
    assert await reclaim_call(env, NOW, "release", ("a.test#0", 6)) == 0  # another token: untouched
    assert await env.owner("a.test#0") is not None
    assert await reclaim_call(env, NOW, "release", ("a.test#0", 7)) == 1
    assert await env.client.lrange(q, 0, -1) == [rec]


async def test_reclaim_mine_takes_back_the_slots_of_this_worker_id(env: Env) -> None:
    await in_flight(env, 7, record("1"))
    await env.client.hset(env.keys.owner, "a.test#1", json.dumps({"w": "other", "t": 8, "n": 0}))
    assert await reclaim_call(env, NOW, "mine", ("a.test#0", 0), ("a.test#1", 0)) == 1
    assert await env.owner("a.test#0") is None
    assert await env.owner("a.test#1") == {"w": "other", "t": 8, "n": 0}


# -- pace, is_done -------------------------------------------------------------------------------


async def test_pace_sets_the_delay_and_only_ever_extends_a_block(env: Env) -> None:
    k = env.keys
    q, d, cfg, _ = env.host("a.test")
    await env.client.rpush(q, record("1"))
    await env.client.hset(cfg, "last_start_ms", NOW)
    keys = [k.ready, k.leased, q, d, cfg, k.paced]
    fixed = [NOW, "a.test"]
    reply = await env.scripts.pace(keys=keys, args=[*fixed, "floor", "5", "", ""])
    assert json.loads(reply) == [5, 0, 0, 0]
    assert await env.client.hget(cfg, "delay_ms") == "5000"
    assert await env.client.zscore(k.ready, "a.test#0") == NOW + 5000
    await env.scripts.pace(keys=keys, args=[*fixed, "block", "9000", "", ""])
    assert await env.client.hget(cfg, "blocked_until_ms") == str(NOW + 9000)
    assert await env.client.zscore(k.ready, "a.test#1") == NOW + 9000
    await env.scripts.pace(keys=keys, args=[*fixed, "block", "10", "", ""])  # shorter
    assert await env.client.hget(cfg, "blocked_until_ms") == str(NOW + 9000)
    reply = await env.scripts.pace(keys=keys, args=[*fixed, "answer", "503", "7", ""])
    assert json.loads(reply) == [5, 0.25, 7, 1]
    assert await env.client.hget(cfg, "delay_ms") == "5250"
    assert await env.client.zrange(k.paced, 0, -1) == ["a.test"]  # backed off: listed for status
    await env.scripts.pace(keys=keys, args=[*fixed, "answer", "200", "7", ""])
    assert await env.client.zscore(k.paced, "a.test") == NOW + 9000  # recovered, but still blocked
    later = [NOW + 10_000, *fixed[1:]]
    await env.scripts.pace(keys=keys, args=[*later, "answer", "200", "7", ""])
    assert await env.client.zrange(k.paced, 0, -1) == []  # the block is over
    assert await env.client.hget(cfg, "blocked_until_ms") == "0", "so that no later answer unlists it again"


@pytest.mark.parametrize(("events", "_extra_s"), PACING_ROWS)
async def test_the_lua_pacing_rule_is_the_python_one(env: Env, events: list[Any], _extra_s: object) -> None:
    """Every row of the pacing table, replayed through lua/pace.lua: the same state, event by event."""
    from crawlpool.policy.pacing import Answered, FloorRaised, HostPace, next_pace

    q, d, cfg, _ = env.host("a.test")
    keys = [env.keys.ready, env.keys.leased, q, d, cfg, env.keys.paced]
    expected = HostPace(floor_s=DELAY_MS / 1000)
    for event in events:
        expected = next_pace(expected, event)
        if isinstance(event, Answered):
            status = "" if event.status is None else event.status
            args = ["answer", status, event.elapsed_ms, event.error_code or ""]
        else:
            assert isinstance(event, FloorRaised)
            args = ["floor", repr(event.floor_s), "", ""]
        reply = await env.scripts.pace(keys=keys, args=[NOW, "a.test", *args])
        got = HostPace.from_json(json.loads(reply))
        assert got.answers == expected.answers
        assert (got.floor_s, got.extra_s, got.baseline_ms) == pytest.approx(
            (expected.floor_s, expected.extra_s, expected.baseline_ms)
        )


async def test_is_done_sets_the_state_once_nothing_is_queued_or_leased(env: Env) -> None:
    k = env.keys
    await env.client.hset(k.meta, mapping={"queued": 1, "leased": 0, "state": "running"})
    assert await env.scripts.is_done(keys=[k.meta], args=[NOW]) == 0
    assert await env.client.hget(k.meta, "state") == "running"
    await env.client.hset(k.meta, "queued", 0)
    assert await env.scripts.is_done(keys=[k.meta], args=[NOW]) == 1
    assert await env.client.hmget(k.meta, ["state", "done_ms"]) == ["done", str(NOW)]
    assert await env.scripts.is_done(keys=[k.meta], args=[NOW + 5]) == 1
    assert await env.client.hget(k.meta, "done_ms") == str(NOW)  # set by the first caller only


# -- the contract: KEYS counts and headers -------------------------------------------------------


async def test_a_wrong_number_of_keys_fails_before_reaching_redis(env: Env) -> None:
    k = env.keys
    lease_keys = [k.ready, k.leased, k.owner, k.tok]
    with pytest.raises(ValueError, match=r"lease_slots takes 4 KEYS .* got 3"):
        env.scripts.lease_slots(keys=lease_keys[:3], args=[NOW, LEASE_MS, "w1", 1, 1, 0])
    with pytest.raises(ValueError, match=r"is_done takes 1 KEYS .* got 2"):
        env.scripts.is_done(keys=[k.meta, k.ready], args=[NOW])  # an extra key is refused too
    with pytest.raises(ValueError, match=r"take takes at least 4 KEYS .* got 3"):
        env.scripts.take(keys=[k.meta, k.ready, k.leased], args=[NOW, 1])
    assert await env.client.exists(k.leased, k.ready, k.workers) == 0  # nothing ran


async def test_the_raw_script_with_a_key_missing_is_a_redis_error_not_a_silent_nil(env: Env) -> None:
    """Below the wrapper's check: a missing key reaches the script as nil, which Redis refuses only at
    the command that uses it, after the steps before it were done (scripts do not roll back). That
    is why LuaScript checks the count before sending anything."""
    from redis.exceptions import ResponseError

    from crawlpool.frontier.redis_scripts import source

    k = env.keys
    rec = await in_flight(env, 7, record("1"))
    raw = env.client.register_script(source("end", CRAWL))
    fp = json.loads(rec)["fp"]
    with pytest.raises(
        ResponseError
    ):  # done_by (KEYS[10]) is missing: a failure's count fails, after the XADD
        await raw(
            keys=[k.meta, k.ready, k.leased, k.owner, *env.host("a.test"), k.records("w1")],
            args=[NOW, "a.test", fp, 7, "ack", "{}", "timeout", "w1"],
        )
    assert await env.client.xlen(k.records("w1")) == 1  # half done: a record, its URL still in flight


LUA_DIR = files("crawlpool.frontier") / "lua"


def lua_names() -> list[str]:
    return sorted(p.name.removesuffix(".lua") for p in LUA_DIR.iterdir() if p.name.endswith(".lua"))


def test_every_lua_file_is_a_registered_script_or_the_prelude() -> None:
    from crawlpool.frontier.redis_scripts import NAMES, PRELUDE

    assert lua_names() == sorted([*NAMES, PRELUDE])


@pytest.mark.parametrize("name", lua_names())
def test_every_lua_file_opens_with_a_header_naming_keys_argv_and_the_reply(name: str) -> None:
    from crawlpool.frontier.redis_scripts import arity, header

    text = header(name)
    assert re.search(r"^\s*Input:\s*$", text, re.MULTILINE), f"{name}.lua: no Input: section"
    assert re.search(r"^\s*Output:\s*$", text, re.MULTILINE), f"{name}.lua: no Output: section"
    assert "KEYS" in text and "ARGV[1]" in text, f"{name}.lua: the header names no KEYS or ARGV"
    output = text.split("Output:", 1)[1].strip()
    assert output, f"{name}.lua: the header does not say what the script returns"
    if name == "prelude":
        return
    declared_keys = arity(name).keys
    body = (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8").split("]]\n", 1)[1]
    # Every literal KEYS[n] / ARGV[n] the body uses is named in the header.
    for used in sorted({int(i) for i in re.findall(r"KEYS\[(\d+)\]", body)}):
        assert used <= declared_keys, f"{name}.lua uses KEYS[{used}] beyond its header's {declared_keys}"
    declared_argv = {int(i) for i in re.findall(r"^\s*ARGV\[(\d+)\]", text, re.MULTILINE)}
    for used in sorted({int(i) for i in re.findall(r"ARGV\[(\d+)\]", body)}):
        assert used in declared_argv, f"{name}.lua uses ARGV[{used}], which its header does not name"


def test_constants_are_written_into_the_scripts_as_literals() -> None:
    from crawlpool.frontier.redis_scripts import NAMES, source, with_constants

    values = {"step_s": 0.25, "warmup": 3, "overload": [429, 503], "shift": -2, "zero": -0.0}
    text = "x = K.step_s * K.warmup + K.shift -K.zero -- K.<name>\nif K.overload(status) then end"
    assert with_constants(text, values) == (
        "x = 0.25 * 3 + (-2) -(-0.0) -- K.<name>\nif (status == 429 or status == 503) then end"
    )
    assert with_constants("t.K.step_s, OK.step_s", values) == "t.K.step_s, OK.step_s", "only K. alone"
    with pytest.raises(ValueError, match=r"K\.nope is no constant"):
        with_constants("K.nope", values)
    with pytest.raises(ValueError, match="only finite numbers"):
        with_constants("K.step_s", {"step_s": float("inf")})
    with pytest.raises(ValueError, match=r"K\.overload is a list"):
        with_constants("K.overload", values)
    with pytest.raises(ValueError, match=r"K\.warmup is not a list"):
        with_constants("K.warmup(x)", values)
    with pytest.raises(ValueError, match=r"K\.per_host is no constant"):
        source("end")  # the crawl's constants are needed
    for name in NAMES:
        text = source(name, CRAWL)
        assert re.search(r"\bK\.[a-z_]+\b(?!>)", text) is None, f"{name}.lua: a constant left unwritten"
    assert "or (answers >= 3 and elapsed >= 500.0" in source("pace", CRAWL)
    assert "local per_host, delay, k_max = 2, 1000, 10" in source("end", CRAWL)

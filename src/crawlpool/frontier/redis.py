"""The Redis frontier: one crawl shared by many processes on many machines.

Theory of operation. The unit of politeness is a *slot*: host `h` has `per_host` slots `h#0 … h#C-1`,
and a slot has at most one URL in flight, so no more than `per_host` URLs of a host are ever in flight,
across all workers. A worker leases a slot (`lease_slots`: it leaves `ready`, enters `leased` with a
deadline, and `owner` records the worker and a fresh fencing token from INCR), then hands out the
host's URLs through it one at a time (`take`), at most `urls_per_lease` of them, each only after the
previous one ended and the *host's* delay has passed since its last start (`last_start_ms`, shared by
all slots and all workers). When a URL ends (`ack` / `retry` / `release`) the worker keeps the slot if
the host's next URL may start right away, and otherwise frees it: the slot goes back to `ready` scored
with the time its next URL may start, so politeness carries over to whichever worker leases it next.
A slot is in `ready` only while its host has work (queued or waiting to retry) and no one leases it.

    free slot ──lease_slots──▶ leased, idle ──take──▶ leased, one URL in flight ──ack/retry/release──┐
        ▲          (token t)        ▲                                                               │
        │                           └──────────── kept: due now, under urls_per_lease ◀─────────────┤
        └───────── freed: scored with the host's next start (or dropped if it has no work) ◀────────┘

`Lease.token` is the slot lease's token. Every mutating step is one Lua script that checks it first:
a token that is no longer the slot owner's (the slot was reaped, freed, or the URL already ended)
gets STALE, and the method returns False — nothing changed. URLs are taken lazily, one per hand-out,
rather than K at once as REDIS-FRONTIER.md §3 suggests: the protocol hands out URLs one by one and
spaces starts per host, so a prefetched batch would still need a server round trip per URL, and it
would starve the host's other slots (a host with 4 URLs and 5 slots must be able to serve 4 at once).

Key schema. Every key sits under one hash tag per crawl, `crawlpool:{C}:` (C = crawl id), so every
script touches one Cluster slot; per-host key names are built in Python and passed in KEYS.

| key               | type   | contents                                                                     |
|-------------------|--------|------------------------------------------------------------------------------|
| `meta`            | HASH   | schema, per_host, delay_ms, seen_bits, created_ms, state (running/done),     |
|                   |        | counters seen, queued (incl. waiting retries), leased (URLs in flight), done |
|                   |        | and `m:<key>` for `set_meta(key)` (m:crawl: seeds, scope and filters, JSON)  |
| `tok`             | STRING | fencing-token counter, INCR only                                             |
| `seen:<b>`        | SET    | seen fingerprints as signed decimal int64 (so the set is an intset);         |
|                   |        | bucket b = the top `seen_bits` bits of the unsigned fingerprint              |
| `q:<host>`        | LIST   | the host's queued URL records (JSON), handed out from the left               |
| `retry:<host>`    | ZSET   | record → due ms: retries waiting; moved to the front of q when due           |
| `host:<host>`     | HASH   | last_start_ms, delay_ms (set by pace_host), blocked_until_ms                 |
| `inflight:<host>` | HASH   | fp → `<slot index>|<token>|<record>` for each URL handed out                 |
| `h:ready`         | ZSET   | free slot `<host>#<i>` → earliest ms its next URL may start                  |
| `h:leased`        | ZSET   | leased slot → lease deadline ms                                              |
| `h:owner`         | HASH   | leased slot → JSON {w: worker id, t: token, n: URLs taken under              |
|                   |        | this lease, fp: the URL in flight, absent when none}                         |
| `workers`         | ZSET   | worker id → last heartbeat ms (for `status`)                                 |
| `records`         | STREAM | one entry per ack: fp, worker, page (the manifest record as JSON)            |
| `done_by`         | HASH   | error code (or `ok`) → records acked with it                                 |
| `acks`            | ZSET   | `<token>:<fp>` → ack ms, kept 2 × lease_ms: tells an ack retried             |
|                   |        | after a lost reply (ALREADY: it had committed) from a stale one              |

A URL record is JSON `{"url", "fp" (a string: Lua numbers are doubles), "host", "depth", "referrer",
"attempts"}`; page records are `Page.to_json()`. Nothing is pickled.

Seen set: 2^seen_bits intset buckets (14 bits by default, fixed when the crawl is created). Measured
on Redis 7.0 (used_memory growth, random 64-bit fingerprints): 9.2 B per URL for 1M URLs in 2^12
buckets, 10.4 B in 2^14, while a bucket stays under `set-max-intset-entries` (512: about 8M URLs
with 14 bits, 2M with 12). Past that a bucket turns into a hashtable, 75 B per URL (one plain SET:
72 B), and nothing else changes. Small crawls pay ~65 B of key overhead per used bucket (1.3 MB at
most with 14 bits). For bigger crawls choose seen_bits ≈ log2(expected URLs / 256). The `records`
stream is not trimmed: it costs about the size of each page's JSON; the per-worker manifests are the
sink, so an operator may XTRIM it.

Scripts (all times are Redis `TIME` in ms, read inside the script; see "Clock" below):
- `add`: SADD each fingerprint to its bucket; only the new ones are pushed on their host queue, so the
  seen mark and the enqueue are one step; then the host's free slots are (re)scored in ready.
- `lease_slots(n)`: moves up to n due slots from ready to leased with fresh tokens.
- `take`: for each slot (after the token check) moves due retries to the front of the host queue and,
  if the host may start now, pops one record into inflight; a slot that cannot serve is freed.
- `end` (ack / retry / release): token check, then ack XADDs the record and counts it done, retry
  puts the record (attempts+1) in retry:<host> due after delay_s, release pushes it back at the front
  of the host queue; then the slot is kept or freed as above.
- `extend` (the heartbeat, every lease_ms/3): pushes the deadline of each slot still owned with the
  worker's token; returns the lost ones, which the worker forgets (their acks will be STALE).
- `expired` + `reclaim` (the reaper, every few seconds on every worker, no coordinator): list slots
  past their deadline, then per slot re-check the deadline inside the script — so of two racing reapers
  only one requeues — put its URL back at the front of the queue with attempts+1 (a URL that keeps
  killing workers runs out of retries in the engine), delete the owner (which kills the token) and
  re-score the slot. `aclose` uses the same script to free its own slots without charging attempts.
- `pace`, `is_done`, `init`: host delay/block, the finished predicate with a compare-and-set of
  `meta.state`, the crawl's config written once.

When a worker dies, its slots stay leased until their deadline (lease_ms) passes; the next reap by any
worker requeues their URLs (front of the queue, one attempt charged) and frees the slots. What it
acked stays done; what it fetched but never acked is fetched again. A worker restarted with the same
explicit `worker_id` reclaims its old slots at once when it opens. A worker that only paused (GC,
SIGSTOP, a partition) and wakes is a zombie: its heartbeat reports the reaped slots lost and its acks
return False, so it can publish no duplicate record.

Waiting: `lease` answers `wait_s` = the time until the earliest free slot is due, or None when
nothing comes due by waiting alone — but only if no other worker holds a slot. While others do, it
answers at most 1 s: their URLs may end or add links at any time, and this process cannot see that.

Clock: with no `clock`, every time is Redis `TIME`, so no two machines' clocks are compared. An
injected `clock` (seconds, for tests such as the contract suite's FakeClock) replaces `TIME`: its
value is passed to every script as `now_ms`. Every worker of a crawl must then share that clock.

Redis connection and server errors are raised as `FrontierError`; redis-py's own retries are off,
because re-sending a script whose reply was lost could run it twice. If an `ack` fails that way and is
called again with the same lease, an ALREADY answer (the first attempt did commit) counts as success.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crawlpool.errors import ConfigError, FrontierError
from crawlpool.frontier.base import (
    CrawlState,
    FrontierCounts,
    FrontierStatus,
    Lease,
    LeaseBatch,
    Politeness,
    Request,
    WorkerStatus,
)
from crawlpool.records import Page

log = logging.getLogger(__name__)

SCHEMA = 1
MIN_SERVER_VERSION = (6, 2)
OUTAGE_S = 60.0  # how long a worker rides out a lost Redis before it stops
# A slot counts as held only within this part of a lease period after its deadline was last pushed:
# the heartbeat runs every third of a period, so a live worker stays well inside it.
_FRESH_FRACTION = 0.75
_ADD_CHUNK = 500  # requests per add script: keeps each script short so it never stalls the server
_REAP_BATCH = 100
_LEASE_ROUNDS = 4  # lease() retries while due slots remain and fewer than `limit` URLs came out
_POLL_S = 1.0  # wait_s when other workers hold slots: their lease endings are not seen here
_META = "m:"  # set_meta's keys, in the meta hash beside the crawl's own fields
_RECORDS_BATCH = 500  # stream entries per XRANGE when committed_pages reads the records
_ALIVE_S = 60.0  # `status`: a worker counts as alive within a default lease of its last heartbeat

# Shared by every script. ARGV[1] is now_ms from an injected clock, or '' to use the server's TIME.
_LUA_PRELUDE = """
local function now_ms()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- When the host's next URL may start: delay after the last start, and not before a block ends.
local function host_due(cfg, default_delay)
  local v = redis.call('HMGET', cfg, 'last_start_ms', 'delay_ms', 'blocked_until_ms')
  local due = 0
  if v[1] then due = tonumber(v[1]) + tonumber(v[2] or default_delay) end
  if v[3] and tonumber(v[3]) > due then due = tonumber(v[3]) end
  return due
end

-- Score every slot of the host that nobody leases: in ready at the time its next URL may start,
-- or out of ready when the host has nothing queued or waiting to retry.
local function rescore(host, q, d, cfg, ready, leased, per_host, default_delay)
  local at = false
  if redis.call('LLEN', q) > 0 then
    at = host_due(cfg, default_delay)
  else
    local first = redis.call('ZRANGE', d, 0, 0, 'WITHSCORES')
    if first[2] then at = math.max(host_due(cfg, default_delay), tonumber(first[2])) end
  end
  for i = 0, per_host - 1 do
    local slot = host .. '#' .. i
    if not redis.call('ZSCORE', leased, slot) then
      if at then redis.call('ZADD', ready, at, slot) else redis.call('ZREM', ready, slot) end
    end
  end
end

local function free_slot(slot, host, q, d, cfg, ready, leased, owner, per_host, default_delay)
  redis.call('HDEL', owner, slot)
  redis.call('ZREM', leased, slot)
  rescore(host, q, d, cfg, ready, leased, per_host, default_delay)
end

-- ms until the earliest free slot is due (0 if one is due now), -1 if none, and how many are leased.
local function next_wait(ready, leased, now)
  local first = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
  local wait = -1
  if first[2] then wait = math.max(0, tonumber(first[2]) - now) end
  return {wait, redis.call('ZCARD', leased)}
end

local function owner_of(owner, slot)
  local raw = redis.call('HGET', owner, slot)
  if raw then return cjson.decode(raw) end
  return false
end
"""

# KEYS meta; ARGV now, schema, per_host, delay_ms, seen_bits.
_INIT = """
local now = now_ms()
redis.call('HSETNX', KEYS[1], 'schema', ARGV[2])
redis.call('HSETNX', KEYS[1], 'per_host', ARGV[3])
redis.call('HSETNX', KEYS[1], 'delay_ms', ARGV[4])
redis.call('HSETNX', KEYS[1], 'seen_bits', ARGV[5])
redis.call('HSETNX', KEYS[1], 'created_ms', now)
redis.call('HSETNX', KEYS[1], 'state', 'running')
for _, counter in ipairs({'seen', 'queued', 'leased', 'done'}) do
  redis.call('HSETNX', KEYS[1], counter, 0)
end
return redis.call('HMGET', KEYS[1], 'schema', 'per_host', 'delay_ms', 'seen_bits')
"""

# KEYS meta, ready, leased, seen buckets (nb), then per host: q, retry, cfg.
# ARGV now, per_host, delay_ms, nb, nh, host names (nh), then per request: bucket, host, fp, record.
_ADD = """
local now = now_ms()
local per_host, delay, nb, nh = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local hosts0 = 3 + nb
local added, touched, order = 0, {}, {}
for j = 6 + nh, #ARGV, 4 do
  local h = tonumber(ARGV[j + 1])
  if redis.call('SADD', KEYS[3 + tonumber(ARGV[j])], ARGV[j + 2]) == 1 then
    redis.call('RPUSH', KEYS[hosts0 + (h - 1) * 3 + 1], ARGV[j + 3])
    added = added + 1
    if not touched[h] then touched[h] = true; order[#order + 1] = h end
  end
end
for _, h in ipairs(order) do
  local base = hosts0 + (h - 1) * 3
  rescore(ARGV[5 + h], KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[2], KEYS[3], per_host, delay)
end
if added > 0 then
  redis.call('HINCRBY', KEYS[1], 'seen', added)
  redis.call('HINCRBY', KEYS[1], 'queued', added)
  if redis.call('HGET', KEYS[1], 'state') == 'done' then redis.call('HSET', KEYS[1], 'state', 'running') end
end
return added
"""

# KEYS meta, seen bucket, records, done_by; ARGV fp, page, error code, worker.
_SETTLE = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[3], '*', 'fp', ARGV[1], 'worker', ARGV[4], 'page', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'seen', 1)
redis.call('HINCRBY', KEYS[1], 'done', 1)
redis.call('HINCRBY', KEYS[4], ARGV[3], 1)
return 1
"""

# KEYS ready, leased, owner, tok, workers; ARGV now, lease_ms, worker, n.
_LEASE_SLOTS = """
local now = now_ms()
local out = {}
local n = tonumber(ARGV[4])
if n > 0 then
  for _, slot in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, n)) do
    redis.call('ZREM', KEYS[1], slot)
    local token = redis.call('INCR', KEYS[4])
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), slot)
    redis.call('HSET', KEYS[3], slot, cjson.encode({w = ARGV[3], t = token, n = 0}))
    out[#out + 1] = slot
    out[#out + 1] = token
  end
end
redis.call('ZADD', KEYS[5], now, ARGV[3])
return {out, next_wait(KEYS[1], KEYS[2], now)}
"""

# KEYS meta, ready, leased, owner, then per host: q, retry, cfg, inflight.
# ARGV now, lease_ms, per_host, delay_ms, urls_per_lease, limit, then per slot: slot, token, host, kind
# (kind 'h': held idle before this call, kept if the limit is reached; 'n': leased for this call).
_TAKE = """
local now = now_ms()
local lease_ms, per_host, delay = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local k_max, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
local given, out = 0, {}
for j = 7, #ARGV, 4 do
  local slot, token, kind = ARGV[j], tonumber(ARGV[j + 1]), ARGV[j + 3]
  local base = 4 + (tonumber(ARGV[j + 2]) - 1) * 4
  local q, d, cfg, inflight = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4]
  local host, idx = string.match(slot, '^(.*)#(%d+)$')
  local o = owner_of(KEYS[4], slot)
  if not o or o.t ~= token then
    out[#out + 1] = 'STALE'
  elseif o.fp then
    out[#out + 1] = 'BUSY'
  elseif given >= limit and kind == 'h' then
    out[#out + 1] = 'SKIP'
  else
    local waiting = redis.call('ZRANGEBYSCORE', d, '-inf', now)
    for _, rec in ipairs(waiting) do redis.call('LPUSH', q, rec) end
    if #waiting > 0 then redis.call('ZREMRANGEBYSCORE', d, '-inf', now) end
    if given >= limit or o.n >= k_max or redis.call('LLEN', q) == 0 or host_due(cfg, delay) > now then
      free_slot(slot, host, q, d, cfg, KEYS[2], KEYS[3], KEYS[4], per_host, delay)
      out[#out + 1] = 'FREED'
    else
      local rec = redis.call('LPOP', q)
      local fp = cjson.decode(rec).fp
      redis.call('HSET', inflight, fp, idx .. '|' .. token .. '|' .. rec)
      o.fp = fp
      o.n = o.n + 1
      redis.call('HSET', KEYS[4], slot, cjson.encode(o))
      redis.call('ZADD', KEYS[3], now + lease_ms, slot)
      redis.call('HSET', cfg, 'last_start_ms', now)
      redis.call('HINCRBY', KEYS[1], 'queued', -1)
      redis.call('HINCRBY', KEYS[1], 'leased', 1)
      rescore(host, q, d, cfg, KEYS[2], KEYS[3], per_host, delay)
      given = given + 1
      out[#out + 1] = rec
    end
  end
end
return {out, next_wait(KEYS[2], KEYS[3], now)}
"""

# KEYS meta, ready, leased, owner, q, retry, cfg, inflight, records, done_by, acks.
# ARGV now, lease_ms, per_host, delay_ms, urls_per_lease, host, fp, token, mode (ack/retry/release),
# payload (ack: page JSON; retry: the record with attempts+1), extra (ack: error code; retry: delay ms),
# worker.
_END = """
local now = now_ms()
local lease_ms, per_host = tonumber(ARGV[2]), tonumber(ARGV[3])
local delay, k_max = tonumber(ARGV[4]), tonumber(ARGV[5])
local host, fp, token, mode = ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9]
local q, d, cfg, inflight = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local ack_id = ARGV[8] .. ':' .. fp
local v = redis.call('HGET', inflight, fp)
if not v then
  if mode == 'ack' and redis.call('ZSCORE', KEYS[11], ack_id) then return {'ALREADY'} end
  return {'STALE'}
end
local idx, t, rec = string.match(v, '^(%d+)|(%d+)|(.*)$')
local slot = host .. '#' .. idx
local o = owner_of(KEYS[4], slot)
if tonumber(t) ~= token or not o or o.t ~= token then return {'STALE'} end
redis.call('HDEL', inflight, fp)
redis.call('HINCRBY', KEYS[1], 'leased', -1)
if mode == 'ack' then
  redis.call('XADD', KEYS[9], '*', 'fp', fp, 'worker', ARGV[12], 'page', ARGV[10])
  redis.call('HINCRBY', KEYS[1], 'done', 1)
  redis.call('HINCRBY', KEYS[10], ARGV[11], 1)
  redis.call('ZADD', KEYS[11], now, ack_id)
  redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', now - 2 * lease_ms)
elseif mode == 'retry' then
  redis.call('ZADD', d, now + tonumber(ARGV[11]), ARGV[10])
  redis.call('HINCRBY', KEYS[1], 'queued', 1)
else
  redis.call('LPUSH', q, rec)
  redis.call('HINCRBY', KEYS[1], 'queued', 1)
end
o.fp = nil
if o.n < k_max and redis.call('LLEN', q) > 0 and host_due(cfg, delay) <= now then
  redis.call('HSET', KEYS[4], slot, cjson.encode(o))
  redis.call('ZADD', KEYS[3], now + lease_ms, slot)
  rescore(host, q, d, cfg, KEYS[2], KEYS[3], per_host, delay)
  return {'KEPT', slot}
end
free_slot(slot, host, q, d, cfg, KEYS[2], KEYS[3], KEYS[4], per_host, delay)
return {'FREED', slot}
"""

# KEYS leased, owner, workers; ARGV now, lease_ms, worker, then slot, token pairs. Returns lost slots.
_EXTEND = """
local now = now_ms()
local lost = {}
for j = 4, #ARGV, 2 do
  local o = owner_of(KEYS[2], ARGV[j])
  if o and o.t == tonumber(ARGV[j + 1]) then
    redis.call('ZADD', KEYS[1], 'XX', 'GT', now + tonumber(ARGV[2]), ARGV[j])
  else
    lost[#lost + 1] = ARGV[j]
  end
end
redis.call('ZADD', KEYS[3], now, ARGV[3])
return lost
"""

# KEYS leased; ARGV now, n. Read-only: the first step of a reap.
_EXPIRED = """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[2]))
"""

# KEYS meta, ready, leased, owner, then per host: q, retry, cfg, inflight.
# ARGV now, per_host, delay_ms, mode, worker, then per slot: slot, token, host index. Modes:
# 'expired' (reaper: deadline re-checked, attempt charged), 'release' (aclose: token checked, no
# charge), 'mine' (start-up: owned by this worker id, attempt charged). Returns URLs requeued.
_RECLAIM = """
local now = now_ms()
local per_host, delay, mode = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local moved = 0
for j = 6, #ARGV, 3 do
  local slot = ARGV[j]
  local base = 4 + (tonumber(ARGV[j + 2]) - 1) * 4
  local q, d, cfg, inflight = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4]
  local host = string.match(slot, '^(.*)#%d+$')
  local o = owner_of(KEYS[4], slot)
  local ok
  if mode == 'expired' then
    local deadline = redis.call('ZSCORE', KEYS[3], slot)
    ok = deadline and tonumber(deadline) <= now
  elseif mode == 'release' then
    ok = o and o.t == tonumber(ARGV[j + 1])
  else
    ok = o and o.w == ARGV[5]
  end
  if ok then
    if o and o.fp then
      local v = redis.call('HGET', inflight, o.fp)
      if v then
        local rec = string.match(v, '^%d+|%d+|(.*)$')
        if mode ~= 'release' then
          local r = cjson.decode(rec)
          r.attempts = r.attempts + 1
          rec = cjson.encode(r)
        end
        redis.call('HDEL', inflight, o.fp)
        redis.call('LPUSH', q, rec)
        redis.call('HINCRBY', KEYS[1], 'leased', -1)
        redis.call('HINCRBY', KEYS[1], 'queued', 1)
        moved = moved + 1
      end
    end
    free_slot(slot, host, q, d, cfg, KEYS[2], KEYS[3], KEYS[4], per_host, delay)
  end
end
return moved
"""

# KEYS ready, leased, q, retry, cfg; ARGV now, per_host, delay_ms, host, new delay ms or '',
# blocked-for ms or ''.
_PACE = """
local now = now_ms()
if ARGV[5] ~= '' then redis.call('HSET', KEYS[5], 'delay_ms', ARGV[5]) end
if ARGV[6] ~= '' then
  local blocked = now + tonumber(ARGV[6])
  local old = redis.call('HGET', KEYS[5], 'blocked_until_ms')
  if not old or tonumber(old) < blocked then redis.call('HSET', KEYS[5], 'blocked_until_ms', blocked) end
end
rescore(ARGV[4], KEYS[3], KEYS[4], KEYS[5], KEYS[1], KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]))
return 1
"""

# KEYS meta; ARGV now. The finished predicate, and running → done (compare-and-set) when it holds.
_IS_DONE = """
local v = redis.call('HMGET', KEYS[1], 'queued', 'leased', 'state')
if tonumber(v[1] or '0') ~= 0 or tonumber(v[2] or '0') ~= 0 then return 0 end
if v[3] == 'running' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'done_ms', now_ms())
end
return 1
"""


class _Keys:
    """Key names of one crawl; all share the hash tag `{crawl_id}`."""

    def __init__(self, crawl_id: str) -> None:
        self.prefix = prefix = f"crawlpool:{{{crawl_id}}}:"
        self.meta = prefix + "meta"
        self.tok = prefix + "tok"
        self.ready = prefix + "h:ready"
        self.leased = prefix + "h:leased"
        self.owner = prefix + "h:owner"
        self.workers = prefix + "workers"
        self.records = prefix + "records"
        self.done_by = prefix + "done_by"
        self.acks = prefix + "acks"

    def seen(self, bucket: int) -> str:
        return f"{self.prefix}seen:{bucket}"

    def host(self, host: str) -> list[str]:
        """q, retry, cfg and inflight of `host`, in the order the scripts take them."""
        p = self.prefix
        return [f"{p}q:{host}", f"{p}retry:{host}", f"{p}host:{host}", f"{p}inflight:{host}"]


class _Scripts:
    def __init__(self, client: aioredis.Redis) -> None:
        def register(body: str) -> AsyncScript:
            return client.register_script(_LUA_PRELUDE + body)

        self.init = register(_INIT)
        self.add = register(_ADD)
        self.lease_slots = register(_LEASE_SLOTS)
        self.take = register(_TAKE)
        self.end = register(_END)
        self.extend = register(_EXTEND)
        self.expired = register(_EXPIRED)
        self.reclaim = register(_RECLAIM)
        self.pace = register(_PACE)
        self.is_done = register(_IS_DONE)
        self.settle = register(_SETTLE)


def _encode(request: Request) -> str:
    return json.dumps(
        {
            "url": request.url,
            "fp": str(request.fp),
            "host": request.host,
            "depth": request.depth,
            "referrer": request.referrer,
            "attempts": request.attempts,
            "hops": request.hops,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _decode(record: str) -> Request:
    data = json.loads(record)
    return Request(
        data["url"],
        int(data["fp"]),
        data["host"],
        data["depth"],
        data["referrer"],
        data["attempts"],
        data.get("hops", 0),
    )


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + netloc).geturl()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _slot_host(slot: str) -> str:
    return slot.rpartition("#")[0]


class RedisFrontier:
    """A Frontier shared through Redis by every worker of one crawl; see the module docstring.

    Open it with `await RedisFrontier.open(...)` and end it with `aclose()`. Beyond the protocol it
    offers `is_done`, `heartbeat` and `reap` (the last two also run in the background).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        url: str,
        crawl_id: str,
        worker_id: str,
        per_host: int,
        delay_ms: int,
        seen_bits: int,
        lease_ms: int,
        urls_per_lease: int,
        clock: Callable[[], float] | None,
    ) -> None:
        self._client = client
        self._scripts = _Scripts(client)
        self._url = _safe_url(url)
        self._keys = _Keys(crawl_id)
        self.crawl_id = crawl_id
        self.worker_id = worker_id
        self._per_host = per_host
        self._delay_ms = delay_ms
        self._seen_bits = seen_bits
        self._lease_ms = lease_ms
        self._urls_per_lease = urls_per_lease
        self._clock = clock
        self._held: dict[str, int] = {}  # slot → token of every slot this worker leases
        # slot → monotonic time just before the last call that pushed its lease deadline forward
        self._fresh: dict[str, float] = {}
        self._idle: dict[str, None] = {}  # held slots with no URL out: served first by lease()
        self._ambiguous: set[tuple[int, int]] = set()  # (token, fp) of acks whose reply was lost
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    @classmethod
    async def open(
        cls,
        url: str,
        crawl_id: str,
        politeness: Politeness,
        *,
        worker_id: str | None = None,
        lease_ms: int = 60_000,
        urls_per_lease: int = 10,
        clock: Callable[[], float] | None = None,
        seen_bucket_bits: int = 14,
        observe: bool = False,
    ) -> RedisFrontier:
        """Join crawl `crawl_id` in the Redis at `url` (redis:// or rediss://), creating it if new.

        The crawl's politeness and `seen_bucket_bits` are fixed by the first worker that opens it;
        later workers use the stored values (a different `politeness` is logged and ignored).
        `worker_id` defaults to hostname:pid; give a stable one (machine + process slot) so that a
        restarted worker reclaims its old leases at once instead of after their expiry.
        `clock` (seconds) replaces Redis TIME — for tests only; every worker must then share it.
        `observe=True` opens an existing crawl only to read it (`crawlpool status`): no crawl is created,
        and no heartbeat or reaper runs, so the observer never appears as a worker.
        Raises FrontierError when Redis cannot be reached or is older than 6.2.
        """
        if not crawl_id or any(c in crawl_id for c in "{}"):
            raise ConfigError(f"redis frontier: crawl id {crawl_id!r} must be non-empty, without braces")
        if politeness.per_host < 1 or lease_ms < 1 or urls_per_lease < 1:
            raise ConfigError("redis frontier: per_host, lease_ms and urls_per_lease must be at least 1")
        if not 0 <= seen_bucket_bits <= 24:
            raise ConfigError("redis frontier: seen_bucket_bits must be between 0 and 24")
        safe = _safe_url(url)
        try:
            client = aioredis.from_url(
                url,
                decode_responses=True,
                retry=Retry(NoBackoff(), 0),  # see the module docstring: a lost reply is not resent
                socket_connect_timeout=10,
                socket_timeout=30,  # a silent network turns into FrontierError, not a hang
            )
        except ValueError as exc:
            raise ConfigError(f"redis frontier: bad URL {safe}: {exc}") from None
        try:
            info = await client.info("server")
            version = tuple(int(part) for part in str(info["redis_version"]).split(".")[:2])
            if version < MIN_SERVER_VERSION:
                raise FrontierError(
                    f"redis frontier: {safe} runs Redis {info['redis_version']}; 6.2 or later is needed"
                )
            keys = _Keys(crawl_id)
            if observe and not await client.exists(keys.meta):
                raise FrontierError(f"redis frontier: {safe} holds no crawl {crawl_id!r}")
            now = "" if clock is None else str(round(clock() * 1000))
            init = client.register_script(_LUA_PRELUDE + _INIT)
            delay_ms = round(politeness.delay_s * 1000)
            stored = await init(
                keys=[keys.meta], args=[now, SCHEMA, politeness.per_host, delay_ms, seen_bucket_bits]
            )
        except (RedisError, OSError) as exc:
            await client.aclose()
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise FrontierError(f"redis frontier: cannot use {safe}: {reason}") from None
        except FrontierError:
            await client.aclose()
            raise
        schema, per_host, stored_delay_ms, seen_bits = (int(v) for v in stored)
        if schema != SCHEMA:
            await client.aclose()
            raise FrontierError(f"redis frontier: crawl {crawl_id!r} has schema {schema}, expected {SCHEMA}")
        if (per_host, stored_delay_ms) != (politeness.per_host, delay_ms):
            log.warning(
                "crawl %s keeps the politeness it was created with: per_host=%d delay_s=%g",
                crawl_id,
                per_host,
                stored_delay_ms / 1000,
            )
        frontier = cls(
            client,
            url=url,
            crawl_id=crawl_id,
            worker_id=worker_id or f"{socket.gethostname()}:{os.getpid()}",
            per_host=per_host,
            delay_ms=stored_delay_ms,
            seen_bits=seen_bits,
            lease_ms=lease_ms,
            urls_per_lease=urls_per_lease,
            clock=clock,
        )
        try:
            if worker_id is not None:
                await frontier._reclaim_mine()
        except FrontierError:
            await client.aclose()
            raise
        if not observe:
            frontier._start_background()
        return frontier

    # -- the protocol -------------------------------------------------------------------------------

    async def add(self, requests: Sequence[Request]) -> int:
        """Queue each request whose fingerprint was never seen in this crawl (by any worker); return
        how many were new. Each chunk of 500 is one atomic step, and add is idempotent."""
        added = 0
        for start in range(0, len(requests), _ADD_CHUNK):
            added += await self._add_chunk(requests[start : start + _ADD_CHUNK])
        return added

    async def lease(self, limit: int) -> LeaseBatch:
        """Up to `limit` URLs whose host may be hit now. `wait_s` is None only when nothing can come
        due by waiting and no other worker holds a slot (their lease endings are not seen here)."""
        leases: list[Lease] = []
        wait_ms, leased_slots = -1, 0
        for _ in range(_LEASE_ROUNDS):
            want = limit - len(leases)
            held = self._claim_idle(want)
            new: list[tuple[str, int]] = []
            if want > len(held) or not held:
                new, (wait_ms, leased_slots) = await self._lease_slots(max(0, want - len(held)))
            if not held and not new:
                break
            taken, (wait_ms, leased_slots) = await self._take(held, new, want)
            leases.extend(taken)
            if len(leases) >= limit or wait_ms != 0:
                break
        return LeaseBatch(leases, self._wait_s(wait_ms, leased_slots))

    async def ack(self, lease: Lease, page: Page) -> bool:
        """Commit `page` as the URL's record. False: the lease was not current and nothing was
        committed (the slot was reaped from this worker, or the lease had already ended)."""
        return await self._end(lease, "ack", page.to_json(), page.error_code or "ok")

    async def retry(self, lease: Lease, delay_s: float) -> bool:
        """Queue the URL again with one more attempt, due `delay_s` from now. False: not current."""
        again = replace(lease.request, attempts=lease.request.attempts + 1)
        return await self._end(lease, "retry", _encode(again), str(max(0, round(delay_s * 1000))))

    async def release(self, lease: Lease) -> bool:
        """Put the URL back at the front of its host's queue, untried. False: not current."""
        return await self._end(lease, "release", "", "")

    async def settle(self, request: Request, page: Page) -> bool:
        """Record a URL that will never be fetched, unless some worker already saw it (one script)."""
        keys = self._keys
        shift = 64 - self._seen_bits
        bucket = (request.fp & 0xFFFF_FFFF_FFFF_FFFF) >> shift if self._seen_bits else 0
        args: list[str | int] = [str(request.fp), page.to_json(), page.error_code or "ok", self.worker_id]
        script_keys = [keys.meta, keys.seen(bucket), keys.records, keys.done_by]
        return bool(await self._run(self._scripts.settle, script_keys, args))

    async def pace_host(
        self, host: str, *, delay_s: float | None = None, blocked_for_s: float | None = None
    ) -> None:
        """Change the host's delay / block it for a while, for every worker of the crawl."""
        delay = "" if delay_s is None else str(max(0, round(delay_s * 1000)))
        blocked = "" if blocked_for_s is None else str(max(0, round(blocked_for_s * 1000)))
        keys = self._keys
        q, d, cfg, _ = keys.host(host)
        await self._run(
            self._scripts.pace,
            [keys.ready, keys.leased, q, d, cfg],
            [self._now(), self._per_host, self._delay_ms, host, delay, blocked],
        )

    async def counts(self) -> FrontierCounts:
        """The crawl's numbers across all workers; `queued` includes retries waiting for their time."""
        seen, queued, leased, done = await self._call(
            self._client.hmget(self._keys.meta, ["seen", "queued", "leased", "done"])
        )
        return FrontierCounts(int(seen or 0), int(queued or 0), int(leased or 0), int(done or 0))

    async def aclose(self, *, release: bool = True) -> None:
        """Stop the heartbeat and the reaper, give this worker's slots back (URLs still out go back
        to the front of their queue, uncharged) and close the client. `release=False` leaves the
        slots to expire and be reaped, as after a crash (for tests and drills)."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            if release:
                if self._held:
                    await self._reclaim(list(self._held.items()), "release")
                await self._call(self._client.zrem(self._keys.workers, self.worker_id))
        except FrontierError as exc:
            log.warning("could not give back the leases of worker %s: %s", self.worker_id, exc)
        finally:
            self._held.clear()
            self._idle.clear()
            await self._client.aclose()

    # -- beyond the protocol ------------------------------------------------------------------------

    async def is_done(self) -> bool:
        """True when nothing is queued and no URL is leased by any worker; the first caller to see it
        moves the crawl's state from running to done. Adding a new URL later makes it running again."""
        return bool(await self._run(self._scripts.is_done, [self._keys.meta], [self._now()]))

    async def get_meta(self, key: str) -> str | None:
        """The crawl's value under `key` (field `m:<key>` of its meta hash), or None."""
        value: str | None = await self._call(self._client.hget(self._keys.meta, _META + key))
        return value

    async def set_meta(self, key: str, value: str) -> None:
        await self._call(self._client.hset(self._keys.meta, _META + key, value))

    async def claim_meta(self, key: str, value: str) -> str | None:
        """Set `key` unless some worker did (HSETNX); the value, once there, is never replaced by a
        claim, so reading it after a lost race returns the winner's."""
        if await self._call(self._client.hsetnx(self._keys.meta, _META + key, value)):
            return None
        held: str | None = await self._call(self._client.hget(self._keys.meta, _META + key))
        return held

    async def committed_pages(self) -> AsyncIterator[Page]:
        """The records this worker (its worker id) committed, in commit order, from the `records`
        stream; read in batches, so the whole stream is never held at once."""
        after = "-"
        while True:
            entries: list[tuple[str, dict[str, str]]] = await self._call(
                self._client.xrange(self._keys.records, min=after, max="+", count=_RECORDS_BATCH)
            )
            for _, fields in entries:
                if fields.get("worker") == self.worker_id:
                    yield Page.from_dict(json.loads(fields["page"]))
            if len(entries) < _RECORDS_BATCH:
                return
            after = "(" + entries[-1][0]

    async def status(self) -> FrontierStatus:
        """Counts across all workers, failures by error code, the politeness, and the workers alive or
        holding slots, with their slots, URLs in flight and seconds since their last heartbeat. The crawl
        is running while a worker's heartbeat is fresh (within a default lease), stopped otherwise."""
        keys = self._keys
        meta: dict[str, str] = await self._call(self._client.hgetall(keys.meta))
        done_by: dict[str, str] = await self._call(self._client.hgetall(keys.done_by))
        owners: dict[str, str] = await self._call(self._client.hgetall(keys.owner))
        beats: list[tuple[str, float]] = await self._call(
            self._client.zrange(keys.workers, 0, -1, withscores=True)
        )
        if self._clock is None:
            seconds, micros = await self._call(self._client.time())
            now_ms = seconds * 1000 + micros // 1000
        else:
            now_ms = round(self._clock() * 1000)
        age_s = {worker: max(0.0, (now_ms - beat) / 1000) for worker, beat in beats}
        slots: Counter[str] = Counter()
        in_flight: Counter[str] = Counter()
        for raw in owners.values():
            owner = json.loads(raw)
            slots[owner["w"]] += 1
            in_flight[owner["w"]] += "fp" in owner
        alive = {worker for worker, age in age_s.items() if age <= _ALIVE_S}
        workers = tuple(
            WorkerStatus(worker, slots[worker], in_flight[worker], age_s.get(worker))
            for worker in sorted(set(slots) | alive)
        )
        counts = {name: int(meta.get(name, 0)) for name in ("seen", "queued", "leased", "done")}
        state: CrawlState = "running" if alive else "stopped"
        if meta.get("state") == "done" or (counts["queued"] == 0 and counts["leased"] == 0):
            state = "finished"
        started = meta.get(_META + "started")
        if started is None and "created_ms" in meta:
            started = _iso(int(meta["created_ms"]))
        return FrontierStatus(
            state=state,
            done=counts["done"],
            seen=counts["seen"],
            queued=counts["queued"],
            in_flight=counts["leased"],
            failures={code: int(n) for code, n in sorted(done_by.items()) if code != "ok"},
            started=started,
            updated=meta.get(_META + "updated"),
            crawl_id=self.crawl_id,
            politeness=Politeness(
                int(meta.get("per_host", self._per_host)), int(meta.get("delay_ms", self._delay_ms)) / 1000
            ),
            workers=workers,
        )

    def is_current(self, lease: Lease) -> bool:
        """False when this worker cannot be sure it still holds the lease's host slot: it was lost, or
        no call has pushed its deadline forward for most of a lease period (the process was paused,
        e.g. SIGSTOP or a long GC). The request must not be sent then: another worker may hold the
        host by now, and a stale request would break the host's politeness."""
        for slot, token in self._held.items():
            if token == lease.token and _slot_host(slot) == lease.request.host:
                age_s = time.monotonic() - self._fresh.get(slot, float("-inf"))
                return age_s < self._lease_ms / 1000 * _FRESH_FRACTION
        return False

    async def heartbeat(self) -> list[str]:
        """Extend every slot this worker holds; return the slots it lost (reaped while it paused),
        which it forgets: their URLs' acks will return False. Runs every lease_ms/3 in the background."""
        pairs = list(self._held.items())
        args: list[str | int] = [self._now(), self._lease_ms, self.worker_id]
        for slot, token in pairs:
            args += [slot, token]
        keys = self._keys
        sent_at = time.monotonic()
        lost: list[str] = await self._run(self._scripts.extend, [keys.leased, keys.owner, keys.workers], args)
        self._fresh.update((slot, sent_at) for slot, _ in pairs)
        tokens = dict(pairs)
        for slot in lost:
            self._forget(slot, tokens[slot])
        if lost:
            log.warning("worker %s lost %d host slot(s) to the reaper", self.worker_id, len(lost))
        return lost

    async def reap(self) -> int:
        """Requeue the URLs of slots whose lease expired (any worker's) and free those slots; return
        how many URLs were requeued. Safe to race with other reapers. Runs in the background."""
        expired: list[str] = await self._run(
            self._scripts.expired, [self._keys.leased], [self._now(), _REAP_BATCH]
        )
        if not expired:
            return 0
        moved = await self._reclaim([(slot, 0) for slot in expired], "expired")
        if moved:
            log.info("requeued %d URL(s) from %d expired host slot(s)", moved, len(expired))
        return moved

    # -- internals ----------------------------------------------------------------------------------

    def _now(self) -> str:
        return "" if self._clock is None else str(round(self._clock() * 1000))

    def _error(self, exc: RedisError) -> FrontierError:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return FrontierError(f"redis frontier at {self._url}: {reason}")

    async def _run(
        self,
        script: AsyncScript,
        keys: list[str],
        args: list[str | int],
        on_retry: Callable[[], None] | None = None,
    ) -> Any:
        return await self._with_retries(lambda: script(keys=keys, args=args), on_retry)

    async def _call(self, pending: Any) -> Any:
        try:
            return await pending
        except RedisError as exc:
            raise self._error(exc) from exc

    async def _with_retries(
        self, attempt: Callable[[], Awaitable[Any]], on_retry: Callable[[], None] | None = None
    ) -> Any:
        """Run `attempt`, riding out a lost connection for up to OUTAGE_S with exponential backoff.

        Running a script again after a lost reply is safe: add is idempotent, an ack that had committed
        answers ALREADY, and slots leased by a lost reply simply expire and are reaped. Past the bound,
        FrontierError stops this worker; the crawl's state stays in Redis for the next run to rejoin."""
        waited_s, pause_s = 0.0, 0.1
        while True:
            try:
                return await attempt()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if waited_s >= OUTAGE_S:
                    raise FrontierError(
                        f"redis frontier: lost {self._url} for {OUTAGE_S:g} s ({exc}); this worker stops, "
                        "the crawl's state stays in Redis: run the same command with --resume to rejoin it"
                    ) from exc
                log.warning("redis at %s unreachable (%s); retrying in %.1f s", self._url, exc, pause_s)
                if on_retry is not None:
                    on_retry()
                await asyncio.sleep(pause_s)  # backing off from a failing server, not waiting for an event
                waited_s += pause_s
                pause_s = min(pause_s * 2, 5.0)
            except RedisError as exc:
                raise self._error(exc) from exc

    async def _add_chunk(self, requests: Sequence[Request]) -> int:
        keys = self._keys
        shift = 64 - self._seen_bits
        buckets: dict[int, int] = {}
        hosts: dict[str, int] = {}
        quads: list[str | int] = []
        for request in requests:
            bucket = (request.fp & 0xFFFF_FFFF_FFFF_FFFF) >> shift if self._seen_bits else 0
            b = buckets.setdefault(bucket, len(buckets) + 1)
            h = hosts.setdefault(request.host, len(hosts) + 1)
            quads += [b, h, str(request.fp), _encode(request)]
        if not quads:
            return 0
        script_keys = [keys.meta, keys.ready, keys.leased, *(keys.seen(b) for b in buckets)]
        for host in hosts:
            script_keys += keys.host(host)[:3]
        args: list[str | int] = [self._now(), self._per_host, self._delay_ms, len(buckets), len(hosts)]
        args += list(hosts)
        args += quads
        return int(await self._run(self._scripts.add, script_keys, args))

    def _claim_idle(self, n: int) -> list[tuple[str, int]]:
        """Up to n held idle slots, taken out of the idle set before any await so that two
        concurrent lease() calls never serve the same slot."""
        claimed: list[tuple[str, int]] = []
        while self._idle and len(claimed) < n:
            slot = next(iter(self._idle))
            del self._idle[slot]
            claimed.append((slot, self._held[slot]))
        return claimed

    async def _lease_slots(self, n: int) -> tuple[list[tuple[str, int]], tuple[int, int]]:
        keys = self._keys
        sent_at = time.monotonic()
        pairs, (wait_ms, leased_slots) = await self._run(
            self._scripts.lease_slots,
            [keys.ready, keys.leased, keys.owner, keys.tok, keys.workers],
            [self._now(), self._lease_ms, self.worker_id, n],
        )
        slots = [(str(pairs[i]), int(pairs[i + 1])) for i in range(0, len(pairs), 2)]
        self._held.update(slots)
        self._fresh.update((slot, sent_at) for slot, _ in slots)
        return slots, (int(wait_ms), int(leased_slots))

    async def _take(
        self, held: list[tuple[str, int]], new: list[tuple[str, int]], limit: int
    ) -> tuple[list[Lease], tuple[int, int]]:
        keys = self._keys
        slots = [(slot, token, "h") for slot, token in held] + [(slot, token, "n") for slot, token in new]
        script_keys = [keys.meta, keys.ready, keys.leased, keys.owner]
        hosts: dict[str, int] = {}
        args: list[str | int] = [
            self._now(),
            self._lease_ms,
            self._per_host,
            self._delay_ms,
            self._urls_per_lease,
            max(0, limit),
        ]
        for slot, token, kind in slots:
            host = _slot_host(slot)
            if host not in hosts:
                hosts[host] = len(hosts) + 1
                script_keys += keys.host(host)
            args += [slot, token, hosts[host], kind]
        sent_at = time.monotonic()
        try:
            results, (wait_ms, leased_slots) = await self._run(self._scripts.take, script_keys, args)
        except FrontierError:
            # Whether the take ran is unknown: stop extending these slots, so that any URL it took
            # comes back through the reaper instead of staying leased to no one.
            for slot, token, _ in slots:
                self._forget(slot, token)
            raise
        self._fresh.update((slot, sent_at) for slot, _, _ in slots)
        leases: list[Lease] = []
        for (slot, token, _), result in zip(slots, results, strict=True):
            if result == "SKIP":
                self._idle[slot] = None
            elif result in ("FREED", "STALE"):
                self._forget(slot, token)
            elif result != "BUSY":
                leases.append(Lease(_decode(result), token))
        return leases, (int(wait_ms), int(leased_slots))

    def _wait_s(self, wait_ms: int, leased_slots: int) -> float | None:
        if self._idle:
            return 0.0  # held slots whose next URL may start now
        wait_s = None if wait_ms < 0 else wait_ms / 1000
        if leased_slots > len(self._held):
            # Other workers hold slots: their URLs may end, or add links, at any time.
            return _POLL_S if wait_s is None else min(wait_s, _POLL_S)
        return wait_s

    async def _end(self, lease: Lease, mode: str, payload: str, extra: str) -> bool:
        keys = self._keys
        request = lease.request
        script_keys = [
            keys.meta,
            keys.ready,
            keys.leased,
            keys.owner,
            *keys.host(request.host),
            keys.records,
            keys.done_by,
            keys.acks,
        ]
        args: list[str | int] = [
            self._now(),
            self._lease_ms,
            self._per_host,
            self._delay_ms,
            self._urls_per_lease,
            request.host,
            str(request.fp),
            lease.token,
            mode,
            payload,
            extra,
            self.worker_id,
        ]
        attempt = (lease.token, request.fp)

        def lost_a_reply() -> None:
            # The script may have run: an ALREADY from the next try then means this very ack committed.
            if mode == "ack":
                self._ambiguous.add(attempt)
            for slot, token in list(self._held.items()):
                if token == lease.token:
                    self._forget(slot, token)

        try:
            reply = await self._run(self._scripts.end, script_keys, args, lost_a_reply)
        except FrontierError:
            if mode == "ack":
                if len(self._ambiguous) > 10_000:
                    self._ambiguous.clear()
                self._ambiguous.add(attempt)
            # The slot's state is unknown: stop extending it; a later end that succeeds adopts it again.
            for slot, token in list(self._held.items()):
                if token == lease.token:
                    self._forget(slot, token)
            raise
        status = reply[0]
        if status == "ALREADY":
            if attempt in self._ambiguous:
                self._ambiguous.discard(attempt)
                return True  # the earlier call, whose reply was lost, committed this very ack
            return False
        if status == "STALE":
            return False
        self._ambiguous.discard(attempt)
        slot = str(reply[1])
        if status == "KEPT":
            self._held[slot] = lease.token
            self._idle[slot] = None
        else:
            self._forget(slot, lease.token)
        return True

    def _forget(self, slot: str, token: int) -> None:
        if self._held.get(slot) == token:
            del self._held[slot]
            self._idle.pop(slot, None)

    async def _reclaim(self, slots: list[tuple[str, int]], mode: str) -> int:
        keys = self._keys
        script_keys = [keys.meta, keys.ready, keys.leased, keys.owner]
        hosts: dict[str, int] = {}
        args: list[str | int] = [self._now(), self._per_host, self._delay_ms, mode, self.worker_id]
        for slot, token in slots:
            host = _slot_host(slot)
            if host not in hosts:
                hosts[host] = len(hosts) + 1
                script_keys += keys.host(host)
            args += [slot, token, hosts[host]]
        moved = int(await self._run(self._scripts.reclaim, script_keys, args))
        for slot, token in slots:
            if mode == "release":
                self._forget(slot, token)
        return moved

    async def _reclaim_mine(self) -> None:
        """At start-up, take back at once the slots an earlier process with this worker id held."""
        owners: dict[str, str] = await self._call(self._client.hgetall(self._keys.owner))
        mine = [(slot, 0) for slot, raw in owners.items() if json.loads(raw).get("w") == self.worker_id]
        if mine:
            moved = await self._reclaim(mine, "mine")
            log.info(
                "worker %s reclaimed %d slot(s) and %d URL(s) of its last run",
                self.worker_id,
                len(mine),
                moved,
            )

    def _start_background(self) -> None:
        heartbeat_s = self._lease_ms / 3000
        reap_s = min(5.0, self._lease_ms / 2000)
        for name, interval_s, step in (
            ("heartbeat", heartbeat_s, self.heartbeat),
            ("reaper", reap_s, self.reap),
        ):
            task = asyncio.get_running_loop().create_task(
                self._every(interval_s, step), name=f"crawlpool-redis-{name}"
            )
            task.add_done_callback(self._log_crash)
            self._tasks.append(task)

    async def _every(self, interval_s: float, step: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await step()
            except FrontierError as exc:
                log.warning("%s", exc)  # the next round tries again; the engine sees errors itself

    @staticmethod
    def _log_crash(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s stopped", task.get_name(), exc_info=task.exception())

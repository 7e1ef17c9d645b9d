"""Key names of one crawl in Redis and slot names (how the frontier uses them: frontier/redis.py).

Key schema. The keys of a crawl of one bucket all sit under one hash tag, `crawlpool:{C}:` (C = crawl
id); a crawl of several buckets splits them as "Buckets" below says. Either way every script touches
the keys of one tag, so one Cluster slot; per-host key names are built in Python and passed in KEYS.

| key               | type   | contents                                                                     |
|-------------------|--------|------------------------------------------------------------------------------|
| `meta`            | HASH   | schema, per_host, delay_ms, seen_bits, created_ms, state (running/done),     |
|                   |        | counters seen, queued (incl. waiting retries), leased (URLs in flight); done |
|                   |        | is seen - queued - leased (a crawl from before kept a `done` field: unused)  |
|                   |        | and `m:<key>` for `set_meta(key)` (m:crawl: seeds, scope and filters, JSON)  |
| `tok`             | STRING | fencing-token counter, INCR only                                             |
| `seen:<b>`        | SET    | seen fingerprints as signed decimal int64 (so the set is an intset);         |
|                   |        | bucket b = the top `seen_bits` bits of the unsigned fingerprint              |
| `q:<host>`        | LIST   | the host's queued URL records (JSON), handed out from the left               |
| `retry:<host>`    | ZSET   | record → due ms: retries waiting; moved to the front of q when due           |
| `host:<host>`     | HASH   | last_start_ms, pace (the host's HostPace, JSON), delay_ms (its delay),       |
|                   |        | blocked_until_ms (0: over): set by pace.lua or by an ack's answer;           |
|                   |        | retries: how many wait in retry:<host> (an ack skips the look when 0)        |
| `inflight:<host>` | HASH   | fp → `<slot index>|<token>|<record>` for each URL handed out                 |
| `h:ready`         | ZSET   | free slot `<host>#<i>` → earliest ms its next URL may start                  |
| `h:leased`        | ZSET   | leased slot → lease deadline ms                                              |
| `h:paced`         | ZSET   | host → blocked_until_ms, for each host backed off or blocked (`status`)      |
| `h:owner`         | HASH   | leased slot → JSON {w: worker id, t: token, n: URLs taken under              |
|                   |        | this lease, fp: the URL in flight, absent when none}                         |
| `workers`         | ZSET   | worker id → last heartbeat ms (for `status`)                                 |
| `leases`          | HASH   | worker id → its lease_ms, set when it opens (`status`: a heartbeat older     |
|                   |        | than the worker's own lease is stale)                                        |
| `records:<w>`     | STREAM | one entry per ack or settle of worker w: fp, t (an ack's token: a resent ack |
|                   |        | finds its record by fp and t), worker, page (the manifest record as JSON);   |
|                   |        | trimmed once w's manifest has them (redis_trim.py)                           |
| `claims`          | HASH   | worker id → its claim, a stream id: its records below it are in its manifest |
|                   |        | (redis_trim.py); every worker that opened is there, so `status` finds the    |
|                   |        | streams                                                                      |
| `done_by`         | HASH   | error code → records acked or settled with it (failures; `ok` not counted)   |
| `robots:<host>`   | STRING | the host's robots.txt state, JSON {body, reason, failures, kept_ms}          |
|                   |        | (`set_robots`), SET with PX = its validity + kept_ms (unavailable: 24 h, so  |
|                   |        | the failure count outlives the retry time), so Redis expires it; `robots`    |
|                   |        | reads GET + PTTL in one MULTI: validity left = PTTL - kept_ms, Redis' clock  |

A URL record is JSON `{"url", "fp" (a string: Lua numbers are doubles), "host", "depth", "referrer",
"attempts", "hops", "sr" (self-redirects), and only when set "kind" (`sitemap`) and "lastmod"}`; page
records are `Page.to_json()`. Nothing is pickled.

Seen set: 2^seen_bits intset buckets (14 bits by default, fixed when the crawl is created). Measured
on Redis 7.0 (used_memory growth, random 64-bit fingerprints): 9.2 B per URL for 1M URLs in 2^12
buckets, 10.4 B in 2^14, while a bucket stays under `set-max-intset-entries` (512: about 8M URLs
with 14 bits, 2M with 12). Past that a bucket turns into a hashtable, 75 B per URL (one plain SET:
72 B), and nothing else changes. Small crawls pay ~65 B of key overhead per used bucket (1.3 MB at
most with 14 bits). For bigger crawls choose seen_bits ≈ log2(expected URLs / 256). The records
streams hold each record until its worker's manifest has it (redis_trim.py says what bounds them).

Buckets (Redis Cluster). A crawl created with B buckets (`buckets` in meta, fixed at creation) keeps
its crawl-wide keys (`meta` without counters, `workers`, `leases`) under `crawlpool:{C}:` and every
other key above under one of B prefixes `crawlpool:b:{C:<b>}:`, b = crc32(host) % B for the host's
keys: a host, its slots, queue, pacing and robots, and the seen bucket, records and counters of the
URLs it serves all live in one Cluster slot, so every script touches one slot. The counters seen,
queued and leased move to each bucket's `counts` HASH (summed for the crawl), and tokens stay
unique across buckets: a bucket's INCR value n gives token n * B + b. A worker's records go to the
stream `records:<w>` of the bucket that served the URL, so a worker has one stream per bucket, each
with its own ids (its node's clock) and its own claim in that bucket's `claims`. With B = 1 (the
default for `redis://`) the one bucket *is* the crawl-wide prefix: the layout is the single-tag one
above. The `crawlpool:b:` namespace keeps bucket keys apart from every crawl's own keys, whatever
its id.
"""

from __future__ import annotations

import zlib

META = "m:"  # set_meta's keys, in the meta hash beside the crawl's own fields
_META_PREFIX, _META_SUFFIX = "crawlpool:{", "}:meta"
META_PATTERN = _META_PREFIX + "*" + _META_SUFFIX  # a SCAN MATCH for every crawl's meta key


def crawl_id_of(meta_key: str) -> str | None:
    """The crawl id of a key that META_PATTERN matched, or None when it is no crawl's meta key
    (the glob's `*` also matches braces, which a crawl id never holds)."""
    crawl_id = meta_key.removeprefix(_META_PREFIX).removesuffix(_META_SUFFIX)
    return None if not crawl_id or any(c in crawl_id for c in "{}") else crawl_id


class Keys:
    """Key names of one crawl, or of one bucket of it (see Buckets in the module docstring): all share
    one hash tag, `{crawl_id}` or, for bucket b of a crawl of several, `{crawl_id:b}`. `counts` is the
    HASH of the counters seen, queued and leased: `meta` itself when the crawl has one bucket."""

    def __init__(self, crawl_id: str, bucket: int | None = None) -> None:
        if bucket is None:
            self.prefix = prefix = f"crawlpool:{{{crawl_id}}}:"
            self.counts = prefix + "meta"
        else:
            self.prefix = prefix = f"crawlpool:b:{{{crawl_id}:{bucket}}}:"
            self.counts = prefix + "counts"
        self.meta = f"crawlpool:{{{crawl_id}}}:meta"
        self.tok = prefix + "tok"
        self.ready = prefix + "h:ready"
        self.leased = prefix + "h:leased"
        self.owner = prefix + "h:owner"
        self.paced = prefix + "h:paced"
        self.workers = prefix + "workers"
        self.leases = prefix + "leases"
        self.claims = prefix + "claims"
        self.done_by = prefix + "done_by"

    def robots(self, host: str) -> str:
        return f"{self.prefix}robots:{host}"

    def records(self, worker: str) -> str:
        return f"{self.prefix}records:{worker}"

    def seen(self, bucket: int) -> str:
        return f"{self.prefix}seen:{bucket}"

    def host(self, host: str) -> list[str]:
        """q, retry, cfg and inflight of `host`, in the order the scripts take them."""
        p = self.prefix
        return [f"{p}q:{host}", f"{p}retry:{host}", f"{p}host:{host}", f"{p}inflight:{host}"]


def seen_bucket(fp: int, seen_bits: int) -> int:
    """The seen bucket of a fingerprint: the top `seen_bits` bits of it, unsigned."""
    return (fp & 0xFFFF_FFFF_FFFF_FFFF) >> (64 - seen_bits) if seen_bits else 0


def slot_host(slot: str) -> str:
    """The host of slot `<host>#<i>`."""
    return slot.rpartition("#")[0]


class Layout:
    """The crawl-wide keys of a crawl (`crawl`) and its `n` buckets' keys (`buckets`), and which bucket
    serves a host. A bucket's `counts`, scripts and host keys are in its slot; `crawl.meta`, `workers`
    and `leases` are the only crawl-wide keys a worker writes (once at start, then per heartbeat)."""

    def __init__(self, crawl_id: str, n: int) -> None:
        self.n = n
        self.crawl = Keys(crawl_id)
        self.buckets = [self.crawl] if n == 1 else [Keys(crawl_id, b) for b in range(n)]

    def bucket_of(self, host: str) -> int:
        """The host's bucket: crc32 of its name (stable across processes, unlike hash()) modulo n."""
        return zlib.crc32(host.encode()) % self.n if self.n > 1 else 0

    def of(self, host: str) -> Keys:
        return self.buckets[self.bucket_of(host)]

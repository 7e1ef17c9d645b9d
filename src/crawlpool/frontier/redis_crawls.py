"""The crawls that exist at one Redis, for `crawlpool status --frontier redis://...` without a crawl id.

Read only, and bounded per call: the meta keys are found with SCAN (never KEYS, which blocks the server
for the whole keyspace; on a Redis Cluster, SCAN runs on every primary), then each crawl's counts and
heartbeats are read in one pipeline (a crawl of several key buckets: their counters summed)."""

from __future__ import annotations

from redis.exceptions import ResponseError

from crawlpool.errors import ConfigError, FrontierError
from crawlpool.frontier.base import FrontierStatus
from crawlpool.frontier.redis_buckets import COUNTERS, merged_meta, summed, summed_hashes
from crawlpool.frontier.redis_connection import REDIS_ERRORS, connect, safe_url
from crawlpool.frontier.redis_keys import META_PATTERN, Layout, crawl_id_of
from crawlpool.frontier.redis_status import build_status

_SCAN_COUNT = 1000  # keys the server looks at per SCAN step


async def list_crawls(url: str) -> list[FrontierStatus]:
    """One status per crawl at the Redis at `url`, by crawl id: state, counts, failures and the workers
    alive (no backoff rows). Raises FrontierError when Redis cannot be reached or read."""
    safe = safe_url(url)
    try:
        client = connect(url)
    except ValueError as exc:
        raise ConfigError(f"redis frontier: bad URL {safe}: {exc}") from None
    try:
        found = {crawl_id_of(key) async for key in client.scan_iter(match=META_PATTERN, count=_SCAN_COUNT)}
        seconds, micros = await client.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        statuses = []
        for crawl_id in sorted(filter(None, found)):
            keys = Layout(crawl_id, 1).crawl
            pipe = client.pipeline(transaction=False)
            pipe.hgetall(keys.meta)
            pipe.zrange(keys.workers, 0, -1, withscores=True)
            pipe.hgetall(keys.leases)
            try:
                meta, beats, leases = await pipe.execute()
                if "schema" not in meta:
                    continue
                buckets = Layout(crawl_id, int(meta.get("buckets") or 1)).buckets
                pipe = client.pipeline(transaction=False)
                for bucket in buckets:
                    pipe.hmget(bucket.counts, list(COUNTERS))
                    pipe.hgetall(bucket.done_by)
                parts = await pipe.execute()
            except ResponseError:  # a key of that name that is not a crawl's (another type)
                continue
            if len(buckets) > 1:
                meta = merged_meta(meta, summed(parts[0::2]))
            done_by = summed_hashes(parts[1::2])
            no_owners: dict[str, str] = {}  # slots held are not part of one line
            status = build_status(
                meta,
                done_by,
                no_owners,
                beats,
                [],
                now_ms,
                crawl_id=crawl_id,
                per_host=0,
                delay_ms=0,
                leases=leases,
            )
            statuses.append(status)
        return statuses
    except (*REDIS_ERRORS, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise FrontierError(f"redis frontier: cannot use {safe}: {reason}") from None
    finally:
        await client.aclose()

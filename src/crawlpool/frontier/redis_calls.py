"""KEYS and ARGV of the Redis frontier's scripts, built in the order each `lua/<name>.lua` header names
them: the Python half of the scripts' positional contract, in one place (the scripts are in lua/).
Each call is given the keys of the one bucket it runs in (redis_keys.py: Layout), so its KEYS share
one hash tag."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crawlpool.frontier.base import Request
from crawlpool.frontier.redis_keys import Keys, Layout, seen_bucket, slot_host
from crawlpool.frontier.redis_records import encode
from crawlpool.frontier.redis_trim import KEEP_MS
from crawlpool.policy.pacing import Answered

Args = list[str | int]
Call = tuple[list[str], Args]  # (KEYS, ARGV)


@dataclass(frozen=True)
class Calls:
    """The calls of one worker of one crawl; `now` is `''` (Redis TIME) or the injected clock in ms,
    `keys` the keys of the bucket the call runs in. The crawl's politeness and the worker's
    urls_per_lease are no arguments: they are written into the scripts (Scripts)."""

    worker: str
    seen_bits: int
    lease_ms: int
    layout: Layout

    def add(self, keys: Keys, now: str, requests: Sequence[Request]) -> Call:
        """add.lua: seen buckets and hosts are numbered in order of first use."""
        buckets: dict[int, int] = {}
        hosts: dict[str, int] = {}
        quads: Args = []
        for request in requests:
            b = buckets.setdefault(seen_bucket(request.fp, self.seen_bits), len(buckets) + 1)
            h = hosts.setdefault(request.host, len(hosts) + 1)
            quads += [b, h, str(request.fp), encode(request)]
        script_keys = [keys.counts, keys.ready, keys.leased, *(keys.seen(b) for b in buckets)]
        for host in hosts:
            script_keys += keys.host(host)[:3]
        args: Args = [now, len(buckets), len(hosts), *hosts, *quads]
        return script_keys, args

    def settle(self, keys: Keys, request: Request, page: str, code: str) -> Call:
        bucket = seen_bucket(request.fp, self.seen_bits)
        args: Args = [str(request.fp), page, code, self.worker]
        return [keys.counts, keys.seen(bucket), keys.records(self.worker), keys.done_by], args

    def lease_slots(self, bucket: int, now: str, n: int) -> Call:
        keys = self.layout.buckets[bucket]
        args: Args = [now, self.lease_ms, self.worker, n, self.layout.n, bucket]
        return [keys.ready, keys.leased, keys.owner, keys.tok], args

    def take(self, keys: Keys, now: str, slots: Sequence[tuple[str, int, str]], limit: int) -> Call:
        """take.lua for (slot, token, kind) triples; each host's four keys are passed once."""
        script_keys = [keys.counts, keys.ready, keys.leased, keys.owner]
        hosts: dict[str, int] = {}
        args: Args = [now, max(0, limit)]
        for slot, token, kind in slots:
            host = slot_host(slot)
            if host not in hosts:
                hosts[host] = len(hosts) + 1
                script_keys += keys.host(host)
            args += [slot, token, hosts[host], kind]
        return script_keys, args

    def end(
        self,
        keys: Keys,
        now: str,
        request: Request,
        token: int,
        mode: str,
        payload: str,
        extra: str,
        *,
        next_url: bool,
        after: str,
        answer: Answered | None = None,
    ) -> Call:
        """end.lua; `next_url`: an ack may hand out the host's next URL through the slot it keeps;
        `after`: the last id of this worker's stream seen before the call (an ack that committed did
        so above it); `answer`: the host's answer, applied to its pacing in the same step (as
        pace.lua would)."""
        script_keys = [keys.counts, keys.ready, keys.leased, keys.owner, *keys.host(request.host)]
        script_keys += [keys.records(self.worker), keys.done_by, keys.paced]
        args: Args = [now, request.host, str(request.fp), token, mode, payload, extra, self.worker]
        args += ["next" if next_url else "", after]
        if answer is not None:
            status = "" if answer.status is None else answer.status
            args += ["answer", status, answer.elapsed_ms, answer.error_code or ""]
        return script_keys, args

    def extend(self, keys: Keys, now: str, slots: Sequence[tuple[str, int]]) -> Call:
        args: Args = [now, self.lease_ms, self.worker]
        for slot, token in slots:
            args += [slot, token]
        return [keys.leased, keys.owner], args

    def beat(self, now: str) -> Call:
        return [self.layout.crawl.workers], [now, self.worker]

    def trim(self, keys: Keys, now: str, claim: str) -> Call:
        """trim.lua on this worker's stream of the bucket `keys`, with its claim there."""
        return [keys.records(self.worker), keys.claims], [now, self.worker, claim, KEEP_MS]

    def reclaim(self, keys: Keys, now: str, slots: Sequence[tuple[str, int]], mode: str) -> Call:
        """reclaim.lua for (slot, token) pairs; each host's four keys are passed once."""
        script_keys = [keys.counts, keys.ready, keys.leased, keys.owner]
        hosts: dict[str, int] = {}
        args: Args = [now, mode, self.worker]
        for slot, token in slots:
            host = slot_host(slot)
            if host not in hosts:
                hosts[host] = len(hosts) + 1
                script_keys += keys.host(host)
            args += [slot, token, hosts[host]]
        return script_keys, args

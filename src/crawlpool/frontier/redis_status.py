"""`RedisFrontier.status()` without Redis: the FrontierStatus of a crawl built from the keys that
status() reads (see the key schema in redis_keys.py) and the time it read them at."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from crawlpool.frontier.base import CrawlState, FrontierStatus, Politeness, WorkerStatus, backoff_rows
from crawlpool.frontier.redis_buckets import COUNTERS
from crawlpool.frontier.redis_keys import META
from crawlpool.policy.pacing import HostPace

ALIVE_S = 60.0  # the lease of a worker that recorded none (the default --lease)


def build_status(
    meta: Mapping[str, str],
    done_by: Mapping[str, str],
    owners: Mapping[str, str],
    beats: Iterable[tuple[str, float]],
    paced: Iterable[tuple[str, str | None, str | None]],
    now_ms: int,
    *,
    crawl_id: str,
    per_host: int,
    delay_ms: int,
    leases: Mapping[str, str] | None = None,
    last_record_ms: int | None = None,
    rates: Mapping[str, float] | None = None,
) -> FrontierStatus:
    """The status of crawl `crawl_id` at `now_ms` from its `meta`, `done_by` and `h:owner` hashes, its
    `workers` set as (worker, last heartbeat ms) pairs, and (host, pace, blocked_until_ms) from the
    `host:<host>` hash of each host in `h:paced` (None where the field is missing). `per_host` and
    `delay_ms` stand in for the politeness when meta lacks it. `leases` (worker → lease ms, the
    `leases` hash) says how long each worker's heartbeat stays fresh (ALIVE_S when unrecorded): the
    crawl is running while one is fresh, stopped otherwise, finished when it is done or nothing is
    queued or leased. `updated` is the later of `m:updated` and the last record's time
    (`last_record_ms`, from the last entry of the workers' records streams), so a killed worker's crawl
    has one.
    `rates`: each worker's URLs finished per second lately (`recent_rates`)."""
    leases = leases or {}
    age_s = {worker: max(0.0, (now_ms - beat) / 1000) for worker, beat in beats}
    slots: Counter[str] = Counter()
    in_flight: Counter[str] = Counter()
    for raw in owners.values():
        owner = json.loads(raw)
        slots[owner["w"]] += 1
        in_flight[owner["w"]] += "fp" in owner
    alive = {worker for worker, age in age_s.items() if age <= _lease_s(leases.get(worker))}
    workers = tuple(
        WorkerStatus(
            worker,
            slots[worker],
            in_flight[worker],
            age_s.get(worker),
            worker in alive,
            None if rates is None else round(rates.get(worker, 0.0), 1),
        )
        for worker in sorted(set(slots) | alive)
    )
    counts = {name: int(meta.get(name, 0)) for name in COUNTERS}
    counts["done"] = counts["seen"] - counts["queued"] - counts["leased"]  # see COUNTERS
    state: CrawlState = "running" if alive else "stopped"
    if meta.get("state") == "done" or (counts["queued"] == 0 and counts["leased"] == 0):
        state = "finished"
    started = meta.get(META + "started")
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
        updated=_later(meta.get(META + "updated"), _iso(last_record_ms) if last_record_ms else None),
        ended=meta.get(META + "ended"),
        crawl_id=crawl_id,
        politeness=Politeness(
            int(meta.get("per_host", per_host)), int(meta.get("delay_ms", delay_ms)) / 1000
        ),
        workers=workers,
        backoff=backoff_rows(
            (host, HostPace.from_json(json.loads(raw)), (int(blocked or 0) - now_ms) / 1000)
            for host, raw, blocked in paced
            if raw is not None
        ),
        live_workers=len(alive),
    )


def _lease_s(lease_ms: str | None) -> float:
    try:
        return int(lease_ms) / 1000 if lease_ms else ALIVE_S
    except ValueError:
        return ALIVE_S


def _later(a: str | None, b: str | None) -> str | None:
    """The later of two optional times in the same ISO form (which sorts as text)."""
    return max(a, b) if a and b else a or b


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


RATE_WINDOW_MS = 10_000
RATE_SCAN = 5_000  # newest records looked at: past that the window is shortened to what they cover


def recent_rates(entries: Sequence[tuple[str, Mapping[str, str]]], now_ms: int) -> dict[str, float]:
    """URLs finished per second by each worker over the last RATE_WINDOW_MS, from the newest entries of
    the workers' records streams (newest first, each id `<ms>-<seq>`, each with a `worker` field)."""
    if not entries:
        return {}
    counts: Counter[str] = Counter(fields.get("worker", "") for _, fields in entries)
    oldest_ms = int(entries[-1][0].partition("-")[0])
    span_ms = RATE_WINDOW_MS if len(entries) < RATE_SCAN else max(now_ms - oldest_ms, 1)
    return {worker: n * 1000 / span_ms for worker, n in counts.items()}

"""`build_status`, the pure half of RedisFrontier.status(): the FrontierStatus of a crawl from the raw
hashes status() reads, checked without Redis (tests/test_frontier_redis.py checks the reads)."""

from __future__ import annotations

import json

import pytest

from crawlpool.frontier.base import MAX_BACKOFF_SHOWN, FrontierStatus, HostBackoff, Politeness, WorkerStatus
from crawlpool.frontier.redis_status import ALIVE_S, build_status

NOW = 1_800_000_000_000  # ms
META = {"schema": "1", "per_host": "2", "delay_ms": "1500", "created_ms": "1767225600000", "state": "running"}
COUNTS = {"seen": "10", "queued": "4", "leased": "2", "done": "4"}


def status(
    meta: dict[str, str] | None = None,
    done_by: dict[str, str] | None = None,
    owners: dict[str, str] | None = None,
    beats: list[tuple[str, float]] | None = None,
    paced: list[tuple[str, str | None, str | None]] | None = None,
    leases: dict[str, str] | None = None,
    last_record_ms: int | None = None,
) -> FrontierStatus:
    return build_status(
        {**META, **COUNTS} if meta is None else meta,
        done_by or {},
        owners or {},
        beats or [],
        paced or [],
        NOW,
        crawl_id="c1",
        per_host=3,
        delay_ms=250,
        leases=leases,
        last_record_ms=last_record_ms,
    )


def owner(worker: str, fp: str | None = None) -> str:
    return json.dumps({"w": worker, "t": 7, "n": 1, **({"fp": fp} if fp else {})})


def test_counts_failures_politeness_and_start_come_from_meta_and_done_by() -> None:
    s = status(done_by={"ok": "3", "http_5xx": "1", "dns": "2"}, beats=[("w1", NOW)])
    assert (s.seen, s.queued, s.in_flight, s.done) == (10, 4, 2, 4)
    assert s.failures == {"dns": 2, "http_5xx": 1}  # sorted by code, `ok` left out
    assert s.politeness == Politeness(per_host=2, delay_s=1.5)
    assert s.started == "2026-01-01T00:00:00Z"  # from created_ms when m:started is unset
    assert s.updated is None
    assert s.crawl_id == "c1"
    assert s.backoff == ()


def test_set_meta_times_win_and_missing_fields_fall_back() -> None:
    s = status(meta={"m:started": "2026-02-02T00:00:00Z", "m:updated": "2026-02-03T00:00:00Z"})
    assert (s.started, s.updated) == ("2026-02-02T00:00:00Z", "2026-02-03T00:00:00Z")
    assert (s.seen, s.queued, s.in_flight, s.done) == (0, 0, 0, 0)
    assert s.politeness == Politeness(per_host=3, delay_s=0.25)  # the frontier's own values
    assert status(meta={}).started is None


def test_workers_are_those_holding_slots_or_alive_with_their_slots_and_urls_in_flight() -> None:
    owners = {"a#0": owner("w1", "123"), "a#1": owner("w1"), "b#0": owner("w2", "9"), "c#0": owner("w1", "5")}
    beats = [("w1", NOW - 2_500), ("w3", NOW - 1_000), ("w4", NOW - ALIVE_S * 1000 - 1), ("w5", NOW + 50)]
    s = status(owners=owners, beats=beats)
    assert s.workers == (
        WorkerStatus("w1", slots=3, in_flight=2, heartbeat_age_s=2.5),
        WorkerStatus("w2", slots=1, in_flight=1, heartbeat_age_s=None, alive=False),  # never beat
        WorkerStatus("w3", slots=0, in_flight=0, heartbeat_age_s=1.0),
        WorkerStatus("w5", slots=0, in_flight=0, heartbeat_age_s=0.0),  # a clock ahead counts as now
    )  # w4: no slots and its heartbeat is older than ALIVE_S
    assert s.state == "running"


def test_state_is_running_while_a_heartbeat_is_fresh_stopped_otherwise_finished_when_done() -> None:
    assert status(beats=[("w1", NOW - ALIVE_S * 1000)]).state == "running"
    assert status(beats=[("w1", NOW - ALIVE_S * 1000 - 1)]).state == "stopped"
    assert status(owners={"a#0": owner("w1", "1")}).state == "stopped"  # slots held, no heartbeat
    alive = [("w1", NOW)]
    assert status(meta={**META, **COUNTS, "state": "done"}, beats=alive).state == "finished"
    assert status(meta={**META, **COUNTS, "queued": "0", "leased": "0"}, beats=alive).state == "finished"
    assert status(meta={**META, **COUNTS, "queued": "0"}, beats=alive).state == "running"


def test_a_heartbeat_is_stale_after_the_workers_own_lease_and_then_no_worker_is_live() -> None:
    beats = [("short", NOW - 6_000), ("long", NOW - 200_000), ("default", NOW - ALIVE_S * 1000 - 1)]
    leases = {"short": "5000", "long": "300000", "junk": "x"}
    s = status(beats=beats, leases=leases, owners={"a#0": owner("short", "1")})
    assert s.workers == (
        WorkerStatus("long", slots=0, in_flight=0, heartbeat_age_s=200.0),  # within its 300 s lease
        WorkerStatus("short", slots=1, in_flight=1, heartbeat_age_s=6.0, alive=False),  # past its 5 s
    )  # default: no lease recorded, so ALIVE_S, and it is past that
    assert (s.state, s.live_workers) == ("running", 1)
    s = status(beats=[("short", NOW - 6_000), ("junk", NOW - ALIVE_S * 1000 - 1)], leases=leases)
    assert (s.state, s.live_workers) == ("stopped", 0)
    assert (status().state, status().live_workers) == ("stopped", 0)  # no worker at all


def test_updated_is_the_later_of_the_crawls_own_and_its_last_record() -> None:
    written = {**META, **COUNTS, "m:updated": "2027-01-15T08:00:00Z"}
    last = 1_800_000_000_000  # 2027-01-15T08:00:00Z
    assert status(last_record_ms=last).updated == "2027-01-15T08:00:00Z"  # killed: never set m:updated
    assert status(meta=written, last_record_ms=last - 60_000).updated == "2027-01-15T08:00:00Z"
    assert status(meta=written, last_record_ms=last + 61_000).updated == "2027-01-15T08:01:01Z"
    assert status().updated is None


def test_backoff_lists_hosts_backed_off_or_still_blocked_most_held_first() -> None:
    paced = [
        ("slow.test", json.dumps([1.0, 2.0, 300.0, 5]), None),  # backed off: 2 s over its floor
        ("blocked.test", json.dumps([1.0, 0.0, 300.0, 5]), str(NOW + 30_000)),  # blocked 30 s more
        ("over.test", json.dumps([1.0, 0.0, 300.0, 5]), str(NOW - 1)),  # block over, no extra: left out
        ("gone.test", None, None),  # its host hash lost the pace field: left out
    ]
    assert status(paced=paced).backoff == (
        HostBackoff("blocked.test", 1.0, 0.0, 30.0),
        HostBackoff("slow.test", 3.0, 2.0, 0.0),
    )
    many = [
        (f"h{i}.test", json.dumps([1.0, float(i + 1), 0.0, 1]), None) for i in range(MAX_BACKOFF_SHOWN + 2)
    ]
    assert len(status(paced=many).backoff) == MAX_BACKOFF_SHOWN


def test_recent_rates_count_each_workers_records_over_the_window() -> None:
    from crawlpool.frontier.redis_status import RATE_SCAN, recent_rates

    now = 1_000_000
    entries = [(f"{now - i * 100}-0", {"worker": "a" if i % 3 else "b"}) for i in range(90)]
    assert recent_rates(entries, now) == {"a": 6.0, "b": 3.0}  # 60 and 30 records in 10 s
    full = [(f"{now - i}-0", {"worker": "a"}) for i in range(RATE_SCAN)]  # the scan's cap: 5 s covered
    assert recent_rates(full, now) == {"a": pytest.approx(RATE_SCAN * 1000 / (RATE_SCAN - 1))}
    assert recent_rates([], now) == {}

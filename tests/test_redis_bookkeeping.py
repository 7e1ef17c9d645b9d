"""The Redis frontier's in-process helpers, without Redis: the slots a worker holds (redis_slots.py)
and the paging of the `records` stream for committed_pages (redis_records.py)."""

from __future__ import annotations

import time

import pytest

from crawlpool.frontier.redis_records import RECORDS_BATCH, Entries, worker_pages
from crawlpool.frontier.redis_slots import HeldSlots
from crawlpool.records import Page


def test_idle_slots_are_claimed_once_in_the_order_they_became_idle() -> None:
    slots = HeldSlots()
    slots.hold([("a.test#0", 1), ("a.test#1", 2), ("b.test#0", 3)], sent_at=10.0)
    slots.keep("b.test#0", 3)
    slots.keep("a.test#1", 2)
    assert slots.claim_idle(1) == [("b.test#0", 3)]
    assert slots.claim_idle(5) == [("a.test#1", 2)]
    assert slots.claim_idle(5) == []
    assert slots.tokens == {"a.test#0": 1, "a.test#1": 2, "b.test#0": 3}  # claimed slots stay held


def test_forgetting_needs_the_token_the_slot_is_held_under() -> None:
    slots = HeldSlots()
    slots.hold([("a.test#0", 1), ("b.test#0", 2), ("c.test#0", 2)], sent_at=0.0)
    slots.keep("a.test#0", 1)
    slots.forget("a.test#0", 9)  # another lease's token: kept
    assert "a.test#0" in slots.tokens and "a.test#0" in slots.idle
    slots.forget("a.test#0", 1)
    assert "a.test#0" not in slots.tokens and "a.test#0" not in slots.idle
    slots.forget_token(2)
    assert slots.tokens == {}


def test_age_is_since_the_last_push_of_the_slot_of_that_token_and_host() -> None:
    slots = HeldSlots()
    start = time.monotonic()
    slots.hold([("a.test#0", 1), ("b.test#0", 2)], sent_at=start - 100)
    slots.touch(["a.test#0"], sent_at=start - 5)
    assert 5 <= (slots.age_s(1, "a.test") or 0) < 6
    assert 100 <= (slots.age_s(2, "b.test") or 0) < 101
    assert slots.age_s(1, "b.test") is None  # the token is a.test's
    assert slots.age_s(7, "a.test") is None
    slots.clear()
    assert slots.age_s(1, "a.test") is None


def page(url: str) -> Page:
    return Page(url, url, 200, "text/html", 0, None, None, 0, None, "2026-01-01T00:00:00Z", 1, None, 0)


@pytest.mark.parametrize("n", [0, 3, RECORDS_BATCH, 2 * RECORDS_BATCH + 1])
async def test_worker_pages_reads_the_stream_in_batches_and_keeps_this_workers(n: int) -> None:
    stream = [
        (f"{i}-0", {"fp": str(i), "worker": f"w{i % 2}", "page": page(f"http://a.test/{i}").to_json()})
        for i in range(1, n + 1)
    ]
    reads: list[tuple[str, int]] = []

    async def xrange(after: str, count: int) -> Entries:  # XRANGE records <after> + COUNT <count>
        reads.append((after, count))
        first = 0 if after == "-" else int(after.lstrip("(").split("-")[0])
        return stream[first : first + count]

    urls = [p.url async for p in worker_pages(xrange, "w1")]
    assert urls == [f"http://a.test/{i}" for i in range(1, n + 1, 2)]
    assert reads[0] == ("-", RECORDS_BATCH)
    assert len(reads) == n // RECORDS_BATCH + 1  # a short batch ends it
    assert all(after == f"({k * RECORDS_BATCH}-0" for k, (after, _) in enumerate(reads) if k)

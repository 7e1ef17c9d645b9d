"""What one worker of a Redis frontier knows about each key bucket of its crawl (see frontier/redis.py
and redis_keys.py), so that `lease` asks the buckets likely to have a slot due instead of all of them,
and what the crawl looks like summed over its buckets.

Every `lease_slots` or `take` reply of a bucket says when its earliest free slot is due (or that it has
none) and how many of its slots are leased. That answer is trusted for POLL_S: other workers add links
and end leases all the time, and this process cannot see it, so an older answer counts as unknown and
the bucket is asked again. With one bucket every lease asks it, as before buckets existed.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

# What each bucket counts; `done` is not counted but follows from them: every URL seen is queued,
# leased or done, and no script breaks that, so an ack spares a command (about 1.5% of a page).
COUNTERS = ("seen", "queued", "leased")


class BucketViews:
    """Per bucket: monotonic time its earliest free slot is due (None: none), slots leased, when
    it was last asked."""

    def __init__(self, n: int, poll_s: float, trust_one_s: float = 0.0) -> None:
        """`trust_one_s`: see `candidates`."""
        self.n = n
        self.poll_s = poll_s
        self.trust_one_s = trust_one_s
        self.due: list[float | None] = [0.0] * n
        self.leased = [0] * n
        self.asked = [float("-inf")] * n
        self._cursor = random.randrange(n)  # workers start on different buckets
        self._trusted = False  # the last candidates() did not ask the one bucket: its answer was trusted

    def seen(self, bucket: int, wait_ms: int, leased: int, at: float) -> None:
        """Bucket `bucket` answered a call sent at monotonic time `at`: `wait_ms` (-1: no free slot) and
        `leased`. An answer to a call sent before this worker's latest news of the bucket (`added`)
        is older than what it knows, and left out: replies of concurrent calls come in any order."""
        if at < self.asked[bucket]:
            return
        self._trusted = False
        self.due[bucket] = None if wait_ms < 0 else at + wait_ms / 1000
        self.leased[bucket] = leased
        self.asked[bucket] = at

    def added(self, bucket: int, at: float) -> None:
        """This worker queued work in the bucket at `at`: a slot of it may be due now."""
        self.due[bucket] = 0.0
        self.asked[bucket] = max(self.asked[bucket], at)

    def candidates(self, now: float, held: int = 0) -> list[int]:
        """The buckets that may have a slot due now: those known to, then those not asked lately, each
        from a cursor that moves on each call so that workers and calls spread over the buckets. The
        one bucket of a crawl of one always, unless it answered less than `trust_one_s` ago that no
        slot is due while other workers hold some (`held`: this worker's): their ends are not seen
        here, and asking again at once would most likely hear the same (`wait_s` then says to ask
        when that trust runs out)."""
        if self.n == 1:
            told_none = not self._due_by(0, now) and self.leased[0] > held
            self._trusted = told_none and now - self.asked[0] < self.trust_one_s
            return [] if self._trusted else [0]
        start = self._cursor
        self._cursor = (self._cursor + 1) % self.n
        order = [(start + i) % self.n for i in range(self.n)]
        due = [b for b in order if not self._stale(b, now) and self._due_by(b, now)]
        return due + [b for b in order if self._stale(b, now)]

    def _due_by(self, bucket: int, now: float) -> bool:
        due = self.due[bucket]
        return due is not None and due <= now

    def any_due(self, now: float) -> bool:
        """Some bucket may have a slot due now, as far as this worker knows."""
        return any(self._stale(b, now) or self._due_by(b, now) for b in range(self.n))

    def unasked_since(self, since: float) -> list[int]:
        return [b for b in range(self.n) if self.asked[b] < since]

    def any_stale(self, now: float) -> bool:
        return any(self._stale(b, now) for b in range(self.n))

    def wait_s(self, now: float, held: int) -> float | None:
        """Seconds until some bucket has a slot due: 0 when one is due or unknown, at most POLL_S while
        other workers hold slots (`held`: this worker's), None when nothing comes due by waiting."""
        if self.any_stale(now):
            return 0.0
        dues = [due for due in self.due if due is not None]
        wait = max(0.0, min(dues) - now) if dues else None
        if self._trusted:  # an answer was trusted instead of asked for: ask once the trust runs out
            until = max(0.0, self.asked[0] + self.trust_one_s - now)
            wait = until if wait is None else min(wait, until)
        if sum(self.leased) > held:
            return self.poll_s if wait is None else min(wait, self.poll_s)
        return wait

    def _stale(self, bucket: int, now: float) -> bool:
        return now - self.asked[bucket] > self.poll_s


def now() -> float:
    return time.monotonic()


def summed(counts: Sequence[Sequence[str | None]]) -> dict[str, int]:
    """The crawl's counters seen, queued, leased and done from each bucket's (seen, queued, leased)."""
    total = {name: sum(int(row[i] or 0) for row in counts) for i, name in enumerate(COUNTERS)}
    total["done"] = total["seen"] - total["queued"] - total["leased"]
    return total


def merged_meta(meta: Mapping[str, str], counts: Mapping[str, int]) -> dict[str, str]:
    """The crawl's meta with the buckets' summed counters. Its `state` is set when the crawl was found
    done, and a bucket cannot clear it when links come later (it is another slot), so work counted
    in the buckets wins over a `done` state."""
    out = dict(meta)
    out.update((name, str(value)) for name, value in counts.items())
    if out.get("state") == "done" and (counts["queued"] or counts["leased"]):
        out["state"] = "running"
    return out


def summed_hashes(hashes: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """Counter hashes (done_by) of every bucket, added up."""
    total: Counter[str] = Counter()
    for h in hashes:
        total.update({key: int(value) for key, value in h.items()})
    return {key: str(value) for key, value in total.items()}


def stream_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])

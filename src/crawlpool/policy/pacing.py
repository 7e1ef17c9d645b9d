"""Adaptive per-host pacing: back off from a host that struggles, never from one that is merely fast.

The state (`HostPace`) belongs to the frontier, which applies `next_pace` to it atomically (one state per
host for every worker of a crawl, kept across `--resume`); this module only decides, with no clock.

The host's delay between request starts is `floor_s + extra_s`:

- `floor_s` is the larger of `--delay` and the robots.txt Crawl-delay (capped). It never moves otherwise.
- `extra_s` is the adaptive part. It grows on an *overload signal* and shrinks on a healthy answer.

Overload signals (the extra delay doubles, starting at `STEP_S` = 0.25 s, at most `MAX_EXTRA_S` = 60 s):

- a 429 or 503 answer (the server says so);
- a timeout (no complete answer within `--timeout`);
- a *slow* answer: one that took at least `SLOW_MIN_MS` (500 ms) **and** at least `SLOW_FACTOR` (4)
  times the host's baseline. Both are needed: the relative test alone calls a 2 ms page "slow" on a
  host that usually answers in 0.3 ms (the bug that made crawlpool 13 times slower than wget on a local
  documentation site), and the absolute test alone punishes a host that is slow but steady. Half a
  second is where an answer starts to cost a server real work; below it, jitter (a CDN's 5 ms that is
  sometimes 40 ms) is noise, not a signal.

The baseline is the host's usual response time: an average that follows a faster answer quickly
(weight 1/2) and a slower one slowly (weight 1/50), so a gradual climb from 50 ms to 2 s is still seen
as a climb (the baseline lags far behind it), while a host that stays slow for a hundred answers
becomes the new normal and is no longer backed off from. The first `WARMUP_ANSWERS` answers only set
the baseline.

Recovery: each healthy answer (a status below 500 other than 429, not slow) takes a quarter of the
extra delay off, at least `STEP_S`: from the 60 s cap a host is back to its floor after about 20 good
answers, from one 503 after one. Other 5xx answers, and failures without an answer (refused, DNS),
neither slow a host down nor speed it up: they say nothing about its load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

STEP_S = 0.25
MAX_EXTRA_S = 60.0
SLOW_FACTOR = 4.0
SLOW_MIN_MS = 500.0
BASELINE_DOWN_WEIGHT = 0.5
BASELINE_UP_WEIGHT = 0.02
WARMUP_ANSWERS = 3
RECOVERY_FRACTION = 0.25
OVERLOAD_STATUSES = frozenset({429, 503})
# The numbers above, for the Redis frontier's Lua copy of `next_pace` (frontier/lua/pace.lua).
PACE_RULE = json.dumps(
    {
        "step_s": STEP_S,
        "max_extra_s": MAX_EXTRA_S,
        "slow_factor": SLOW_FACTOR,
        "slow_min_ms": SLOW_MIN_MS,
        "down_weight": BASELINE_DOWN_WEIGHT,
        "up_weight": BASELINE_UP_WEIGHT,
        "warmup": WARMUP_ANSWERS,
        "recovery": RECOVERY_FRACTION,
        "overload": sorted(OVERLOAD_STATUSES),
    }
)


@dataclass(frozen=True, slots=True)
class HostPace:
    """One host's pacing state. `delay_s` is the least time between two request starts to the host."""

    floor_s: float = 0.0
    extra_s: float = 0.0
    baseline_ms: float = 0.0
    answers: int = 0

    @property
    def delay_s(self) -> float:
        return self.floor_s + self.extra_s

    def to_json(self) -> list[float]:
        return [self.floor_s, self.extra_s, self.baseline_ms, self.answers]

    @classmethod
    def from_json(cls, data: list[float]) -> HostPace:
        floor_s, extra_s, baseline_ms, answers = data
        return cls(float(floor_s), float(extra_s), float(baseline_ms), int(answers))


@dataclass(frozen=True, slots=True)
class Answered:
    """A request to the host ended: its status (None: no answer), time taken, and error code if any."""

    status: int | None
    elapsed_ms: int
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class FloorRaised:
    """robots.txt asks for a Crawl-delay (already capped): the floor rises to it, never falls."""

    floor_s: float


@dataclass(frozen=True, slots=True)
class Blocked:
    """Hand out none of the host's URLs for `for_s` from now (Retry-After, robots.txt unavailable).
    Not part of `HostPace`: a block is an instant on the backend's own clock, which sets it."""

    for_s: float


HostEvent = Answered | FloorRaised | Blocked


def is_slow(pace: HostPace, elapsed_ms: float) -> bool:
    """Whether an answer this long is a sign of a struggling host (see the module docstring)."""
    return (
        pace.answers >= WARMUP_ANSWERS
        and elapsed_ms >= SLOW_MIN_MS
        and elapsed_ms >= SLOW_FACTOR * pace.baseline_ms
    )


def next_pace(pace: HostPace, event: HostEvent) -> HostPace:
    """The host's pacing after `event`. `Blocked` leaves it as it is (the backend keeps blocks)."""
    if isinstance(event, FloorRaised):
        return replace(pace, floor_s=event.floor_s) if event.floor_s > pace.floor_s else pace
    if isinstance(event, Blocked):
        return pace
    status = event.status
    overloaded = (
        status in OVERLOAD_STATUSES or event.error_code == "timeout" or is_slow(pace, event.elapsed_ms)
    )
    extra_s = pace.extra_s
    if overloaded:
        extra_s = min(MAX_EXTRA_S, max(STEP_S, extra_s * 2))
    elif status is not None and status < 500:
        extra_s = max(0.0, extra_s - max(STEP_S, extra_s * RECOVERY_FRACTION))
    if status is None:
        return replace(pace, extra_s=extra_s)
    return replace(
        pace,
        extra_s=extra_s,
        baseline_ms=_baseline(pace, event.elapsed_ms),
        answers=pace.answers + 1,
    )


def _baseline(pace: HostPace, elapsed_ms: float) -> float:
    if pace.answers == 0:
        return elapsed_ms
    weight = BASELINE_DOWN_WEIGHT if elapsed_ms < pace.baseline_ms else BASELINE_UP_WEIGHT
    return pace.baseline_ms + weight * (elapsed_ms - pace.baseline_ms)

"""Adaptive per-host pacing: slow down for a struggling host, recover slowly.

The rule (AIMD, as TCP does for congestion):

- The host's delay never drops below its floor: max(`--delay`, robots Crawl-delay).
- Multiplicative increase: an answer of 429 or 503, or a response more than `slow_factor` (4x) slower
  than the host's recent average (an exponentially weighted mean of its response times), doubles the
  extra delay (starting at `step_s`, 0.25 s), up to `max_delay_s` (60 s).
- Additive decrease: every other successful answer takes `step_s` off the extra delay.

So one 503 costs a host at most a few seconds of extra spacing, a host that keeps failing is asked at
most once a minute, and a healthy host returns to full speed after a few dozen pages. The frontier
enforces the resulting delay; this module only decides it (pure, no clock needed).
"""

from __future__ import annotations

from dataclasses import dataclass

STEP_S = 0.25
MAX_DELAY_S = 60.0
SLOW_FACTOR = 4.0
EWMA_WEIGHT = 0.2
WARMUP_RESPONSES = 5  # too few samples make "slower than usual" meaningless
OVERLOAD_STATUSES = frozenset({429, 503})


@dataclass(slots=True)
class HostPace:
    """One host's pacing state; `delay_s` is what the frontier should enforce."""

    floor_s: float
    extra_s: float = 0.0
    mean_ms: float = 0.0
    samples: int = 0

    @property
    def delay_s(self) -> float:
        return self.floor_s + self.extra_s

    def observe(self, status: int | None, elapsed_ms: int) -> bool:
        """Account for one answer; True when `delay_s` changed."""
        before = self.extra_s
        slow = self.samples >= WARMUP_RESPONSES and elapsed_ms > SLOW_FACTOR * self.mean_ms
        if status in OVERLOAD_STATUSES or slow:
            self.extra_s = min(MAX_DELAY_S, max(STEP_S, self.extra_s * 2))
        elif status is not None and status < 500:
            self.extra_s = max(0.0, self.extra_s - STEP_S)
        if status is not None:
            self.mean_ms = (
                elapsed_ms
                if self.samples == 0
                else (1 - EWMA_WEIGHT) * self.mean_ms + EWMA_WEIGHT * elapsed_ms
            )
            self.samples += 1
        return self.extra_s != before

    def raise_floor(self, floor_s: float) -> bool:
        """Raise the floor (robots Crawl-delay); True when `delay_s` changed."""
        if floor_s <= self.floor_s:
            return False
        self.floor_s = floor_s
        return True

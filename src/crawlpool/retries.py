"""When to try a failed URL again: exponential backoff with full jitter, or the server's Retry-After."""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 60.0
RETRY_AFTER_CAP_S = 600.0


def backoff_s(attempt: int, rng: random.Random) -> float:
    """Delay before attempt number `attempt + 1` (attempt >= 0 failed tries so far minus one).

    Full jitter (a uniform draw below the exponential bound) spreads retries of many URLs apart."""
    bound = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2**attempt))
    return rng.uniform(bound / 2, bound)


def parse_retry_after(value: str | None, now_epoch_s: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped; None if absent
    or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), RETRY_AFTER_CAP_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - now_epoch_s), RETRY_AFTER_CAP_S)

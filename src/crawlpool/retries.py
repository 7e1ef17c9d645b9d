"""When to try a failed URL again: exponential backoff with full jitter, or the server's Retry-After."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 60.0
RETRY_AFTER_CAP_S = 600.0


def backoff_s(attempt: int, draw: float, base_s: float = BACKOFF_BASE_S) -> float:
    """Delay before the retry that follows failed attempt number `attempt` (0 for the first).

    The bound doubles with each attempt from `base_s`, up to a minute; the delay is in the upper half of
    it, placed by `draw` (a random number in [0, 1): jitter, so that URLs failing together do not come
    back together)."""
    bound = min(BACKOFF_CAP_S, base_s * 2.0**attempt)
    return bound / 2 + draw * bound / 2


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

from __future__ import annotations

import pytest

from crawlpool.traps import TrapLimits, trap_reason

LIMITS = TrapLimits()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://e.com/a/a/b", None),
        ("https://e.com/a/a/a/b", "repeated more than 2"),
        ("https://e.com/a/b/a/b/a/b", None),  # not in a row
        ("https://e.com/" + "/".join(str(i) for i in range(20)), None),
        ("https://e.com/" + "/".join(str(i) for i in range(21)), "more than 20 path segments"),
        ("https://e.com/" + "/".join(str(i) for i in range(20)) + "/", None),
        ("https://e.com/?q=" + "x" * 2100, "longer than 2083"),
        ("https://e.com/" + "x" * 2060, None),
    ],
)
def test_trap_guards(url: str, reason: str | None) -> None:
    found = trap_reason(url, LIMITS)
    assert (found is None) if reason is None else (found is not None and reason in found)


def test_trap_limits_are_adjustable() -> None:
    assert trap_reason("https://e.com/a/a/a/", TrapLimits(max_repeats=3)) is None
    assert trap_reason("https://e.com/a/b/c", TrapLimits(max_segments=2)) is not None
    assert trap_reason("https://e.com/abc", TrapLimits(max_url_chars=10)) is not None

from __future__ import annotations

import pytest

from crawlpool.politeness import MAX_DELAY_S, STEP_S, HostPace
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


def test_overload_doubles_the_extra_delay_and_success_takes_it_back_slowly() -> None:
    pace = HostPace(floor_s=1.0)
    assert pace.observe(503, 10) and pace.delay_s == 1.0 + STEP_S
    assert pace.observe(429, 10) and pace.delay_s == 1.0 + 2 * STEP_S
    assert pace.observe(503, 10) and pace.delay_s == 1.0 + 4 * STEP_S
    for expected in (3, 2, 1, 0):
        pace.observe(200, 10)
        assert pace.delay_s == pytest.approx(1.0 + expected * STEP_S)
    assert not pace.observe(200, 10)  # never below the floor


def test_the_extra_delay_is_capped() -> None:
    pace = HostPace(floor_s=0.0)
    for _ in range(20):
        pace.observe(503, 10)
    assert pace.delay_s == MAX_DELAY_S


def test_a_sharp_slowdown_counts_as_overload_after_warmup() -> None:
    pace = HostPace(floor_s=0.0)
    assert not pace.observe(200, 5000)  # first answers set the baseline, never a slowdown
    for _ in range(30):
        pace.observe(200, 20)
    assert pace.observe(200, 2000)
    assert pace.delay_s == STEP_S


def test_errors_without_a_status_do_not_speed_up_a_host() -> None:
    pace = HostPace(floor_s=0.0, extra_s=1.0)
    assert not pace.observe(None, 0)
    assert not pace.observe(500, 10)
    assert pace.extra_s == 1.0


def test_crawl_delay_raises_the_floor_only_upwards() -> None:
    pace = HostPace(floor_s=0.5)
    assert pace.raise_floor(2.0) and pace.delay_s == 2.0
    assert not pace.raise_floor(1.0)

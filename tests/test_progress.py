from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import pytest
from rich.console import Console

from crawlpool.progress import (
    ProgressReporter,
    RateWindow,
    Snapshot,
    eta_s,
    format_bytes,
    format_duration,
    format_errors,
    render,
    status_line,
)


def snap(
    *,
    pages: int = 0,
    queued: int = 0,
    elapsed_s: float = 0.0,
    max_pages: int | None = None,
    errors: dict[str, int] | None = None,
) -> Snapshot:
    return Snapshot(
        pages=pages,
        records=pages + 5,
        discovered=pages + queued + 7,
        queued=queued,
        in_flight=3,
        bytes=pages * 10_000,
        errors=errors or {},
        hosts_active=2,
        hosts_waiting=4,
        elapsed_s=elapsed_s,
        max_pages=max_pages,
    )


def recording_console(*, terminal: bool = False) -> Console:
    return Console(record=True, width=100, file=io.StringIO(), force_terminal=terminal)


def text_of(renderable: object) -> str:
    console = recording_console()
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (12_900_000, "12.3 MiB"), (3 * 1024**3, "3.0 GiB")],
)
def test_format_bytes(size: int, text: str) -> None:
    assert format_bytes(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.0, "0.0s"), (3.24, "3.2s"), (42.4, "42s"), (130, "2m10s"), (3720, "1h02m")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_errors_orders_codes_by_count() -> None:
    assert format_errors({}) == "0 errors"
    assert format_errors({"dns": 1}) == "1 error (dns 1)"
    assert format_errors({"http_4xx": 1, "timeout": 2}) == "3 errors (timeout 2, http_4xx 1)"
    assert format_errors({"a": 1_000, "b": 234}) == "1,234 errors (a 1,000, b 234)"


def test_eta_when_bounded_by_max_pages() -> None:
    assert eta_s(snap(pages=1_000, max_pages=5_000), 40.0) == 100.0
    assert eta_s(snap(pages=6_000, max_pages=5_000), 40.0) == 0.0


def test_eta_when_draining_and_the_smaller_of_both() -> None:
    assert eta_s(snap(queued=400), 40.0, draining=True) == 10.0
    assert eta_s(snap(pages=0, queued=400, max_pages=200), 40.0, draining=True) == 5.0


def test_no_eta_without_a_bound_a_drain_or_a_rate() -> None:
    assert eta_s(snap(queued=400), 40.0) is None
    assert eta_s(snap(max_pages=10), None) is None
    assert eta_s(snap(max_pages=10), 0.0) is None


def test_rate_is_over_the_recent_window_not_the_whole_crawl() -> None:
    window = RateWindow(window_s=10.0)
    window.add(snap(pages=0, elapsed_s=0.0))
    assert window.rate is None
    window.add(snap(pages=1_000, elapsed_s=10.0))
    assert window.rate == 100.0
    window.add(snap(pages=1_100, elapsed_s=20.0))
    assert window.rate == 10.0  # the whole-crawl average would be 55


def test_rate_window_keeps_samples_spanning_the_window() -> None:
    window = RateWindow(window_s=1.0)
    for tick in range(9):
        window.add(snap(pages=tick * 10, elapsed_s=tick * 0.25))
    assert window.rate == pytest.approx(40.0)


def test_draining_means_the_queue_shrinks_over_the_window() -> None:
    window = RateWindow(window_s=10.0)
    window.add(snap(queued=100, elapsed_s=0.0))
    assert not window.draining
    window.add(snap(queued=150, elapsed_s=5.0))
    assert not window.draining
    window.add(snap(queued=80, elapsed_s=10.0))
    assert window.draining
    window.add(snap(queued=0, elapsed_s=15.0))
    assert not window.draining  # nothing left to drain


def test_status_line() -> None:
    snapshot = snap(pages=1_234, queued=5_678, max_pages=10_000, errors={"timeout": 2, "http_4xx": 1})
    line = status_line(snapshot, 45.62, 130.0)
    assert line == (
        "crawlpool: 1,234 pages stored (of 10,000), 6,919 discovered, 5,678 queued, 3 in flight, "
        "45.6 pages/s, 11.8 MiB, hosts 2 active, 4 waiting (politeness), "
        "3 errors (timeout 2, http_4xx 1), ETA 2m10s"
    )
    assert "\n" not in line


def test_status_line_leaves_out_what_is_unknown() -> None:
    line = status_line(snap(pages=5, queued=2), None, None)
    assert "pages/s" not in line
    assert "ETA" not in line
    assert "(of" not in line
    assert "0 errors" in line


def test_render_shows_every_count() -> None:
    snapshot = snap(pages=1_234, queued=5_678, errors={"timeout": 2, "http_4xx": 1})
    text = text_of(render(snapshot, 45.6, None))
    for expected in [
        "1,234 stored",
        "6,919 discovered",
        "5,678 queued",
        "3 in flight",
        "1,239 finished",
        "45.6 pages/s",
        "11.8 MiB",
        "2 active",
        "4 waiting",
        "3 errors (timeout 2, http_4xx 1)",
    ]:
        assert expected in text
    assert "ETA" not in text


def test_render_with_a_bound_shows_the_eta_and_a_bar() -> None:
    text = text_of(render(snap(pages=250, max_pages=1_000), 25.0, 30.0))
    assert "250 stored of 1,000" in text
    assert "ETA 30s" in text
    assert "━" in text


def test_render_before_the_first_rate() -> None:
    assert "measuring" in text_of(render(snap(), None, None))


class Crawl:
    """A snapshot callable: each call is 10 s later and 100 pages further; `calls` counts them."""

    def __init__(self, *, queued: Iterator[int] | None = None, max_pages: int | None = None) -> None:
        self.calls = 0
        self.started = asyncio.Event()
        self._queued = queued
        self._max_pages = max_pages

    async def __call__(self) -> Snapshot:
        self.started.set()
        queued = next(self._queued) if self._queued is not None else 50
        snapshot = snap(
            pages=self.calls * 100, queued=queued, elapsed_s=self.calls * 10.0, max_pages=self._max_pages
        )
        self.calls += 1
        return snapshot


class Ticks:
    """An injected wait: the first `count` pauses end at once as if their time had passed; the next
    one waits for stop(). Records every timeout asked for and what was printed before each pause."""

    def __init__(self, count: int, console: Console) -> None:
        self.count = count
        self.console = console
        self.timeouts: list[float] = []
        self.printed_before: list[str] = []
        self.parked = asyncio.Event()

    async def __call__(self, stop: asyncio.Event, timeout_s: float) -> bool:
        self.timeouts.append(timeout_s)
        self.printed_before.append(self.console.export_text(clear=False))
        if len(self.timeouts) <= self.count:
            return False
        self.parked.set()
        await stop.wait()
        return True


async def run_ticks(reporter: ProgressReporter, ticks: Ticks) -> None:
    task = asyncio.create_task(reporter.run())
    await ticks.parked.wait()
    reporter.stop()
    async with asyncio.timeout(5):  # a guard against a hang, not a wait for time to pass
        await task


async def test_line_mode_prints_a_status_line_per_interval_never_at_t0() -> None:
    console = recording_console()
    crawl = Crawl()
    ticks = Ticks(3, console)
    reporter = ProgressReporter(crawl, console=console, live=False, interval_s=10.0, wait=ticks)
    await run_ticks(reporter, ticks)
    lines = console.export_text().splitlines()
    assert ticks.timeouts == [10.0] * 4
    assert ticks.printed_before[0] == ""  # nothing at t=0
    assert crawl.calls == 4  # the baseline, then one per line
    assert len(lines) == 3
    assert all(line.startswith("crawlpool: ") for line in lines)
    assert "100 pages stored" in lines[0]
    assert "300 pages stored" in lines[2]
    assert "10.0 pages/s" in lines[2]
    assert not any("ETA" in line for line in lines)  # unbounded, and the queue does not shrink


async def test_line_mode_eta_when_the_frontier_drains() -> None:
    console = recording_console()
    ticks = Ticks(3, console)
    crawl = Crawl(queued=iter([400, 300, 200, 100]))
    reporter = ProgressReporter(crawl, console=console, live=False, interval_s=10.0, wait=ticks)
    await run_ticks(reporter, ticks)
    lines = console.export_text().splitlines()
    assert lines[-1].endswith("ETA 10s")  # 100 queued at 10 pages/s


async def test_line_mode_eta_when_bounded() -> None:
    console = recording_console()
    ticks = Ticks(1, console)
    reporter = ProgressReporter(
        Crawl(max_pages=1_100), console=console, live=False, interval_s=10.0, wait=ticks
    )
    await run_ticks(reporter, ticks)
    assert console.export_text().splitlines()[-1].endswith("ETA 1m40s")  # 1,000 pages left at 10/s


async def test_live_mode_redraws_the_panel_4_times_a_second() -> None:
    console = recording_console(terminal=True)
    ticks = Ticks(2, console)
    reporter = ProgressReporter(Crawl(), console=console, live=True, wait=ticks)
    await run_ticks(reporter, ticks)
    text = console.export_text()
    assert ticks.timeouts == [0.25] * 3
    assert "0 stored" in text  # the first frame, at once
    assert "200 stored" in text
    assert "10.0 pages/s" in text


async def test_stop_ends_run_promptly_with_the_real_timer() -> None:
    console = recording_console()
    crawl = Crawl()
    reporter = ProgressReporter(crawl, console=console, live=False, interval_s=3_600.0)
    task = asyncio.create_task(reporter.run())
    await crawl.started.wait()
    reporter.stop()
    async with asyncio.timeout(5):  # a guard: stop() must not wait out the hour
        await task
    assert console.export_text() == ""


async def test_stop_before_run_returns_without_a_snapshot() -> None:
    crawl = Crawl()
    reporter = ProgressReporter(crawl, console=recording_console(), live=True)
    reporter.stop()
    await reporter.run()
    assert crawl.calls == 0


def test_hosts_waiting_for_robots_txt_are_said_with_the_next_try() -> None:
    from dataclasses import replace

    from crawlpool.progress import hosts_waiting_text, progress_event

    waiting = replace(snap(), hosts_waiting=2, hosts_robots=2, robots_retry_s=8.04)
    assert hosts_waiting_text(waiting) == "2 waiting (2 for robots.txt, next try in 8.0s)"
    assert hosts_waiting_text(snap()) == "4 waiting (politeness)"
    assert "2 waiting (2 for robots.txt" in status_line(waiting, None, None)
    event = progress_event(waiting, 1.25, None)
    assert (event["event"], event["hosts_waiting"], event["hosts_waiting_robots"]) == ("progress", 2, 2)
    assert event["pages_per_s"] == 1.2 and event["eta_s"] is None

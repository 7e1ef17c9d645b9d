"""The live progress display: a rich Live display on a terminal, a status line now and then elsewhere.

`ProgressReporter` asks a cheap `snapshot()` callable for the crawl's counters, keeps a short window of
recent snapshots (for a current pages/s and to see whether the frontier is draining) and shows them:

- `live=True`: a rich `Live` display redrawn about 4 times a second. The CLI uses it when stderr is a
  TTY. The Python API uses it in a notebook: a `Console()` built inside Jupyter is a Jupyter console,
  and rich's Live then redraws an output widget in the cell (this needs `ipywidgets`; without it rich
  warns and shows nothing live).
- `live=False`: one `status_line` every `interval_s` (10 s in the CLI when stderr is not a TTY), the
  first one after `interval_s`, never at t=0.
- `--quiet`: the CLI builds no reporter at all.

Redraws run on the crawl's event loop, so each one must stay tiny: one snapshot, a handful of string
formats, one short Text (see `render`). Time is the snapshot's `elapsed_s` (the crawl's own clock), so
the rate and ETA need no clock of their own; the pause between redraws is a timer on the stop event,
so `stop()` ends `run()` at once instead of at the next tick.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from crawlpool.logs import json_line

LIVE_REFRESH_S = 0.25
# Long enough to smooth over a burst of fast 404s, short enough to show a slowdown within seconds.
RATE_WINDOW_S = 10.0
BAR_WIDTH = 30
LABEL_WIDTH = 8


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The crawl's counters at one moment, as the engine sees them (built by its `snapshot()`)."""

    pages: int  # stored pages
    records: int  # URLs finished (manifest lines)
    discovered: int  # URLs seen (the frontier's seen count)
    queued: int  # waiting in the frontier
    in_flight: int  # requests in flight now
    bytes: int
    errors: Mapping[str, int]  # by error code
    hosts_active: int  # hosts with a request in flight
    hosts_waiting: int  # hosts with queued URLs that are not due yet (politeness, backoff, blocks)
    elapsed_s: float
    max_pages: int | None
    hosts_robots: int = 0  # of the hosts waiting, those waiting to ask for robots.txt again
    robots_retry_s: float | None = None  # seconds until the first of them asks again


def format_count(n: int) -> str:
    return f"{n:,}"


def format_bytes(n: int) -> str:
    """`512 B`, `12.3 KiB`, `4.0 MiB`, ... (powers of 1024, like `--max-bytes 10MiB`)."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def format_duration(seconds: float) -> str:
    """`3.2s`, `42s`, `2m10s`, `1h02m`: precise when short, coarse when long."""
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_errors(errors: Mapping[str, int]) -> str:
    """`3 errors (timeout 2, http_4xx 1)`, `1 error (dns 1)` or `0 errors`; most frequent code first."""
    total = sum(errors.values())
    noun = "error" if total == 1 else "errors"
    if not total:
        return f"0 {noun}"
    kinds = ", ".join(f"{code} {format_count(n)}" for code, n in _by_count(errors) if n)
    return f"{format_count(total)} {noun} ({kinds})"


def _by_count(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def eta_s(snapshot: Snapshot, rate: float | None, *, draining: bool = False) -> float | None:
    """Seconds until the crawl ends at the current `rate` (pages/s): `(max_pages - pages) / rate` when
    bounded by max_pages, `queued / rate` when the frontier is `draining` (the smaller when both).

    None: no estimate — no rate yet (or a rate of 0), or neither bounded nor draining, since a frontier
    that still grows gives no hint of when it will be done."""
    if rate is None or rate <= 0:
        return None
    estimates: list[float] = []
    if snapshot.max_pages is not None:
        estimates.append(max(snapshot.max_pages - snapshot.pages, 0) / rate)
    if draining:
        estimates.append(snapshot.queued / rate)
    return min(estimates) if estimates else None


class RateWindow:
    """Recent snapshots, for the current pages/s and whether the frontier is draining.

    Keeps the samples of the last `window_s` seconds plus the newest one older than that, so the rate
    always spans at least `window_s` once the crawl is that old, however seldom samples come."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self._window_s = window_s
        self._samples: deque[tuple[float, int, int]] = deque()  # (elapsed_s, pages, queued)

    def add(self, snapshot: Snapshot) -> None:
        samples = self._samples
        if samples and snapshot.elapsed_s < samples[-1][0]:
            samples.clear()  # a clock that went back (a new crawl): old samples mean nothing now
        samples.append((snapshot.elapsed_s, snapshot.pages, snapshot.queued))
        cutoff = snapshot.elapsed_s - self._window_s
        while len(samples) > 2 and samples[1][0] <= cutoff:
            samples.popleft()

    @property
    def rate(self) -> float | None:
        """Pages per second over the window; None until two samples some time apart."""
        if len(self._samples) < 2:
            return None
        (t0, pages0, _), (t1, pages1, _) = self._samples[0], self._samples[-1]
        return (pages1 - pages0) / (t1 - t0) if t1 > t0 else None

    @property
    def draining(self) -> bool:
        """True when fewer URLs are queued now than at the start of the window (and some still are)."""
        if len(self._samples) < 2:
            return False
        queued0, queued1 = self._samples[0][2], self._samples[-1][2]
        return 0 < queued1 < queued0


def hosts_waiting_text(snapshot: Snapshot) -> str:
    """`3 waiting (politeness)`, or `2 waiting (1 for robots.txt, next try in 8.1s)`."""
    text = f"{format_count(snapshot.hosts_waiting)} waiting"
    if not snapshot.hosts_robots:
        return text + " (politeness)"
    retry = snapshot.robots_retry_s
    when = f", next try in {format_duration(retry)}" if retry is not None else ""
    return f"{text} ({format_count(snapshot.hosts_robots)} for robots.txt{when})"


def status_line(snapshot: Snapshot, rate: float | None, eta_s: float | None) -> str:
    """One line for a log: counts, rate, bytes, errors by code, and the ETA when there is one
    (`rate` None: not known yet, left out; `eta_s` None: no estimate, left out)."""
    stored = f"{format_count(snapshot.pages)} pages stored"
    if snapshot.max_pages is not None:
        stored += f" (of {format_count(snapshot.max_pages)})"
    parts = [
        stored,
        f"{format_count(snapshot.discovered)} discovered",
        f"{format_count(snapshot.queued)} queued",
        f"{format_count(snapshot.in_flight)} in flight",
    ]
    if rate is not None:
        parts.append(f"{rate:.1f} pages/s")
    parts += [
        format_bytes(snapshot.bytes),
        f"hosts {format_count(snapshot.hosts_active)} active, {hosts_waiting_text(snapshot)}",
        format_errors(snapshot.errors),
    ]
    if eta_s is not None:
        parts.append(f"ETA {format_duration(eta_s)}")
    return "crawlpool: " + ", ".join(parts)


def progress_event(snapshot: Snapshot, rate: float | None, eta: float | None) -> dict[str, object]:
    """The `progress` event of `--log-format json`: the status line's numbers as fields."""
    return {
        "event": "progress",
        "pages": snapshot.pages,
        "max_pages": snapshot.max_pages,
        "records": snapshot.records,
        "discovered": snapshot.discovered,
        "queued": snapshot.queued,
        "in_flight": snapshot.in_flight,
        "bytes": snapshot.bytes,
        "errors": dict(snapshot.errors),
        "hosts_active": snapshot.hosts_active,
        "hosts_waiting": snapshot.hosts_waiting,
        "hosts_waiting_robots": snapshot.hosts_robots,
        "elapsed_s": round(snapshot.elapsed_s, 3),
        "pages_per_s": None if rate is None else round(rate, 1),
        "eta_s": None if eta is None else round(eta, 1),
    }


def render(snapshot: Snapshot, rate: float | None, eta_s: float | None) -> RenderableType:
    """The live display: the same facts as `status_line`, a row each, with a bar when bounded by
    max_pages (`rate` None: shown as "measuring"; `eta_s` None: no ETA shown)."""
    # One Text with padded labels and a bar drawn as characters, because a redraw blocks the crawl's
    # loop: a Table.grid in a Panel (which measures its content, then renders it) took ~2 ms a draw,
    # this ~0.4 ms. Text rather than str also skips console-markup parsing of the values.
    text = Text()

    def row(label: str, value: str, style: str = "") -> None:
        if text:
            text.append("\n")
        text.append(f"{label:<{LABEL_WIDTH}}", style="bold")
        text.append(value, style=style)

    stored = f"{format_count(snapshot.pages)} stored"
    share: float | None = None
    if snapshot.max_pages is not None:
        share = min(snapshot.pages / snapshot.max_pages, 1.0) if snapshot.max_pages > 0 else 1.0
        stored += f" of {format_count(snapshot.max_pages)} ({share:.0%})"
    row("pages", stored)
    if share is not None:
        filled = round(share * BAR_WIDTH)
        text.append("  ")
        text.append("━" * filled, style="bar.complete")
        text.append("━" * (BAR_WIDTH - filled), style="bar.back")
    row(
        "URLs",
        f"{format_count(snapshot.discovered)} discovered · {format_count(snapshot.queued)} queued · "
        f"{format_count(snapshot.in_flight)} in flight · {format_count(snapshot.records)} finished",
    )
    speed = "measuring" if rate is None else f"{rate:.1f} pages/s"
    row("speed", f"{speed} · {format_bytes(snapshot.bytes)} stored")
    row(
        "hosts",
        f"{format_count(snapshot.hosts_active)} active · {hosts_waiting_text(snapshot)}",
    )
    row("errors", format_errors(snapshot.errors), "red" if any(snapshot.errors.values()) else "")
    time_text = f"{format_duration(snapshot.elapsed_s)} elapsed"
    if eta_s is not None:
        time_text += f" · ETA {format_duration(eta_s)}"
    row("time", time_text)
    return text


async def wait_or_timeout(stop: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `stop` is set or `timeout_s` passes. True: stop was set; False: the time passed."""
    try:
        await asyncio.wait_for(stop.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


class ProgressReporter:
    """Shows the crawl's progress until `stop()` (see the module docstring for the two modes).

    `snapshot` must be cheap: it runs on the crawl's loop at every redraw. `wait` is the pause between
    redraws (`wait_or_timeout` unless a test injects one); it returns True when `stop()` was called."""

    def __init__(
        self,
        snapshot: Callable[[], Awaitable[Snapshot]],
        *,
        console: Console,
        live: bool,
        interval_s: float = 10.0,
        json_lines: bool = False,
        wait: Callable[[asyncio.Event, float], Awaitable[bool]] = wait_or_timeout,
    ) -> None:
        self._snapshot = snapshot
        self._console = console
        self._live = live
        self._interval_s = interval_s
        self._wait = wait
        self._json_lines = json_lines
        self._stop = asyncio.Event()
        self._window = RateWindow(max(RATE_WINDOW_S, interval_s))

    async def run(self) -> None:
        """Report until `stop()` is called (before or during the run); a Live display is removed on
        the way out, so the end-of-crawl summary takes its place. Cancelling it is safe too."""
        if self._stop.is_set():
            return
        first = await self._snapshot()
        self._window.add(first)  # the rate's baseline; line mode shows nothing at t=0
        if self._live:
            await self._run_live(first)
        else:
            await self._run_lines()

    def stop(self) -> None:
        """End `run()` now; it returns without waiting for the next redraw."""
        self._stop.set()

    async def _run_lines(self) -> None:
        while not await self._wait(self._stop, self._interval_s):
            snapshot = await self._snapshot()
            rate, eta = self._observe(snapshot)
            line = status_line(snapshot, rate, eta)
            if self._json_lines:
                line = json_line(
                    "info", line, progress_event(snapshot, rate, eta), logger="crawlpool.progress"
                )
            # soft_wrap: a log line stays one line whatever width rich guesses for a file.
            self._console.print(line, markup=False, highlight=False, soft_wrap=True)

    async def _run_live(self, first: Snapshot) -> None:
        # auto_refresh=False: redraws happen here, on the loop, right after a snapshot, instead of in
        # rich's refresh thread re-rendering an unchanged display. Entering Live draws the first frame.
        initial = render(first, None, None)
        with Live(initial, console=self._console, auto_refresh=False, transient=True) as live:
            while not await self._wait(self._stop, LIVE_REFRESH_S):
                snapshot = await self._snapshot()
                live.update(render(snapshot, *self._observe(snapshot)), refresh=True)

    def _observe(self, snapshot: Snapshot) -> tuple[float | None, float | None]:
        """Add the snapshot to the window; return (rate, ETA) for showing it."""
        self._window.add(snapshot)
        rate = self._window.rate
        return rate, eta_s(snapshot, rate, draining=self._window.draining)

"""Where the dashboard's numbers come from: the running crawl's engine, or a crawl's stored state.

Both sources answer the same five questions as plain JSON-ready dicts (the `/api/` payloads): `status`
(the overview), `hosts`, `errors`, `records` and `workers`. `LiveSource` reads the engine of the crawl it
runs beside (its counters, its frontier, its robots.txt cache); `StoredSource` reads what a crawl left in
its output directory or in Redis, read-only, for `crawlpool dashboard`. The manifest is read by
`ManifestIndex`, which only ever reads the lines added since its last look.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from crawlpool.engine import Engine
from crawlpool.errors import UsageError
from crawlpool.frontier import (
    Frontier,
    FrontierStatus,
    HostRow,
    Politeness,
    is_redis,
    open_frontier,
    read_host_rows,
    read_location,
    read_status,
    sqlite_path,
)
from crawlpool.outcome import ended_text
from crawlpool.progress import RateWindow, Snapshot, eta_s, progress_event
from crawlpool.records import error_codes
from crawlpool.reports import state_words
from crawlpool.store import MANIFEST_NAME

HISTORY_POINTS = 720  # samples kept for the chart: 12 minutes at one a second, then thinned
EXAMPLES_PER_CODE = 5
HOST_SORTS = ("queued", "in_flight", "delay", "host")


class Source(Protocol):
    async def status(self) -> dict[str, Any]: ...

    async def hosts(self, limit: int, sort: str) -> list[dict[str, Any]]: ...

    async def errors(self) -> dict[str, Any]: ...

    async def workers(self) -> list[dict[str, Any]]: ...

    def manifest(self) -> ManifestIndex: ...


@dataclass(slots=True)
class ManifestIndex:
    """Counts of a manifest by error code with a few example records each, kept up to date by reading
    only what was appended since the last call; and a paginated search over the whole file."""

    path: Path
    _offset: int = 0
    _line: int = 0
    by_code: dict[str, int] = field(default_factory=dict)
    by_cause: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    records: int = 0
    stored: int = 0
    stored_bytes: int = 0

    def refresh(self) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                for raw in fh:
                    if not raw.endswith(b"\n"):
                        break  # a line still being written: read it whole next time
                    self._offset += len(raw)
                    self._line += 1
                    self._count(raw)
        except FileNotFoundError:
            return

    def _count(self, raw: bytes) -> None:
        try:
            record = json.loads(raw)
        except ValueError:
            return
        self.records += 1
        if record.get("path") is not None:
            self.stored += 1
            self.stored_bytes += int(record.get("bytes") or 0)
        codes = error_codes(record.get("error"))
        if not codes:
            return
        self.by_code[codes[0]] = self.by_code.get(codes[0], 0) + 1
        if len(codes) > 1:
            causes = self.by_cause.setdefault(codes[0], {})
            causes[codes[1]] = causes.get(codes[1], 0) + 1
        examples = self.examples.setdefault(codes[0], [])
        if len(examples) < EXAMPLES_PER_CODE:
            examples.append({"line": self._line, "url": record.get("url"), "error": record.get("error")})

    def search(
        self, *, url: str = "", status: int | None = None, code: str = "", offset: int = 0, limit: int = 50
    ) -> dict[str, Any]:
        """Records whose URL contains `url`, with `status` and error code (or cause) `code` when given:
        `limit` of them from match number `offset`, and whether more match."""
        found: list[dict[str, Any]] = []
        matched = 0
        for line, record in self._records():
            if url and url not in str(record.get("url", "")):
                continue
            if status is not None and record.get("status") != status:
                continue
            if code and code not in error_codes(record.get("error")):
                continue
            matched += 1
            if matched > offset + limit:
                return {"records": found, "offset": offset, "limit": limit, "more": True}
            if matched > offset:
                found.append({"line": line, **record})
        return {"records": found, "offset": offset, "limit": limit, "more": False}

    def _records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            return
        with fh:
            for line, raw in enumerate(fh, start=1):
                try:
                    yield line, json.loads(raw)
                except ValueError:
                    continue


class History:
    """Pages, queued and done over time for the chart; thinned to every other sample when full, so it
    always spans the whole crawl in at most `HISTORY_POINTS` points."""

    def __init__(self) -> None:
        self._points: deque[tuple[float, int, int, int]] = deque()
        self._every = 1
        self._skipped = 0

    def add(self, elapsed_s: float, pages: int, queued: int, done: int) -> None:
        self._skipped += 1
        if self._skipped < self._every and self._points:
            return
        self._skipped = 0
        self._points.append((round(elapsed_s, 1), pages, queued, done))
        if len(self._points) > HISTORY_POINTS:
            self._points = deque(list(self._points)[::2])
            self._every *= 2

    def points(self) -> list[list[float]]:
        return [list(point) for point in self._points]


def delay_reason(row: HostRow, crawl_delay_s: float) -> str:
    """Why a host is spaced as it is: `blocked`, `backoff`, `Crawl-delay`, `--delay` or ``."""
    if row.blocked_for_s > 0:
        return "blocked"
    if row.pace.extra_s > 0:
        return "backoff"
    if row.pace.floor_s > crawl_delay_s:
        return "Crawl-delay"
    if row.pace.floor_s > 0:
        return "--delay"
    return ""


def host_dicts(
    rows: list[HostRow],
    *,
    delay_s: float,
    sort: str,
    robots: Callable[[str], str | None] = lambda _: None,
    last_errors: dict[str, tuple[str, str]] | None = None,
) -> list[dict[str, Any]]:
    result = []
    for row in rows:
        reason = delay_reason(row, delay_s)
        if reason == "blocked" and (robots(row.host) or "").startswith("unavailable"):
            reason = "robots.txt unavailable"
        elif reason == "blocked":
            reason = "Retry-After"
        error = (last_errors or {}).get(row.host)
        result.append(
            {
                "host": row.host,
                "queued": row.queued,
                "in_flight": row.in_flight,
                "delay_s": round(row.pace.delay_s, 3),
                "reason": reason,
                "blocked_for_s": round(row.blocked_for_s, 1),
                "robots": robots(row.host),
                "last_error": None if error is None else {"error": error[0], "url": error[1]},
            }
        )
    keys: dict[str, Callable[[dict[str, Any]], Any]] = {
        "queued": lambda h: (-h["queued"], h["host"]),
        "in_flight": lambda h: (-h["in_flight"], h["host"]),
        "delay": lambda h: (-(h["delay_s"] + h["blocked_for_s"]), h["host"]),
        "host": lambda h: h["host"],
    }
    return sorted(result, key=keys[sort])


def overview(
    snapshot: Snapshot,
    *,
    state: str,
    state_text: str,
    rate: float | None,
    eta: float | None,
    history: History,
    causes: dict[str, dict[str, int]],
) -> dict[str, Any]:
    numbers = progress_event(snapshot, rate, eta)
    del numbers["event"]
    return {
        "state": state,
        "state_text": state_text,
        **numbers,
        "causes": causes,
        "history": history.points(),
    }


class LiveSource:
    """The crawl running in this process, through its engine."""

    def __init__(self, engine: Engine, output: Path) -> None:
        self._engine = engine
        self._index = ManifestIndex(output / MANIFEST_NAME)
        self._window = RateWindow(10.0)
        self._history = History()

    def manifest(self) -> ManifestIndex:
        self._index.refresh()
        return self._index

    async def status(self) -> dict[str, Any]:
        engine = self._engine
        snapshot = await engine.snapshot()
        self._window.add(snapshot)
        rate = self._window.rate
        self._history.add(snapshot.elapsed_s, snapshot.pages, snapshot.queued, snapshot.records)
        state, text = self._state(snapshot)
        return overview(
            snapshot,
            state=state,
            state_text=text,
            rate=rate,
            eta=eta_s(snapshot, rate, draining=self._window.draining),
            history=self._history,
            causes={code: dict(c) for code, c in engine.stats.by_cause.items()},
        )

    def _state(self, snapshot: Snapshot) -> tuple[str, str]:
        engine = self._engine
        if engine.finished:
            stats = engine.stats
            return stats.outcome, ended_text(stats.outcome, stats.queued)
        if snapshot.in_flight:
            return "running", "running"
        if snapshot.hosts_robots:
            retry = f", next try in {snapshot.robots_retry_s:.0f} s" if snapshot.robots_retry_s else ""
            return "waiting", f"waiting for robots.txt of {snapshot.hosts_robots} hosts{retry}"
        left = 0.0 if engine.due_at is None else engine.due_at - engine.clock()
        if left >= 1.0:  # a shorter wait is the ordinary spacing of requests, not worth a word
            until = time.strftime("%H:%M:%S", time.localtime(time.time() + left))
            return "waiting", f"waiting for politeness until {until} (in {left:.1f} s)"
        return "running", "running"

    async def hosts(self, limit: int, sort: str) -> list[dict[str, Any]]:
        engine = self._engine
        robots = engine.robots
        rows = await engine.frontier.host_rows(limit)
        return host_dicts(
            rows,
            delay_s=engine.config.delay_s,
            sort=sort,
            robots=robots.describe if robots is not None else lambda _: "not used (--no-robots)",
            last_errors=engine.last_errors,
        )

    async def errors(self) -> dict[str, Any]:
        index = self.manifest()
        return {"by_code": index.by_code, "by_cause": index.by_cause, "examples": index.examples}

    async def workers(self) -> list[dict[str, Any]]:
        status = await self._engine.frontier.status()
        return workers_of(status)


def workers_of(status: FrontierStatus) -> list[dict[str, Any]]:
    return [
        {
            "worker_id": w.worker_id,
            "slots": w.slots,
            "in_flight": w.in_flight,
            "heartbeat_age_s": None if w.heartbeat_age_s is None else round(w.heartbeat_age_s, 1),
            "alive": w.alive,
            "urls_per_s": w.urls_per_s,
        }
        for w in status.workers
    ]


class StoredSource:
    """A crawl this process does not run, read-only: its output directory (manifest and recorded state
    location), or a Redis crawl observed without joining it (`crawlpool dashboard`)."""

    def __init__(
        self, output: Path | None, spec: str, crawl_id: str | None, observer: Frontier | None
    ) -> None:
        self._output = output
        self._spec = spec
        self._crawl_id = crawl_id
        self._observer = observer
        self._index = ManifestIndex((output or Path("/nonexistent")) / MANIFEST_NAME)
        self._window = RateWindow(10.0)
        self._history = History()
        self._hosts_cache: tuple[float, list[HostRow]] | None = None

    @classmethod
    async def open(cls, output: Path | None, spec: str | None, crawl_id: str | None) -> StoredSource:
        """The crawl in `output` (its recorded frontier and crawl id), or the one `spec` names."""
        location = read_location(output) if output is not None else None
        spec = spec or (location.frontier if location is not None else "sqlite")
        crawl_id = crawl_id or (location.crawl_id if location is not None else None)
        if output is None and not is_redis(spec):
            raise UsageError("dashboard: name the crawl's OUTPUT directory (or give --frontier redis://...)")
        _check_directory(output)
        observer = None
        if is_redis(spec):
            if crawl_id is None:
                raise UsageError(
                    "dashboard: a redis frontier needs --crawl-id (printed when the crawl started)"
                )
            observer = await open_frontier(
                spec, Politeness(), output=Path("."), crawl_id=crawl_id, observe=True
            )
        return cls(output, spec, crawl_id, observer)

    async def aclose(self) -> None:
        if self._observer is not None:
            await self._observer.aclose()

    def manifest(self) -> ManifestIndex:
        self._index.refresh()
        return self._index

    async def _frontier_status(self) -> FrontierStatus | None:
        if self._observer is not None:
            return await self._observer.status()
        if self._output is None:
            return None
        return await read_status(self._spec, output=self._output, crawl_id=self._crawl_id)

    async def status(self) -> dict[str, Any]:
        index = self.manifest()
        frontier = await self._frontier_status()
        if frontier is None:  # a memory-frontier crawl: its manifest is all that is left
            frontier = FrontierStatus(state="finished", done=index.records)
        elapsed = _elapsed_s(frontier)
        done = frontier.done if frontier.done is not None else index.records
        snapshot = Snapshot(
            pages=frontier.pages_stored if frontier.pages_stored is not None else index.stored,
            records=done,
            discovered=frontier.seen if frontier.seen is not None else done,
            queued=frontier.queued or 0,
            in_flight=frontier.in_flight or 0,
            bytes=index.stored_bytes,
            errors=dict(frontier.failures) if frontier.failures is not None else dict(index.by_code),
            hosts_active=0,
            hosts_waiting=0,
            elapsed_s=elapsed,
            max_pages=None,
        )
        self._window.add(snapshot)
        rate = self._window.rate
        self._history.add(snapshot.elapsed_s, snapshot.pages, snapshot.queued, snapshot.records)
        return overview(
            snapshot,
            state=frontier.state,
            state_text=state_words(frontier),
            rate=rate,
            eta=eta_s(snapshot, rate, draining=self._window.draining),
            history=self._history,
            causes=index.by_cause,
        )

    async def hosts(self, limit: int, sort: str) -> list[dict[str, Any]]:
        if self._observer is not None:
            rows = await self._observer.host_rows(limit)
        else:
            rows = self._stored_host_rows(limit)
        return host_dicts(rows, delay_s=0.0, sort=sort)

    def _stored_host_rows(self, limit: int) -> list[HostRow]:
        """From the SQLite state, read again only when the file changed (it is one scan of the URLs)."""
        path = sqlite_path(self._spec, self._output) if self._output is not None else None
        if path is None or not path.exists():
            return []
        mtime = path.stat().st_mtime
        if self._hosts_cache is None or self._hosts_cache[0] != mtime:
            assert self._output is not None
            rows = read_host_rows(self._spec, output=self._output, limit=max(limit, 100))
            self._hosts_cache = (mtime, rows)
        return self._hosts_cache[1][:limit]

    async def errors(self) -> dict[str, Any]:
        index = self.manifest()
        return {"by_code": index.by_code, "by_cause": index.by_cause, "examples": index.examples}

    async def workers(self) -> list[dict[str, Any]]:
        frontier = await self._frontier_status()
        return workers_of(frontier) if frontier is not None else []


def _check_directory(output: Path | None) -> None:
    if output is not None and not output.is_dir():
        raise UsageError(f"dashboard: {output} is not a directory")


def _elapsed_s(status: FrontierStatus) -> float:
    """Seconds from the crawl's start to its last update (or now, while it runs)."""
    if status.started is None:
        return 0.0
    start = datetime.fromisoformat(status.started.replace("Z", "+00:00"))
    end = datetime.now(UTC)
    if status.state != "running" and status.updated is not None:
        end = datetime.fromisoformat(status.updated.replace("Z", "+00:00"))
    return max(0.0, (end - start).total_seconds())

"""--update: a new run over a finished (or stopped) crawl, re-fetching what it stored, conditionally.

Theory of operation. Runs are kept apart by per-run manifests and states. Starting an update
(`start_update`) moves the crawl's `manifest.jsonl` and SQLite state into `.crawlpool/runs/<n>/` and
builds `.crawlpool/previous.db` from that manifest: one row per URL whose page was stored, with its
record. The update is then an ordinary crawl in OUTPUT, with a fresh frontier and manifest (so each URL
gets exactly one record in this run, across kill -9 and `--resume`, by the same machinery as any crawl),
and three hooks into the engine, all answered from `previous.db`:

    before a fetch    `headers`: If-None-Match / If-Modified-Since from the stored record's validators;
                      `skip`: a URL a sitemap dated (`lastmod`) before its stored fetch is not fetched
    before an ack     `classify`: the record's `change` (below); a 304 keeps the stored body's path
    crawl drained     `sweep`: every stored URL not met again through links or sitemaps is queued (once
                      per process; the frontier drops what it has seen), so every stored URL is re-fetched
                      and one no link reaches any more can still be found `gone`

    change      when
    unchanged   304 Not Modified, the same sha256 as stored, or (with --sitemaps) a `lastmod` older
                than the stored fetch (no request: `status` null, the stored record's `fetched_at`)
    changed     a body whose sha256 differs; it replaced the stored one in place (temp file + rename)
    new         a page stored now that was not stored before
    gone        404 or 410 for a URL that had a stored page (its file is kept)

`previous.db` stays through the run, so a resumed update classifies against the same previous run; the
next `--update` archives it with the run it described. `OUTPUT/changes.json` is written when the run
ends (`write_changes`, from the run's manifest): counts and URL lists of the four changes and failures.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crawlpool.errors import ConfigError
from crawlpool.exchange import IDENTICAL_PAYLOAD, SERVER_NOT_MODIFIED, Exchange, Revisit
from crawlpool.frontier.base import Request
from crawlpool.records import Page
from crawlpool.scope import Scope
from crawlpool.store import MANIFEST_NAME, STATE_DIR
from crawlpool.urls import fingerprint, host_key

PREVIOUS_NAME = "previous.db"
RUNS_DIR = "runs"
CHANGES_NAME = "changes.json"
GONE_STATUSES = frozenset({404, 410})
CHANGES = ("unchanged", "changed", "new", "gone")
SWEEP_BATCH = 1000
_DONE = 3  # frontier/sqlite.py's DONE state: a URL whose record is committed


# -- the decisions (pure) -------------------------------------------------------------------------


def conditional_headers(previous: Page | None) -> dict[str, str]:
    """The headers that ask the server for the body only if it changed since `previous` was fetched."""
    headers: dict[str, str] = {}
    if previous is not None and previous.etag:
        headers["If-None-Match"] = previous.etag
    if previous is not None and previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    return headers


def lastmod_skip(request: Request, previous: Page | None) -> Page | None:
    """The `unchanged` record of a URL a sitemap dated before its stored fetch, or None to fetch it
    (no lastmod, nothing stored, or a date that does not parse)."""
    if request.lastmod is None or previous is None:
        return None
    lastmod, fetched = _instant(request.lastmod), _instant(previous.fetched_at)
    if lastmod is None or fetched is None or lastmod >= fetched:
        return None
    return replace(
        previous,
        depth=request.depth,
        referrer=request.referrer,
        status=None,
        elapsed_ms=0,
        error=None,
        change="unchanged",
    )


def classify(page: Page, previous: Page | None) -> Page:
    """`page` with its `change` against `previous` (the stored record of its URL, or None)."""
    if page.kind != "page":
        return page
    if previous is None:
        return replace(page, change="new") if page.path is not None else page
    if page.status == 304:
        return replace(
            page,
            content_type=page.content_type or previous.content_type,
            path=previous.path,
            bytes=previous.bytes,
            sha256=previous.sha256,
            etag=page.etag or previous.etag,
            last_modified=page.last_modified or previous.last_modified,
            change="unchanged",
        )
    if page.path is not None:
        return replace(page, change="unchanged" if page.sha256 == previous.sha256 else "changed")
    if page.status in GONE_STATUSES:
        return replace(page, change="gone")
    return page


def _instant(text: str) -> datetime | None:
    """A W3C datetime (`2024-05-01`, `2024-05-01T10:00:00+02:00`, `...Z`) as an aware UTC datetime."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# -- the previous run ------------------------------------------------------------------------------


def previous_path(output: Path) -> Path:
    return output / STATE_DIR / PREVIOUS_NAME


def start_update(output: Path, state_file: Path | None) -> int:
    """Archive the crawl in OUTPUT as run n and make `previous.db` from its manifest; return n + 1,
    the number of the update run. Raises ConfigError when there is no crawl to update, when its state
    is in use, or when it is itself an update run that was stopped (finish it with --resume first)."""
    manifest = output / MANIFEST_NAME
    state = output / STATE_DIR
    previous = previous_path(output)
    if not manifest.exists() and previous.exists() and not (state_file is not None and state_file.exists()):
        return Recrawl(previous).close_with_run()  # archived, but the run never started: start it now
    if not manifest.exists():
        raise ConfigError(f"update: there is no crawl in {output} to update ({manifest} not found)")
    lock_fd = _lock(state_file) if state_file is not None else None
    try:
        if state_file is not None and previous.exists() and _unfinished(state_file):
            raise ConfigError(
                f"update: the update run in {output} was stopped before it finished; "
                "finish it with --resume first"
            )
        runs = state / RUNS_DIR
        run = 1 + sum(1 for child in runs.iterdir() if child.name.isdigit()) if runs.exists() else 1
        part = state / f"{PREVIOUS_NAME}.part"
        _build_previous(part, manifest, run + 1)
        archive = runs / str(run)
        archive.mkdir(parents=True, exist_ok=True)
        movable = [previous, manifest]
        if state_file is not None:
            movable += [state_file.with_name(state_file.name + suffix) for suffix in ("", "-wal", "-shm")]
        for path in movable:
            if path.exists():
                os.replace(path, archive / path.name)
        os.replace(part, previous)
    except OSError as exc:
        raise ConfigError(f"update: cannot archive the crawl in {output}: {exc.strerror or exc}") from None
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
    return run + 1


def _lock(state_file: Path) -> int | None:
    lock_path = state_file.with_name(state_file.name + ".lock")
    if not lock_path.exists():
        return None
    fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"update: the crawl state {state_file} is in use by another crawlpool process"
        ) from None
    return fd


def _unfinished(state_file: Path) -> bool:
    if not state_file.exists():
        return False
    conn = sqlite3.connect(state_file)
    try:  # closed at once: `with` alone would keep it open, and its lock with it, until collected
        (left,) = conn.execute(f"SELECT count(*) FROM urls WHERE state != {_DONE}").fetchone()
    finally:
        conn.close()
    return bool(left)


def _build_previous(path: Path, manifest: Path, run: int) -> None:
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("CREATE TABLE pages(url TEXT PRIMARY KEY, page TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('run', ?)", (str(run),))
        with manifest.open(encoding="utf-8") as fh:
            batch: list[tuple[str, str]] = []
            for line in fh:
                record = _parse_line(line)
                if record is not None and record.get("path") is not None:
                    batch.append((record["url"], line.strip()))
                if len(batch) >= SWEEP_BATCH:
                    conn.executemany("INSERT OR REPLACE INTO pages VALUES (?, ?)", batch)
                    batch.clear()
            conn.executemany("INSERT OR REPLACE INTO pages VALUES (?, ?)", batch)
        conn.commit()
    finally:
        conn.close()


def _parse_line(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None  # a line cut by a kill: its URL is simply not in the previous run
    return record if isinstance(record, dict) and "url" in record else None


class Recrawl:
    """The engine's view of the previous run (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path)
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'run'").fetchone()
        self.run = int(row[0]) if row else 2
        self._swept = False

    @classmethod
    def open(cls, output: Path) -> Recrawl | None:
        """The previous run of OUTPUT's current run, or None when the current run is no update."""
        path = previous_path(output)
        return cls(path) if path.exists() else None

    def close(self) -> None:
        self._conn.close()

    def close_with_run(self) -> int:
        """Close, answering the number of the run this previous run precedes."""
        self.close()
        return self.run

    def previous(self, url: str) -> Page | None:
        row = self._conn.execute("SELECT page FROM pages WHERE url = ?", (url,)).fetchone()
        return Page.from_dict(json.loads(row[0])) if row else None

    def headers(self, url: str) -> dict[str, str]:
        return conditional_headers(self.previous(url))

    def skip(self, request: Request) -> Page | None:
        return lastmod_skip(request, self.previous(request.url)) if request.lastmod else None

    def classify(self, page: Page) -> Page:
        return classify(page, self.previous(page.url))

    def revisit(self, page: Page, exchange: Exchange) -> Exchange:
        """`exchange` to archive for a classified `page`: as a revisit of the earlier capture when
        the page is unchanged (a 304: server-not-modified; the same body: identical-payload-digest)."""
        previous = self.previous(page.url)
        # A revisit must refer to a capture in an archive: without one (the earlier run did not
        # archive), the answer is archived as an ordinary response.
        if page.change != "unchanged" or previous is None or previous.warc_file is None:
            return exchange
        profile = SERVER_NOT_MODIFIED if page.status == 304 else IDENTICAL_PAYLOAD
        when = datetime.fromisoformat(previous.fetched_at.replace("Z", "+00:00"))
        return replace(exchange, revisit=Revisit(profile, previous.url, when))

    async def sweep(self, queue: Callable[[Sequence[Request]], Awaitable[None]], scope: Scope) -> bool:
        """Queue every stored URL of the previous run that is still in scope, once per process.
        False: this process swept already."""
        if self._swept:
            return False
        self._swept = True
        batch: list[Request] = []
        for page in self._pages():
            if scope.allows(page.url):
                batch.append(
                    Request(page.url, fingerprint(page.url), host_key(page.url), page.depth, page.referrer)
                )
            if len(batch) >= SWEEP_BATCH:
                await queue(batch)
                batch = []
        if batch:
            await queue(batch)
        return True

    def _pages(self) -> Iterator[Page]:
        last = ""
        while True:
            rows = self._conn.execute(
                "SELECT url, page FROM pages WHERE url > ? ORDER BY url LIMIT ?", (last, SWEEP_BATCH)
            ).fetchall()
            for url, text in rows:
                last = url
                yield Page.from_dict(json.loads(text))
            if len(rows) < SWEEP_BATCH:
                return


def write_changes(output: Path, run: int, *, finished: bool) -> dict[str, Any]:
    """Write OUTPUT/changes.json from the run's manifest (atomically) and return what it says."""
    lists: dict[str, list[str]] = {name: [] for name in CHANGES}
    unchanged_by = {"304": 0, "sha256": 0, "sitemap": 0}
    failed: list[dict[str, str]] = []
    manifest = output / MANIFEST_NAME
    if manifest.exists():
        with manifest.open(encoding="utf-8") as fh:
            for line in fh:
                record = _parse_line(line)
                if record is None:
                    continue
                change = record.get("change")
                if change in lists:
                    lists[change].append(record["url"])
                if change == "unchanged":
                    status = record.get("status")
                    unchanged_by["304" if status == 304 else "sitemap" if status is None else "sha256"] += 1
                elif record.get("error") is not None and change != "gone":
                    failed.append({"url": record["url"], "error": record["error"]})
    report: dict[str, Any] = {
        "run": run,
        "finished": finished,
        "counts": {**{name: len(urls) for name, urls in lists.items()}, "failed": len(failed)},
        "unchanged_by": unchanged_by,
        **lists,
        "failed": failed,
    }
    tmp = output / STATE_DIR / "tmp" / f"{CHANGES_NAME}.part"
    tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, output / CHANGES_NAME)
    return report

"""Reading what a crawl left behind: the manifest's records, its failures, its frontier's state."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crawlpool.errors import UsageError
from crawlpool.frontier import (
    LOCATION_FILE,
    FrontierStatus,
    is_redis,
    list_redis_crawls,
    read_location,
    read_status,
    sqlite_path,
    without_password,
)
from crawlpool.outcome import ended_text
from crawlpool.records import ERROR_CODES, error_codes
from crawlpool.store import MANIFEST_NAME


def read_manifest(output: Path) -> Iterator[dict[str, Any]]:
    """The records of `OUTPUT/manifest.jsonl` in order. A last line cut short by a crash is skipped.

    Raises UsageError when OUTPUT holds no manifest."""
    path = output / MANIFEST_NAME
    try:
        fh = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{output} holds no crawl ({MANIFEST_NAME} not found)") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    with fh:
        for line in fh:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # only the last line can be partial: it is repaired on resume


def failures(output: Path, code: str | None = None) -> Iterator[dict[str, Any]]:
    """The records with an error; with `code`, those whose error is that code or was caused by it
    (`dns` finds `robots: dns: robots.txt unreachable: ...` too).

    Raises UsageError for a code that no record can have, naming the ones that exist."""
    if code is not None and code not in ERROR_CODES:
        raise UsageError(f"failures: unknown error code {code!r}{_code_hint(code)}")
    for record in read_manifest(output):
        error = record.get("error")
        if error and (code is None or code in error_codes(error)):
            yield record


def _code_hint(code: str) -> str:
    lowered = code.lower()
    if len(code) == 3 and code[0] in "45" and (code.isdigit() or lowered[1:] == "xx"):
        return f" (HTTP {code} is recorded as http_{code[0]}xx: try --code http_{code[0]}xx)"
    close = difflib.get_close_matches(code.lower(), sorted(ERROR_CODES), n=1)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (known codes: {', '.join(sorted(ERROR_CODES))})"


async def crawl_status(
    output: Path | None, frontier: str | None = None, crawl_id: str | None = None
) -> list[str]:
    """`crawlpool status`: what a crawl has done and has left, as lines of text.

    The crawl's state is where OUTPUT recorded it (`.crawlpool/frontier.json`), unless `frontier`
    names it (then `crawl_id` too for Redis, else the recorded one); with neither, OUTPUT's own
    SQLite file. A Redis `frontier` with neither OUTPUT nor `crawl_id`: one line per crawl there.
    Raises UsageError when there is no crawl there (or its state cannot be read)."""
    location = read_location(output) if output is not None else None
    spec = frontier or (location.frontier if location is not None else "sqlite")
    if crawl_id is None and location is not None:
        crawl_id = location.crawl_id
    if output is None and not is_redis(spec):
        raise UsageError("status: name the crawl's OUTPUT directory (or give --frontier redis://...)")
    if output is None and crawl_id is None:
        return crawl_list_lines(without_password(spec), await list_redis_crawls(spec))
    status = await read_status(spec, output=output, crawl_id=crawl_id)
    if status is None:
        assert output is not None
        state_file = sqlite_path(spec, output)
        manifest = output / MANIFEST_NAME
        if not manifest.exists():
            where = f"{state_file} not found" if state_file is not None else "no manifest"
            raise UsageError(f"status: {output} holds no crawl ({where})")
        if spec == "memory":
            heading = "no frontier state (a memory-frontier crawl): from the manifest"
        elif location is None and frontier is None:  # a crawl from before OUTPUT recorded its frontier
            heading = (
                f"no frontier state found ({output / LOCATION_FILE} and {state_file} missing; "
                "give --frontier if it lives elsewhere): from the manifest"
            )
        else:
            heading = f"no frontier state ({state_file} not found): from the manifest"
        status = FrontierStatus(state="stopped", updated=modified_at(manifest))
        return status_lines(_manifest_counts(output, status), output, heading)
    if status.done is None and output is not None:
        status = _manifest_counts(output, status)  # another process holds it: its manifest so far
    return status_lines(status, output)


def status_lines(status: FrontierStatus, output: Path | None, heading: str | None = None) -> list[str]:
    """The lines of `crawlpool status` for any backend's status; what a backend does not know (None)
    is left out."""
    title = f"crawl in {output}" if output is not None else f"crawl {status.crawl_id}"
    lines = [f"{title}: {heading or _heading(status)}"]
    if output is not None and status.crawl_id is not None:
        lines.append(f"  crawl id       {status.crawl_id}")
    if status.pages_stored is not None:
        lines.append(f"  pages stored   {status.pages_stored:,}")
    if status.done is not None:
        of = f" (of {status.seen:,} discovered)" if status.seen is not None else ""
        lines.append(f"  URLs done      {status.done:,}{of}")
    if status.queued is not None:
        retrying = f" ({status.retrying:,} waiting to retry)" if status.retrying else ""
        lines.append(f"  queued         {status.queued:,}{retrying}")
    if status.in_flight is not None:
        stale = (
            " (stale leases: --resume gives them back)"
            if status.in_flight and status.state == "stopped"
            else ""
        )
        lines.append(f"  in flight      {status.in_flight:,}{stale}")
    if status.failures is not None:
        lines.append(_failed_line(status.failures))
    if status.hosts is not None:
        lines.append(f"  hosts          {status.hosts:,}")
    if status.politeness is not None:
        per_host, delay_s = status.politeness.per_host, status.politeness.delay_s
        lines.append(f"  politeness     per_host {per_host}, delay {delay_s:g} s")
    lines += [
        f"  {name:<14} {value}"
        for name, value in (("started", status.started), ("updated", status.updated))
        if value
    ]
    for host in status.backoff:
        blocked = f", blocked {host.blocked_for_s:.1f} s more" if host.blocked_for_s else ""
        adaptive = f" ({host.extra_s:g} s of it adaptive backoff)" if host.extra_s else ""
        lines.append(f"  backing off    {host.host}: {host.delay_s:g} s between requests{adaptive}{blocked}")
    for worker in status.workers:
        age = worker.heartbeat_age_s
        beat = "never" if age is None else f"{age:.1f} s ago"
        beat += "" if worker.alive else " (stale: its slots come back after its lease)"
        held = f"{worker.slots} host slot{'' if worker.slots == 1 else 's'}, {worker.in_flight} in flight"
        lines.append(f"  worker {worker.worker_id}: {held}, last heartbeat {beat}")
    return lines


def state_words(status: FrontierStatus) -> str:
    """The state of a crawl as `crawlpool status` words it (the dashboard shows the same)."""
    return _heading(status)


def crawl_list_lines(where: str, statuses: Sequence[FrontierStatus]) -> list[str]:
    """`crawlpool status --frontier redis://...` with no crawl id: one line per crawl at that Redis."""
    if not statuses:
        return [f"no crawls at {where}"]
    lines = [f"{len(statuses)} crawl{'s' if len(statuses) != 1 else ''} at {where}:"]
    width = max(len(str(status.crawl_id)) for status in statuses)
    for status in statuses:
        failed = sum((status.failures or {}).values())
        counts = (
            f"{status.done or 0:,} URLs done (of {status.seen or 0:,} discovered), "
            f"{status.queued or 0:,} queued, {failed:,} failed"
        )
        lines.append(f"  {status.crawl_id:<{width}}  {_shared_state(status)}: {counts}")
    lines.append("one crawl in full: crawlpool status --frontier URL --crawl-id NAME")
    return lines


def _heading(status: FrontierStatus) -> str:
    """How the crawl ended, in the end-of-crawl summary's words (`outcome.ended_text`); or running."""
    if status.state == "finished":
        return ended_text("unreachable" if status.ended == "unreachable" else "finished", 0)
    if status.live_workers is not None:  # a shared crawl: workers come and go, none "holds" it
        hint = "; start one with the same --frontier and --crawl-id to continue"
        return _shared_state(status) + (hint if status.state == "stopped" else "")
    if status.state == "stopped":
        ended = status.ended if status.ended in ("max_pages", "stopped") else None
        return ended_text(ended, status.queued)
    holder = f" (pid {status.holder})" if status.holder is not None else ""
    counted = "; counts from its manifest so far" if status.seen is None else ""
    return f"running{holder}{counted}"


def _shared_state(status: FrontierStatus) -> str:
    """The state of a shared (Redis) crawl in a few words: a crawl no worker is on is not running,
    whatever its workers last wrote."""
    live = status.live_workers or 0
    if status.state == "finished":
        return "finished"
    if status.state == "stopped" or not live:
        return "no live worker"
    return f"running ({live} live worker{'s' if live != 1 else ''})"


def _failed_line(errors: Mapping[str, int]) -> str:
    by_count = sorted(errors.items(), key=lambda kv: -kv[1])
    detail = ": " + ", ".join(f"{code} {n:,}" for code, n in by_count) if errors else ""
    return f"  failed         {sum(errors.values()):,}{detail}"


def modified_at(path: Path) -> str | None:
    """When `path` last changed, as an ISO time in UTC (None when it cannot be read)."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _manifest_counts(output: Path, status: FrontierStatus) -> FrontierStatus:
    """`status` with the records, pages stored and failures counted from OUTPUT's manifest."""
    records = stored = 0
    errors: dict[str, int] = {}
    for record in read_manifest(output):
        records += 1
        stored += record.get("path") is not None
        if record.get("error"):
            code = str(record["error"]).split(":", 1)[0]
            errors[code] = errors.get(code, 0) + 1
    return replace(status, done=records, pages_stored=stored, failures=errors)

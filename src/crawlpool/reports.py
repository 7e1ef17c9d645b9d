"""Reading what a crawl left behind: the manifest's records, its failures, its frontier's state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crawlpool.errors import FrontierError, UsageError
from crawlpool.frontier import sqlite_path
from crawlpool.frontier.sqlite import read_state, running_pid
from crawlpool.store import MANIFEST_NAME


def read_manifest(output: Path) -> Iterator[dict[str, Any]]:
    """The records of `OUTPUT/manifest.jsonl` in order. A last line cut short by a crash is skipped.

    Raises UsageError when OUTPUT holds no manifest."""
    path = output / MANIFEST_NAME
    try:
        fh = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{output}: no crawl here ({MANIFEST_NAME} not found)") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    with fh:
        for line in fh:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # only the last line can be partial: it is repaired on resume


def failures(output: Path, code: str | None = None) -> Iterator[dict[str, Any]]:
    """The records with an error (only those whose error code is `code`, when given)."""
    for record in read_manifest(output):
        error = record.get("error")
        if error and (code is None or error.split(":", 1)[0] == code):
            yield record


def crawl_status(output: Path, frontier: str = "sqlite") -> list[str]:
    """`crawlpool status`: what the crawl in OUTPUT has done and has left, as lines of text.

    Raises UsageError when OUTPUT holds no crawl (or its state cannot be read)."""
    state_file = sqlite_path(frontier, output)
    if state_file is None:
        raise UsageError(f"status: {frontier!r} keeps no state to show; use --frontier redis://... or sqlite")
    manifest_exists = (output / MANIFEST_NAME).exists()
    if not state_file.exists():
        if not manifest_exists:
            raise UsageError(f"status: {output} holds no crawl ({state_file} not found)")
        return _manifest_status(output, "no frontier state (a memory-frontier crawl): from the manifest")
    pid = running_pid(state_file)
    if pid is not None:
        return _manifest_status(output, f"running (pid {pid}); counts from its manifest so far")
    try:
        state = read_state(state_file)
    except FrontierError as exc:
        raise UsageError(f"status: {exc}") from None
    return describe_lines(output, state)


def describe_lines(output: Path, state: dict[str, Any]) -> list[str]:
    """Lines for a SQLite frontier's `describe()` (or `read_state()`) dictionary."""
    queued, leased = int(state["queued"]), int(state["leased"])
    heading = "finished" if queued == 0 and leased == 0 else "stopped; continue it with --resume"
    retrying = f" ({int(state['retrying']):,} waiting to retry)" if state.get("retrying") else ""
    stale = " (stale leases: --resume gives them back)" if leased else ""
    lines = [
        f"crawl in {output}: {heading}",
        f"  pages stored   {int(state['pages_stored']):,}",
        f"  URLs done      {int(state['done']):,} (of {int(state['seen']):,} discovered)",
        f"  queued         {queued:,}{retrying}",
        f"  in flight      {leased:,}{stale}",
        _failed_line(state.get("errors") or {}),
        f"  hosts          {int(state['hosts']):,}",
    ]
    lines += [f"  {key:<14} {state[key]}" for key in ("started", "updated") if state.get(key)]
    return lines


def _failed_line(errors: dict[str, int]) -> str:
    by_count = sorted(errors.items(), key=lambda kv: -kv[1])
    detail = ": " + ", ".join(f"{code} {n:,}" for code, n in by_count) if errors else ""
    return f"  failed         {sum(errors.values()):,}{detail}"


def _manifest_status(output: Path, heading: str) -> list[str]:
    records = stored = 0
    errors: dict[str, int] = {}
    for record in read_manifest(output):
        records += 1
        stored += record.get("path") is not None
        if record.get("error"):
            code = str(record["error"]).split(":", 1)[0]
            errors[code] = errors.get(code, 0) + 1
    return [
        f"crawl in {output}: {heading}",
        f"  pages stored   {stored:,}",
        f"  URLs done      {records:,}",
        _failed_line(errors),
    ]


def redis_status_lines(state: dict[str, Any]) -> list[str]:
    """Lines for a Redis frontier's `describe()`: progress across all workers, and who holds what."""
    counts = state["counts"]
    errors = {code: n for code, n in (state.get("done_by_error") or {}).items() if code != "ok"}
    finished = state.get("state") == "done" or (counts["queued"] == 0 and counts["leased"] == 0)
    lines = [
        f"crawl {state['crawl_id']}: {'finished' if finished else 'in progress'}",
        f"  URLs done      {counts['done']:,} (of {counts['seen']:,} discovered)",
        f"  queued         {counts['queued']:,}",
        f"  in flight      {counts['leased']:,}",
        _failed_line(errors),
        f"  politeness     per_host {state['per_host']}, delay {state['delay_s']:g} s",
    ]
    for worker, info in (state.get("workers") or {}).items():
        age = info.get("heartbeat_age_s")
        beat = "never" if age is None else f"{age:.1f} s ago"
        held = f"{info['slots']} host slots, {info['in_flight']} in flight"
        lines.append(f"  worker {worker}: {held}, last heartbeat {beat}")
    return lines

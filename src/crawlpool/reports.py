"""Reading what a crawl left in its output directory: the manifest's records, its failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crawlpool.errors import UsageError
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

"""The record of one URL tried: a line of `manifest.jsonl` and an item of `CrawlResult.pages`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MANIFEST_FIELDS = (
    "url",
    "final_url",
    "status",
    "content_type",
    "depth",
    "referrer",
    "path",
    "bytes",
    "sha256",
    "fetched_at",
    "elapsed_ms",
    "error",
    "links",
    "warc_file",
    "warc_offset",
)
_ADDED_FIELDS = {"warc_file", "warc_offset"}  # absent from records committed before they existed


@dataclass(frozen=True, slots=True)
class Page:
    """What happened to one URL.

    `status` is None when no response came back (see `error`); `path` is None when no body was stored;
    `error` is None for a page stored whole, else `"<code>: <text>"` with a short code such as
    `http_4xx`, `timeout` or `too_large` (a too-large body is still stored, cut at max_bytes).
    `warc_file` and `warc_offset` are None unless the crawl archives (`--warc`) and a response came.
    """

    url: str
    final_url: str
    status: int | None
    content_type: str | None
    depth: int
    referrer: str | None
    path: str | None
    bytes: int
    sha256: str | None
    fetched_at: str
    elapsed_ms: int
    error: str | None
    links: int
    warc_file: str | None = None
    warc_offset: int | None = None

    @property
    def error_code(self) -> str | None:
        """The code part of `error` (`"timeout"` for `"timeout: no response in 30 s"`), or None."""
        return None if self.error is None else self.error.split(":", 1)[0]

    def to_json(self) -> str:
        """The manifest line for this record (no trailing newline)."""
        # Fields are flat values: a dict of them is what asdict() builds, without its deep copy.
        return json.dumps(
            {name: getattr(self, name) for name in MANIFEST_FIELDS}, ensure_ascii=False, separators=(",", ":")
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Page:
        names = (name for name in MANIFEST_FIELDS if name in data or name not in _ADDED_FIELDS)
        return cls(**{name: data[name] for name in names})

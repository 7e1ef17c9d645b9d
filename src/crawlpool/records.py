"""The record of one URL tried: a line of `manifest.jsonl` and an item of `CrawlResult.pages`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

try:  # optional (crawlpool[fast]): a record's line costs a quarter of json.dumps's time
    import orjson as _orjson
except ImportError:  # pragma: no cover - the test extra installs it
    _orjson = None  # type: ignore[assignment]

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
    "kind",
    "etag",
    "last_modified",
    "change",
    "warc_file",
    "warc_offset",
)
# Fields added after the first release: a record written before them (kept by a crawl being resumed)
# reads as these values.
_ADDED_DEFAULTS: dict[str, Any] = {
    "kind": "page",
    "etag": None,
    "last_modified": None,
    "change": None,
    "warc_file": None,
    "warc_offset": None,
}


# Every code an `error` can start with, for `crawlpool failures --code` (README's "Error codes").
ERROR_CODES = frozenset(
    {
        "timeout",
        "dns",
        "connect",
        "tls",
        "truncated",
        "too_large",
        "encoding",
        "protocol",
        "invalid_url",
        "client",
        "http_4xx",
        "http_5xx",
        "off_scope",
        "redirect",
        "redirect_loop",
        "robots",
        "trap",
        "internal",
        "blocked_address",
        "sitemap",  # --sitemaps: a sitemap that is malformed XML, empty, or corrupt gzip
        "sitemap_limit",  # --sitemaps: past 50,000 URLs or 50 MB; the rest was ignored
    }
)
# Codes meaning the host could not be reached at all (as opposed to answering badly).
UNREACHABLE_CODES = frozenset({"dns", "connect", "tls", "timeout"})
_CODE = re.compile(r"[a-z][a-z0-9_]*")


def error_codes(error: str | None) -> tuple[str, ...]:
    """The codes an error text starts with, outermost first: `"robots: dns: robots.txt unreachable: ..."`
    is ("robots", "dns") — recorded as `robots`, caused by `dns`; `"timeout: no response"` is
    ("timeout",). Empty for None."""
    if error is None:
        return ()
    codes: list[str] = []
    for part in error.split(":"):
        part = part.strip()
        if not (codes and part not in ERROR_CODES) and _CODE.fullmatch(part):
            codes.append(part)
            continue
        break
    return tuple(codes) or (error.split(":", 1)[0],)


@dataclass(frozen=True, slots=True)
class Page:
    """What happened to one URL.

    `status` is None when no response came back (see `error`); `path` is None when no body was stored;
    `error` is None for a page stored whole, else `"<code>: <text>"` with a short code such as
    `http_4xx`, `timeout` or `too_large` (a too-large body is still stored, cut at max_bytes).
    `kind` is `page`, `requisite` for a page requisite (`--page-requisites`: stored, never followed),
    or `sitemap` for a sitemap read for its URLs: its body is not stored, `bytes` counts what was read
    of it (decompressed) and `links` its entries. `etag` and `last_modified` are
    the response's validators, sent back by `--update`; `change` is what an update run found
    (`unchanged`, `changed`, `new`, `gone`; None outside an update run, or for other records).
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
    kind: str = "page"
    etag: str | None = None
    last_modified: str | None = None
    change: str | None = None
    warc_file: str | None = None
    warc_offset: int | None = None

    @property
    def error_code(self) -> str | None:
        """The code part of `error` (`"timeout"` for `"timeout: no response in 30 s"`), or None."""
        return None if self.error is None else self.error.split(":", 1)[0]

    @property
    def error_cause(self) -> str | None:
        """The code of what caused the error, when the error says (`"dns"` for `"robots: dns: ..."`)."""
        codes = error_codes(self.error)
        return codes[1] if len(codes) > 1 else None

    def to_json(self) -> str:
        """The manifest line for this record (no trailing newline)."""
        # Fields are flat values: a dict of them is what asdict() builds, without its deep copy.
        data = {name: getattr(self, name) for name in MANIFEST_FIELDS}
        if _orjson is not None:
            try:
                return _orjson.dumps(data).decode()
            except TypeError:  # a lone surrogate (a header aiohttp decoded with surrogateescape)
                pass  # json writes it as json always did
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Page:
        return cls(
            **{
                name: data.get(name, _ADDED_DEFAULTS[name]) if name in _ADDED_DEFAULTS else data[name]
                for name in MANIFEST_FIELDS
            }
        )

"""One HTTP exchange as it went over the wire: what an archive (WARC) record is made of.

The fetcher fills this in only when the crawl archives (`--warc`); it is plain data, so that the WARC
writer, which runs in a thread, never touches aiohttp objects. `payload` is the body as sent, with its
Content-Encoding (gzip stays gzip): replay tools decode it themselves, and a body stored decoded under
its original `Content-Encoding` header would not replay. Chunked framing is not in it: aiohttp removes
it, so the writer must not claim it (see `warc.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

SERVER_NOT_MODIFIED = "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
IDENTICAL_PAYLOAD = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"


@dataclass(frozen=True, slots=True)
class Revisit:
    """An answer that repeats what an earlier record holds (`--update`): archived as a `revisit`
    record of `profile` (a 304: server-not-modified; the same body again: identical-payload-digest)
    that refers to the earlier capture of `url` at `date` (UTC)."""

    profile: str
    url: str
    date: datetime


@dataclass(frozen=True, slots=True)
class Exchange:
    """A request sent and the response that came back. `truncated` names why `payload` is not the
    whole body (`"length"`: cut at max_bytes; `"disconnect"`: the body ended early or could not be read
    to its end), or is None for a whole one."""

    url: str
    started: datetime  # UTC, when the request was sent: the records' WARC-Date
    request_target: str  # path and query, as on the request line
    request_headers: tuple[tuple[str, str], ...]
    http_version: str  # "1.1"
    status: int
    reason: str
    response_headers: tuple[tuple[str, str], ...]  # as received, in order, duplicates kept
    payload: bytes
    truncated: str | None
    peer_ip: str | None
    revisit: Revisit | None = None

"""URL records as the Redis frontier stores them: compact JSON, the fingerprint as a string (Lua
numbers are doubles, which would round a 64-bit fingerprint); and the page records of a worker's
records stream, read back a batch at a time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

from crawlpool.frontier.base import Request
from crawlpool.records import Page

RECORDS_BATCH = 500  # stream entries per XRANGE when committed_pages reads the records
Entries = list[tuple[str, dict[str, str]]]  # (stream id, fields) as XRANGE answers


def encode(request: Request) -> str:
    data: dict[str, object] = {
        "url": request.url,
        "fp": str(request.fp),
        "host": request.host,
        "depth": request.depth,
        "referrer": request.referrer,
        "attempts": request.attempts,
        "hops": request.hops,
        "sr": request.self_redirects,
    }
    # Written only when set, so a page's record stays as short as before (and as older workers wrote).
    if request.kind != "page":
        data["kind"] = request.kind
    if request.lastmod is not None:
        data["lastmod"] = request.lastmod
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def decode(record: str) -> Request:
    data = json.loads(record)
    return Request(
        data["url"],
        int(data["fp"]),
        data["host"],
        data["depth"],
        data["referrer"],
        data["attempts"],
        data.get("hops", 0),
        data.get("sr", 0),
        data.get("kind", "page"),
        data.get("lastmod"),
    )


async def worker_pages(read: Callable[[str, int], Awaitable[Entries]], worker: str) -> AsyncIterator[Page]:
    """The pages `worker` committed, in commit order, from its `records:<worker>` stream (or any stream
    with a `worker` field: others' entries are skipped): `read(after, count)`
    answers XRANGE from `after` to the end, at most `count` entries; RECORDS_BATCH entries are read at
    a time, so the whole stream is never held at once."""
    after = "-"
    while True:
        entries = await read(after, RECORDS_BATCH)
        for _, fields in entries:
            if fields.get("worker") == worker:
                yield Page.from_dict(json.loads(fields["page"]))
        if len(entries) < RECORDS_BATCH:
            return
        after = "(" + entries[-1][0]

"""URL records as the Redis frontier stores them: compact JSON, the fingerprint as a string (Lua
numbers are doubles, which would round a 64-bit fingerprint)."""

from __future__ import annotations

import json

from crawlpool.frontier.base import Request


def encode(request: Request) -> str:
    return json.dumps(
        {
            "url": request.url,
            "fp": str(request.fp),
            "host": request.host,
            "depth": request.depth,
            "referrer": request.referrer,
            "attempts": request.attempts,
            "hops": request.hops,
            "sr": request.self_redirects,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


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
    )

"""Crawler-trap guards: URLs that are almost always generated, not authored, are never followed.

A calendar that links to next month forever, a relative link that appends a path segment on every
page (`/a/a/a/a/...`) and session ids glued onto ever-longer URLs are the classic traps. A link is
refused, and recorded in the manifest with error `trap`, when its normalized URL

- is longer than `max_url_chars` (default 2083, the longest URL old browsers accepted),
- has more than `max_segments` path segments (default 20), or
- repeats one path segment more than `max_repeats` times in a row (default 2: `/a/a/` is fine,
  `/a/a/a/` is not).

The limits are CLI flags (`--max-url-chars`, `--max-segments`, `--max-repeats`) and config keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True, slots=True)
class TrapLimits:
    max_url_chars: int = 2083
    max_segments: int = 20
    max_repeats: int = 2


def trap_reason(url: str, limits: TrapLimits) -> str | None:
    """Why `url` (normalized) looks like a trap, or None when it may be followed."""
    if len(url) > limits.max_url_chars:
        return f"URL longer than {limits.max_url_chars} characters"
    # The path of a normalized URL starts at the first "/" after "scheme://" (runs per link: no urlsplit).
    start = url.find("/", url.find("//") + 2)
    if start < 0:
        return None
    end = len(url)
    for mark in "?#":
        found = url.find(mark, start)
        if 0 <= found < end:
            end = found
    slashes = url.count("/", start, end)
    if slashes <= min(limits.max_repeats, limits.max_segments):
        return None  # too few segments to break either rule: the common case
    segments = url[start + 1 : end].split("/")
    if segments and segments[-1] == "":
        segments.pop()  # a trailing slash is not a segment
    if len(segments) > limits.max_segments:
        return f"more than {limits.max_segments} path segments"
    if len(set(segments)) == len(segments):
        return None  # no segment occurs twice, let alone in a row
    run = 1
    for previous, segment in pairwise(segments):
        run = run + 1 if segment == previous else 1
        if run > limits.max_repeats:
            return f"path segment {segment!r} repeated more than {limits.max_repeats} times in a row"
    return None

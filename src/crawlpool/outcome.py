"""How a crawl ended, in the words the summary and `crawlpool status` share.

The engine decides the outcome (`CrawlStats.outcome`), `run_crawl` keeps it with the crawl's state (meta
key `ended`), and both the end-of-crawl summary and `crawlpool status` describe it with `ended_text`, so
the two never tell different stories about the same crawl.
"""

from __future__ import annotations

from typing import Literal, get_args

Outcome = Literal["finished", "max_pages", "stopped", "unreachable"]
OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))
ENDED_META_KEY = "ended"
RESUME_HINT = "continue it with --resume"


def ended_text(outcome: str | None, queued: int | None) -> str:
    """`finished`, `stopped at --max-pages with 228 URLs queued; continue it with --resume`, ...

    `outcome` None: the crawl did not say how it ended (killed): it is described by what is left."""
    left = f" with {queued:,} URLs queued" if queued else ""
    if outcome == "finished" or (outcome is None and queued == 0):
        return "finished"
    if outcome == "unreachable":
        return "ended: no seed could be reached (see the failures below)"
    if outcome == "max_pages":
        return f"stopped at --max-pages{left}; {RESUME_HINT}"
    if outcome == "stopped":
        return f"stopped before it was done{left}; {RESUME_HINT}"
    return f"stopped{left}; {RESUME_HINT}"

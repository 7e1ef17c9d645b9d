"""Counters of a crawl, kept as records are committed; `CrawlResult.stats` is a snapshot of them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from crawlpool.records import Page


@dataclass(slots=True)
class CrawlStats:
    """`pages` counts stored pages; `records` every URL tried (one manifest line each); `requests`
    every page request sent (robots.txt requests apart), so `retries` of them were second tries."""

    pages: int = 0
    records: int = 0
    errors: int = 0
    bytes: int = 0
    requests: int = 0
    retries: int = 0
    robots_blocked: int = 0
    traps: int = 0
    elapsed_s: float = 0.0
    by_status: Counter[str] = field(default_factory=Counter)
    by_error: Counter[str] = field(default_factory=Counter)

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def count(self, page: Page) -> None:
        self.records += 1
        if page.path is not None:
            self.pages += 1
            self.bytes += page.bytes
        self.by_status[str(page.status) if page.status is not None else "none"] += 1
        code = page.error_code
        if code is not None:
            self.errors += 1
            self.by_error[code] += 1

    def as_dict(self) -> dict[str, object]:
        return {
            "pages": self.pages,
            "records": self.records,
            "errors": self.errors,
            "bytes": self.bytes,
            "requests": self.requests,
            "retries": self.retries,
            "robots_blocked": self.robots_blocked,
            "traps": self.traps,
            "elapsed_s": round(self.elapsed_s, 3),
            "pages_per_s": round(self.pages_per_s, 1),
            "by_status": dict(sorted(self.by_status.items())),
            "by_error": dict(sorted(self.by_error.items())),
        }

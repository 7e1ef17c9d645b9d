"""Counters of a crawl, kept as records are committed; `CrawlResult.stats` is a snapshot of them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from crawlpool.records import UNREACHABLE_CODES, Page, error_codes


@dataclass(slots=True)
class CrawlStats:
    """`pages` counts stored pages; `records` every URL tried (one manifest line each); `requests`
    every page request sent (robots.txt requests apart), so `retries` of them were second tries.

    `by_error` counts records by error code, `by_cause` those whose error names its cause by code and
    cause (`{"robots": {"dns": 2}}`); `unreachable` is the hosts whose URLs failed because the host
    could not be reached (dns, connect, tls, timeout), with that cause. `outcome` is how the crawl ended
    (`outcome.Outcome`) and `queued` what it left queued then."""

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
    by_cause: dict[str, Counter[str]] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    unreached: int = 0  # records that failed because their host could not be reached
    crawl_done: int | None = None  # a resumed crawl: URLs done in all its runs so far
    crawl_seen: int | None = None  # and URLs discovered
    outcome: str = "stopped"  # until the engine concludes: a crawl cut short is a stopped one
    queued: int = 0
    by_change: Counter[str] = field(default_factory=Counter)  # an update run's records by `change`

    @property
    def nothing_reached(self) -> bool:
        """Every URL tried failed because its host could not be reached (and some were tried)."""
        return self.records > 0 and self.unreached == self.records

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def count(self, page: Page) -> None:
        self.records += 1
        if page.path is not None:
            self.pages += 1
            self.bytes += page.bytes
        self.by_status[str(page.status) if page.status is not None else "none"] += 1
        if page.change is not None:
            self.by_change[page.change] += 1
        codes = error_codes(page.error)
        if codes:
            self.errors += 1
            self.by_error[codes[0]] += 1
            if len(codes) > 1:
                self.by_cause.setdefault(codes[0], Counter())[codes[1]] += 1
            reach = next((code for code in codes if code in UNREACHABLE_CODES), None)
            if reach is not None and page.status is None:
                self.unreached += 1
                # host[:port] as the URL spells it: two local servers on one address stay apart
                self.unreachable.setdefault(page.url.split("/")[2].rpartition("@")[2], reach)

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
            "by_cause": {code: dict(sorted(c.items())) for code, c in sorted(self.by_cause.items())},
            "unreachable_hosts": dict(sorted(self.unreachable.items())),
            "outcome": self.outcome,
            "crawl_done": self.crawl_done,
            "crawl_seen": self.crawl_seen,
            "queued": self.queued,
            "by_change": dict(sorted(self.by_change.items())),
        }

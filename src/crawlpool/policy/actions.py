"""What the policy asks the engine to do: plain frozen data, carried out in the order given."""

from __future__ import annotations

from dataclasses import dataclass

from crawlpool.frontier.base import Request
from crawlpool.policy.pacing import HostEvent


@dataclass(frozen=True, slots=True)
class Fetch:
    """Send the request now."""


@dataclass(frozen=True, slots=True)
class PaceHost:
    """Tell the frontier what happened to the request's host (`Frontier.observe`)."""

    event: HostEvent


@dataclass(frozen=True, slots=True)
class Retry:
    """The attempt failed transiently: queue the URL again after `after_s`, one attempt used."""

    after_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class Refetch:
    """The page redirected to itself (often to set a cookie): fetch it again at once. This spends the
    self-redirect budget, never an attempt of `--retries`."""


@dataclass(frozen=True, slots=True)
class Release:
    """Give the URL back untried; it is leased again when its host's turn comes."""


@dataclass(frozen=True, slots=True)
class Record:
    """Commit the URL's one manifest record. `final_url` None means the URL itself; `store_body`: write
    the response's body (and read its links) before committing; `fetched`: a request was sent;
    `robots_blocked`: robots.txt forbids the URL (counted apart in the crawl's numbers)."""

    error: str | None
    final_url: str | None = None
    store_body: bool = False
    fetched: bool = True
    robots_blocked: bool = False


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Add these URLs to the frontier (it drops those seen before)."""

    requests: tuple[Request, ...]


@dataclass(frozen=True, slots=True)
class SettleTrap:
    """Record a link a trap guard refused, once, without ever requesting it."""

    request: Request
    reason: str


Action = Fetch | PaceHost | Retry | Refetch | Release | Record | Enqueue | SettleTrap

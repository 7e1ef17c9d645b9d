"""Sitemap rules: which sitemaps a host gets, and what a sitemap's entries become (pure, like `rules`).

    root_sitemaps     a host met for the first time: its robots.txt `Sitemap:` lines, else /sitemap.xml
    sitemap_entries   a batch of a sitemap's entries: the sitemaps and pages to queue, the traps to settle

A sitemap is a `Request` of kind `sitemap` whose `depth` is its nesting level: 0 for a root, one more for
each sitemap index above it. An index at level `MAX_SITEMAP_LEVELS - 1` has its entries ignored, so at
most `MAX_SITEMAP_LEVELS` levels are read. Loops (an index naming itself or an index above it) end by
themselves: a sitemap is a URL like any other, so the frontier's seen-set queues it once per crawl.

A sitemap is fetched when its host is in scope (the include/exclude filters are for pages). The pages
it lists enter the crawl as links do — scope, filters, trap guards — at depth 0 (a sitemap is a list
of starting points, so `--max-depth` counts from each of them), carrying their `<lastmod>`.
"""

from __future__ import annotations

from collections.abc import Iterable

from crawlpool.frontier.base import Request
from crawlpool.policy.actions import SettleTrap
from crawlpool.policy.rules import Rules
from crawlpool.sitemaps import SitemapEntry
from crawlpool.traps import trap_reason
from crawlpool.urls import fingerprint, host_key, normalize_url

MAX_SITEMAP_LEVELS = 3  # a sitemap index, the indexes it names, and the sitemaps those name
FALLBACK_PATH = "/sitemap.xml"


def sitemap_request(url: str, level: int, referrer: str | None) -> Request:
    return Request(url, fingerprint(url), host_key(url), level, referrer, kind="sitemap")


def root_sitemaps(host: str, robots_sitemaps: Iterable[str], rules: Rules) -> list[Request]:
    """The sitemaps of `host` (a host key, `https://a.test:443`) to queue when the crawl first meets
    it: those its robots.txt names (relative lines resolved against it) whose host is in scope, else
    `/sitemap.xml`."""
    robots_url = normalize_url(host + "/robots.txt")
    named: list[Request] = []
    for line in robots_sitemaps:
        url = normalize_url(line.strip(), robots_url)
        if url is not None and rules.scope.covers_host(url):
            named.append(sitemap_request(url, 0, robots_url))
    if named:
        return named
    fallback = normalize_url(host + FALLBACK_PATH)
    if fallback is None or not rules.scope.covers_host(fallback):
        return []
    return [sitemap_request(fallback, 0, None)]


def sitemap_entries(
    sitemap: Request, entries: Iterable[SitemapEntry], rules: Rules
) -> tuple[list[Request], list[SettleTrap], int]:
    """What a batch of `sitemap`'s entries becomes: requests to queue (sitemaps and pages), trap
    pages to settle, and how many entries were dropped (not a URL, out of scope or filtered, or a
    sitemap nested too deep)."""
    queue: list[Request] = []
    traps: list[SettleTrap] = []
    dropped = 0
    for entry in entries:
        url = normalize_url(entry.loc, sitemap.url)
        if url is None:
            dropped += 1
        elif entry.is_sitemap:
            too_deep = sitemap.depth + 1 >= MAX_SITEMAP_LEVELS
            if too_deep or url == sitemap.url or not rules.scope.covers_host(url):
                dropped += 1
            else:
                queue.append(sitemap_request(url, sitemap.depth + 1, sitemap.url))
        elif not rules.scope.allows(url):
            dropped += 1
        else:
            page = Request(url, fingerprint(url), host_key(url), 0, sitemap.url, lastmod=entry.lastmod)
            reason = trap_reason(url, rules.traps)
            if reason is None:
                queue.append(page)
            else:
                traps.append(SettleTrap(page, reason))
    return queue, traps, dropped

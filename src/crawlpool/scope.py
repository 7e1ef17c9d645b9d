"""Which URLs the crawl follows: a pure predicate over normalized URLs.

A URL is followed when it is in scope and passes the filters:

- Scope, from the seeds and a mode:
  - `host`: its hostname is one of the seeds' hostnames. Scheme and port are ignored, so a seed's
    http -> https redirect or a link to another port of the same host stays in scope. `www.` is
    not stripped: `www.example.com` and `example.com` are different hosts (use `domain` to get
    both). A trailing dot is ignored (`example.com.` is `example.com`).
  - `domain`: its registered domain (see `registered_domain`) is one of the seeds' registered
    domains, so `a.example.co.uk` and `b.example.co.uk` are one site.
  - `any`: every http(s) URL.
- Filters, applied after scope: regexes searched (`re.search`) in the full normalized URL. When
  include patterns are given the URL must match at least one; it must match no exclude pattern.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from typing import Literal

from publicsuffixlist import PublicSuffixList

from crawlpool.urls import normalize_url, url_host

__all__ = ["Scope", "ScopeMode", "registered_domain"]

ScopeMode = Literal["host", "domain", "any"]


#: How many verdicts a `Scope` remembers: of URLs (with filters), and of origins.
VERDICTS_MAX = 16384


class Scope:
    """The crawl's scope and include/exclude filters, built once from the seeds."""

    def __init__(
        self,
        seeds: Sequence[str],
        mode: ScopeMode = "host",
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> None:
        """Raise ValueError, with a message naming the culprit, for an unknown mode, a seed that is
        not an http(s) URL, or a pattern that is not a valid regex."""
        if mode not in ("host", "domain", "any"):
            raise ValueError(f"unknown scope mode {mode!r}: use 'host', 'domain' or 'any'")
        self._mode = mode
        hosts: set[str] = set()
        for seed in seeds:
            url = normalize_url(seed)  # seeds should be normalized already; this costs nothing
            if url is None:
                raise ValueError(f"seed {seed!r} is not an http(s) URL")
            hosts.add(_bare(url_host(url)))
        self._hosts = frozenset(hosts)
        self._domains = frozenset(registered_domain(host) for host in hosts)
        self._include = [_compile("include", pattern) for pattern in include]
        self._exclude = [_compile("exclude", pattern) for pattern in exclude]
        # Every link of every page is asked about, and most were asked about on earlier pages.
        self._verdicts: dict[str, bool] = {}
        # Scope depends on the host alone, and a crawl's links name few: a verdict per origin holds
        # for every URL of it, however many a site has (a cache per URL missed on most links of a
        # 20,000-page site, and its misses cost 5% of a process's CPU).
        self._origins: dict[str, bool] = {}

    def allows(self, normalized_url: str) -> bool:
        """True when the crawl should follow `normalized_url`; False when it is out of scope,
        matches no include pattern (when there are some) or matches an exclude pattern."""
        if not self._include and not self._exclude:
            return self.covers_host(normalized_url)
        verdict = self._verdicts.get(normalized_url)
        if verdict is None:
            if len(self._verdicts) >= VERDICTS_MAX:
                self._verdicts.clear()  # a cache: cheaper to refill than to keep in LRU order
            verdict = self._verdicts[normalized_url] = self._allows(normalized_url)
        return verdict

    def _allows(self, normalized_url: str) -> bool:
        if not self.covers_host(normalized_url):
            return False
        if self._include and not any(p.search(normalized_url) for p in self._include):
            return False
        return not any(p.search(normalized_url) for p in self._exclude)

    def covers_host(self, normalized_url: str) -> bool:
        """True when `normalized_url`'s host is in scope, whatever the filters say (a sitemap is
        fetched from every host in scope; the filters apply to the pages it lists)."""
        if self._mode == "any":
            return True
        # 'http://' is 7 characters and a host at least 1: the first '/' from 8 on ends the origin
        # (a normalized URL always has a path; without one, the whole URL is the key).
        end = normalized_url.find("/", 8)
        origin = normalized_url if end < 0 else normalized_url[:end]
        verdict = self._origins.get(origin)
        if verdict is None:
            if len(self._origins) >= VERDICTS_MAX:
                self._origins.clear()
            verdict = self._origins[origin] = self._covers_host(normalized_url)
        return verdict

    def _covers_host(self, normalized_url: str) -> bool:
        host = _bare(url_host(normalized_url))
        if self._mode == "host":
            return host in self._hosts
        return _cached_registered_domain(host) in self._domains


def registered_domain(host: str) -> str:
    """The registrable part of `host` by the Public Suffix List, lowercase and without a trailing
    dot: 'a.b.example.co.uk' -> 'example.co.uk', 'x.user.github.io' -> 'user.github.io' (private
    suffixes such as github.io count, since their subdomains belong to different owners).

    IP addresses (with or without IPv6 brackets), 'localhost', single-label hosts and hosts that
    are themselves a public suffix ('co.uk') return themselves: there is nothing above them.
    """
    host = _bare(host.lower())
    if host == "localhost" or _is_ip(host):
        return host
    domain = _public_suffix_list().privatesuffix(host)
    return domain if isinstance(domain, str) else host


# A Public Suffix List lookup costs ~7 us and pages link to few distinct hosts. A pure function, so
# memoizing it is safe; the bound keeps a crawl of the whole web from growing it without limit.
_cached_registered_domain = functools.lru_cache(maxsize=4096)(registered_domain)


def _bare(host: str) -> str:
    return host[:-1] if host.endswith(".") else host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True


# Building the list parses ~10k rules (tens of milliseconds): do it once, on first use. It is
# read-only afterwards, so sharing it is safe.
@functools.cache
def _public_suffix_list() -> PublicSuffixList:
    return PublicSuffixList()


def _compile(kind: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid {kind} pattern {pattern!r}: {exc}") from exc

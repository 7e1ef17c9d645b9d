"""robots.txt (RFC 9309): fetch once per host, parse with Protego, cache, and answer "may I fetch this?".

Theory of operation. Rules apply per scheme, host and port (RFC 9309 §2.3), so everything is keyed by
`host_key`. `RobotsCache.rules_for(url)` answers from the cache when it can; otherwise it fetches
`/robots.txt` of the URL's host through the crawler's own fetcher (one request at a time per host:
concurrent callers share it) and turns the outcome into one of two answers:

    outcome of GET /robots.txt                   crawlpool does                               RFC 9309
    -------------------------------------------  -------------------------------------------  ----------
    2xx                                          parse the first 512,000 bytes (whole lines)  §2.3.1.1,
                                                 as UTF-8, errors replaced, BOM stripped;     §2.5, §2.2
                                                 the `crawlpool` group, else `*`, applies
    2xx with a body that did not arrive whole    unavailable: retry with backoff              §2.3.1.4
      (truncated, timed out, bad encoding)
    301/302/303/307/308                          follow Location (relative or absolute, to    §2.3.1.2
                                                 any host), up to 5 redirects
    a 6th redirect (loops end here too), or a    allow all, cached for the TTL                §2.3.1.2,
      3xx we cannot follow (no/invalid Location)                                              §2.3.1.3
    4xx other than 429                           allow all, cached for the TTL                §2.3.1.3
    429, 5xx                                     unavailable: disallow all, retry with        §2.3.1.4
                                                 backoff; never cached for the whole crawl
    no response (connect, dns, timeout, tls...)  unavailable, as for 5xx                      §2.3.1.4
    its address refused by the address guard     allow all for the TTL, in this process only  §2.3.1.2,
      (blocked_address, also after a redirect)   (not stored: see below); nothing sent        §2.3.1.3
    rules older than the TTL (24 h)              fetched again on the next call               §2.4

Why a 6th redirect allows all: §2.3.1.2 lets crawlers "assume that the robots.txt file is unavailable",
and "unavailable" is the §2.3.1.3 case (like a 4xx), which means no restrictions. Google does the same.
A robots.txt the address guard will not let us reach (`addresses.py`: a host at a private address, or a
redirect into one) is that same case: the refusal is permanent, so waiting and asking again, as after
an outage, would only hold the host's pages back until they were recorded as `robots`. The pages of a
host that is itself refused are then refused too, each recorded as `blocked_address`. That answer is
kept in this process only, never in the store: it follows from this process's guard options, and a
`--resume` with `--allow-private` must read the robots.txt it can now reach.

"Unavailable" answers come back as `RobotsUnavailable`, with the time to wait before asking again: 5 s
after the first failure, doubling to at most 10 min, times a random factor in [0.8, 1.0] so that hosts
failing together do not retry together (the factor only shrinks the delay, so each retry still waits
longer than the one before). A Retry-After header on the failure lengthens the wait, up to the same cap.
The engine decides when to stop asking (after `--retries` failures).

With a `store` (the crawl's frontier), what a host's robots.txt said is the crawl's state, not this
process's: `rules_for` answers from its own fresh copy, else from the store (the rules parsed again from
the body kept there, or the unavailable answer with what is left of its wait), and only then fetches,
storing the outcome. So every worker of a shared (Redis) crawl reads one fetch per host (workers asking at
the same moment may each fetch once), the count of consecutive failures is one count for all of them, and
a SQLite crawl keeps both across `--resume`.

Deviations we inherit from Protego's group matching (RFC 9309 §2.2.1 asks for an exact, case-insensitive
match of the product token): a group named by a prefix of our token (`User-agent: crawl`) applies to
`crawlpool` too, and a group line carrying a version (`User-agent: crawlpool/1.0`) is not recognized.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from protego import Protego

from crawlpool.fetch import REDIRECT_STATUSES, Response
from crawlpool.retries import parse_retry_after
from crawlpool.urls import host_key, normalize_url

if TYPE_CHECKING:  # the frontier package is imported where a state is built, not at import time
    from crawlpool.frontier.base import RobotsState

__all__ = [
    "ALLOW_ALL",
    "MAX_REDIRECTS",
    "ROBOTS_MAX_BYTES",
    "RobotsCache",
    "RobotsRules",
    "RobotsStore",
    "RobotsUnavailable",
    "parse_robots",
    "robots_text",
    "robots_url",
    "user_agent_token",
]

logger = logging.getLogger(__name__)

ROBOTS_MAX_BYTES = 512_000  # RFC 9309 §2.5: parse at least 500 KiB
MAX_REDIRECTS = 5  # RFC 9309 §2.3.1.2: follow at least five consecutive redirects
TTL_S = 86_400.0  # RFC 9309 §2.4: do not use a cached copy for more than 24 hours
CRAWL_DELAY_CAP_S = 30.0
RETRY_BASE_S = 5.0
RETRY_CAP_S = 600.0
RETRY_JITTER = (0.8, 1.0)

_PRODUCT_TOKEN = re.compile(r"[A-Za-z_-]+")
_LINE_BREAKS = (b"\n", b"\r")


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """Parsed rules for one host (or `ALLOW_ALL`). Build it with `parse_robots`.

    `crawl_delay_s` is the matching group's Crawl-delay, already capped, or None when the group has
    none (or no group matches). `sitemaps` are the Sitemap lines of the whole file, as written."""

    crawl_delay_s: float | None = None
    sitemaps: tuple[str, ...] = ()
    # None means no rules at all. The parser keeps the rules, not the body.
    _parser: Protego | None = field(default=None, repr=False)
    _token: str = field(default="", repr=False)

    def allows(self, url: str) -> bool:
        """True when the rules let our user agent fetch `url` (an absolute URL of this host)."""
        if self._parser is None:
            return True
        return self._parser.can_fetch(url, self._token)


ALLOW_ALL = RobotsRules()


@dataclass(frozen=True, slots=True)
class RobotsUnavailable:
    """robots.txt could not be read (5xx, 429, network); the host's URLs must wait `retry_in_s`."""

    reason: str
    retry_in_s: float
    failures: int  # consecutive failures so far for this host


def parse_robots(
    body: bytes, user_agent_token: str, *, crawl_delay_cap_s: float = CRAWL_DELAY_CAP_S
) -> RobotsRules:
    """Rules of a robots.txt body for the product token `user_agent_token` (see `user_agent_token`).

    Only the first `ROBOTS_MAX_BYTES` are read, and a line cut there is dropped whole: half a rule could
    mean something the site never wrote. Never raises, whatever the bytes."""
    return _parse_text(robots_text(body), user_agent_token, crawl_delay_cap_s)


def robots_text(body: bytes) -> str:
    """The text of a robots.txt body that `parse_robots` reads: its first `ROBOTS_MAX_BYTES` in whole
    lines, decoded as UTF-8 (errors replaced), without a BOM. This is what a store keeps."""
    if len(body) > ROBOTS_MAX_BYTES:
        if body[ROBOTS_MAX_BYTES : ROBOTS_MAX_BYTES + 1] in _LINE_BREAKS:
            body = body[:ROBOTS_MAX_BYTES]
        else:
            body = _whole_lines(body[:ROBOTS_MAX_BYTES])
    # Cutting at a line break never splits a UTF-8 sequence, whose bytes are all >= 0x80.
    return body.decode("utf-8", errors="replace").removeprefix("\ufeff")


def _parse_text(text: str, user_agent_token: str, crawl_delay_cap_s: float) -> RobotsRules:
    parser = Protego.parse(text)
    delay_s = parser.crawl_delay(user_agent_token)
    return RobotsRules(
        crawl_delay_s=None if delay_s is None else min(delay_s, crawl_delay_cap_s),
        sitemaps=tuple(parser.sitemaps),
        _parser=parser,
        _token=user_agent_token,
    )


def _whole_lines(head: bytes) -> bytes:
    """`head` up to its last line break: the line after it was cut and is dropped."""
    end = max(head.rfind(b"\n"), head.rfind(b"\r"))
    return head[: end + 1]


def robots_url(url: str) -> str:
    """The robots.txt URL for `url`'s scheme, host and port: 'http://h:8080/a/b?c' ->
    'http://h:8080/robots.txt'. Userinfo is dropped. Raises ValueError if `url` is not an http(s) URL."""
    key = _host_key(url)
    result = normalize_url(key + "/robots.txt")  # drops the default port host_key spells out
    assert result is not None  # a host key is made of a valid scheme, host and port
    return result


def user_agent_token(user_agent: str) -> str:
    """The product token of a User-Agent, lowercased, as robots.txt groups name it (RFC 9309 §2.2.1:
    letters, '_' and '-'): 'crawlpool/0.1.0 (+https://...)' -> 'crawlpool', 'MyBot/2.0' -> 'mybot'.
    Raises ValueError when the User-Agent does not start with one."""
    match = _PRODUCT_TOKEN.match(user_agent.strip())
    if match is None:
        raise ValueError(
            f"user agent {user_agent!r} must start with a product token (letters, '_' or '-'), "
            "e.g. 'mybot/1.0'"
        )
    return match.group().lower()


def _host_key(url: str) -> str:
    normalized = normalize_url(url)
    if normalized is None:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return host_key(normalized)


class RobotsStore(Protocol):
    """Where robots.txt state is shared: the crawl's frontier (`Frontier.robots` / `set_robots`)."""

    async def robots(self, host: str) -> RobotsState | None: ...

    async def set_robots(self, host: str, state: RobotsState) -> None: ...


class _Refused:
    """The address guard refused robots.txt (or a redirect to it): allow all, in this process only."""


_REFUSED = _Refused()
_Outcome = str | tuple[str, float | None] | _Refused | None


@dataclass(slots=True)
class _Entry:
    answer: RobotsRules | RobotsUnavailable
    until: float  # rules: fresh until; unavailable: retry at (both on the cache's clock)


class RobotsCache:
    """robots.txt rules per scheme/host/port, fetched on demand and kept for `ttl_s`.

    `fetch` is the crawler's `Fetcher.fetch` (same session, User-Agent and limits; it must not follow
    redirects, this cache does). Its `max_bytes` should be at least `ROBOTS_MAX_BYTES`, or less of the
    file is read. Only the parsed rules are kept in this process; a `store` (the frontier) keeps the
    body text, shared with every other cache using it (see the module docstring)."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[Response]],
        user_agent: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        ttl_s: float = TTL_S,
        crawl_delay_cap_s: float = CRAWL_DELAY_CAP_S,
        rng: random.Random | None = None,
        store: RobotsStore | None = None,
    ) -> None:
        self._fetch = fetch
        self._store = store
        self._token = user_agent_token(user_agent)
        self._clock = clock
        self._ttl_s = ttl_s
        self._crawl_delay_cap_s = crawl_delay_cap_s
        self._rng = rng if rng is not None else random.Random()
        self._entries: dict[str, _Entry] = {}
        # One fetch per host at a time. A task, not a bare coroutine, so that a waiter's cancellation
        # (shielded) cannot cancel the fetch the other waiters are sharing.
        self._inflight: dict[str, asyncio.Task[RobotsRules | RobotsUnavailable]] = {}

    async def rules_for(self, url: str) -> RobotsRules | RobotsUnavailable:
        """The rules for `url`'s host, fetching robots.txt when none are fresh; `RobotsUnavailable` when
        it cannot be read now (its `retry_in_s` says how long until asking again is worthwhile).

        Raises ValueError if `url` is not an http(s) URL. An exception raised by `fetch` itself (the
        crawler's Fetcher raises none) reaches every caller sharing that fetch; the next call retries."""
        key = _host_key(url)
        cached = self._cached(key)
        if cached is not None:
            return cached
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._refresh(key), name=f"robots.txt {key}")
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def known(self, url: str) -> bool:
        """True when `rules_for(url)` would answer from the cache without a request: the rules are
        fresh, or robots.txt was unavailable and its retry time has not come."""
        return self._cached(_host_key(url)) is not None

    def describe(self, key: str) -> str | None:
        """What this process knows of host `key`'s robots.txt, in words (None: not asked yet)."""
        entry = self._entries.get(key)
        if entry is None:
            return "being fetched" if key in self._inflight else None
        answer = entry.answer
        if isinstance(answer, RobotsUnavailable):
            left = max(0.0, entry.until - self._clock())
            return f"unavailable ({answer.reason}); {answer.failures} failures, asking again in {left:.0f} s"
        if answer._parser is None:
            return "none (all allowed)"
        delay = f", Crawl-delay {answer.crawl_delay_s:g} s" if answer.crawl_delay_s is not None else ""
        return f"rules{delay}"

    def waiting(self) -> tuple[int, float | None]:
        """Hosts this process found with robots.txt unavailable that wait to ask again, and seconds until
        the first of them does (None: none waits). For the progress display: a scan of the cache."""
        now = self._clock()
        waits = [
            entry.until - now
            for entry in self._entries.values()
            if isinstance(entry.answer, RobotsUnavailable) and entry.until > now
        ]
        return len(waits), min(waits, default=None)

    async def aclose(self) -> None:
        """Cancel the fetches in flight (the crawl is stopping) and wait for them to end."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _cached(self, key: str) -> RobotsRules | RobotsUnavailable | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        if now >= entry.until:
            return None
        if isinstance(entry.answer, RobotsUnavailable):
            # The caller should wait for what is left of the delay, not the whole of it again.
            return RobotsUnavailable(entry.answer.reason, entry.until - now, entry.answer.failures)
        return entry.answer

    def _forget(self, key: str, task: asyncio.Task[RobotsRules | RobotsUnavailable]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]

    async def _refresh(self, key: str) -> RobotsRules | RobotsUnavailable:
        previous: int | None = None  # failures in a row so far, from the store when it has a count
        if self._store is not None:
            state = await self._store.robots(key)
            if state is not None:
                if state.valid_for_s > 0:
                    answer = self._from_state(state)
                    self._entries[key] = _Entry(answer, self._clock() + state.valid_for_s)
                    return answer
                if state.reason is not None:
                    previous = state.failures
        outcome = await self._download(robots_url(key))
        if isinstance(outcome, _Refused):
            # Not stored as the crawl's state: the refusal follows from this process's options, and a
            # worker or a --resume with --allow-private or --allow-address must read robots.txt itself.
            self._entries[key] = _Entry(ALLOW_ALL, self._clock() + self._ttl_s)
            return ALLOW_ALL
        if not isinstance(outcome, tuple):
            rules = ALLOW_ALL if outcome is None else self._parse(outcome)
            self._entries[key] = _Entry(rules, self._clock() + self._ttl_s)
            await self._save(key, outcome, None, 0, self._ttl_s)
            return rules
        reason, retry_after = outcome
        if previous is None:
            entry = self._entries.get(key)
            previous = 0
            if entry is not None and isinstance(entry.answer, RobotsUnavailable):
                previous = entry.answer.failures
        failures = previous + 1
        retry_in_s = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (failures - 1)) * self._rng.uniform(*RETRY_JITTER)
        if retry_after is not None:
            retry_in_s = max(retry_in_s, min(retry_after, RETRY_CAP_S))
        answer = RobotsUnavailable(reason, retry_in_s, failures)
        self._entries[key] = _Entry(answer, self._clock() + retry_in_s)
        await self._save(key, None, reason, failures, retry_in_s)
        logger.debug("%s: %s (failure %d, asking again in %.1f s)", key, reason, failures, retry_in_s)
        return answer

    def _from_state(self, state: RobotsState) -> RobotsRules | RobotsUnavailable:
        if state.reason is not None:
            return RobotsUnavailable(state.reason, state.valid_for_s, state.failures)
        return ALLOW_ALL if state.body is None else self._parse(state.body)

    def _parse(self, text: str) -> RobotsRules:
        return _parse_text(text, self._token, self._crawl_delay_cap_s)

    async def _save(
        self, key: str, body: str | None, reason: str | None, failures: int, for_s: float
    ) -> None:
        if self._store is None:
            return
        from crawlpool.frontier.base import RobotsState

        await self._store.set_robots(key, RobotsState(body, reason, failures, for_s))

    async def _download(self, url: str) -> _Outcome:
        """The robots.txt text (`robots_text`), None to allow all, `_REFUSED` when the address guard
        refused it, or (why robots.txt is unavailable, the server's Retry-After in seconds or None)."""
        redirects = 0
        while True:
            response = await self._fetch(url)
            if not (response.status in REDIRECT_STATUSES and response.location):
                return self._outcome(response)
            if redirects == MAX_REDIRECTS:
                logger.info("%s: more than %d redirects; allowing all", url, MAX_REDIRECTS)
                return None
            target = normalize_url(response.location, url)
            if target is None:
                logger.info("%s: unusable redirect to %r; allowing all", url, response.location)
                return None
            url = target
            redirects += 1

    def _outcome(self, response: Response) -> _Outcome:
        status = response.status
        if status is None and response.error is not None and response.error.code == "blocked_address":
            # A permanent refusal (addresses.py), not an outage: waiting would change nothing.
            logger.info("robots.txt not fetched: %s; allowing all", response.error)
            return _REFUSED
        # Each reason starts with the code of its cause, so that a URL recorded as `robots` because of
        # it reads `robots: dns: robots.txt unreachable: ...` and `failures --code dns` finds it.
        if status is None:
            error = response.error
            code, message = (error.code, error.message) if error is not None else ("client", "no response")
            return f"{code}: robots.txt unreachable: {message}", None
        if status == 429 or status >= 500:
            code = "http_4xx" if status == 429 else "http_5xx"
            # Wall clock only for an HTTP-date Retry-After, which is an instant, not a duration.
            return f"{code}: robots.txt answered {status}", parse_retry_after(
                response.retry_after, time.time()
            )
        if 200 <= status < 300:
            error = response.error
            if error is None:
                return robots_text(response.body)
            if error.code == "too_large":
                # The fetcher's cap cut the body mid-line; keep the whole lines before it.
                return robots_text(_whole_lines(response.body))
            return f"{error.code}: robots.txt unreadable: {error.message}", None
        # 4xx (RFC 9309 §2.3.1.3), and a 3xx without a Location to follow.
        return None

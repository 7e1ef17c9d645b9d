"""robots.txt: parsing (pure), and the per-host cache with a fake fetch, a fake clock and a seeded rng."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from hypothesis import example, given
from hypothesis import strategies as st

from crawlpool.fetch import Fetcher, FetchError, Response, http_error
from crawlpool.frontier import MemoryFrontier, Politeness
from crawlpool.robots import (
    ALLOW_ALL,
    ROBOTS_MAX_BYTES,
    RobotsCache,
    RobotsRules,
    RobotsUnavailable,
    parse_robots,
    robots_url,
    user_agent_token,
)

UA = "crawlpool/0.1.0 (+https://github.com/crawlpool/crawlpool)"
HOST = "http://site.test"
ROBOTS = f"{HOST}/robots.txt"


def response(
    status: int | None = 200,
    body: bytes = b"",
    *,
    location: str | None = None,
    error: FetchError | None = None,
    retry_after: str | None = None,
) -> Response:
    if error is None and status is not None:
        error = http_error(status, "")
    return Response(status, "text/plain", body, location, retry_after, 1, error)


def redirect(location: str, status: int = 301) -> Response:
    return response(status, location=location)


class FakeFetch:
    """url -> Response; records every call. A missing URL answers 404. With `gate` set to an Event, every
    fetch waits for it (and sets `started` first) so tests can hold a fetch in flight."""

    def __init__(self, responses: dict[str, Response] | None = None) -> None:
        self.responses = dict(responses or {})
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.raises: Exception | None = None

    async def __call__(self, url: str) -> Response:
        self.calls.append(url)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.raises is not None:
            raise self.raises
        return self.responses.get(url, response(404))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_cache(fetch: FakeFetch, clock: Clock | None = None, **kwargs: Any) -> RobotsCache:
    return RobotsCache(fetch, UA, clock=clock or Clock(), rng=random.Random(7), **kwargs)


def rules(body: str | bytes, token: str = "crawlpool") -> RobotsRules:
    return parse_robots(body.encode() if isinstance(body, str) else body, token)


# --- parsing ---------------------------------------------------------------------------------------


def test_the_specific_group_wins_over_star() -> None:
    r = rules("User-agent: *\nDisallow: /\n\nUser-agent: crawlpool\nDisallow: /private\n")
    assert r.allows(f"{HOST}/page")
    assert not r.allows(f"{HOST}/private/x")


def test_star_applies_when_no_group_names_us() -> None:
    r = rules("User-agent: otherbot\nDisallow: /\n\nUser-agent: *\nDisallow: /private\n")
    assert r.allows(f"{HOST}/page")
    assert not r.allows(f"{HOST}/private")


def test_no_matching_group_allows_all() -> None:
    r = rules("User-agent: otherbot\nDisallow: /\n")
    assert r.allows(f"{HOST}/anything")


def test_group_names_match_case_insensitively_and_groups_share_rules() -> None:
    r = rules("User-agent: OtherBot\nUser-agent: CrawlPool\nDisallow: /a\n\nUser-agent: *\nDisallow: /\n")
    assert not r.allows(f"{HOST}/a")
    assert r.allows(f"{HOST}/b")
    assert not rules("User-agent: OtherBot\nDisallow: /a\n", token="otherbot").allows(f"{HOST}/a")


def test_protego_group_matching_quirks_documented_in_the_module() -> None:
    """RFC 9309 §2.2.1 wants an exact token match; Protego prefix-matches and ignores versioned lines.
    If this fails, Protego changed: update the module docstring."""
    prefix = rules("User-agent: crawl\nDisallow: /a\n\nUser-agent: *\nDisallow: /b\n")
    assert (prefix.allows(f"{HOST}/a"), prefix.allows(f"{HOST}/b")) == (False, True)
    versioned = rules("User-agent: crawlpool/1.0\nDisallow: /a\n\nUser-agent: *\nDisallow: /b\n")
    assert (versioned.allows(f"{HOST}/a"), versioned.allows(f"{HOST}/b")) == (True, False)


@pytest.mark.parametrize(
    ("user_agent", "token"),
    [
        (UA, "crawlpool"),
        ("MyBot/2.0", "mybot"),
        ("  my_bot-x/1 (compatible)", "my_bot-x"),
        ("Bot2000", "bot"),  # digits are not part of a product token (RFC 9309 §2.2.1)
        ("crawlpool", "crawlpool"),
    ],
)
def test_user_agent_token(user_agent: str, token: str) -> None:
    assert user_agent_token(user_agent) == token


@pytest.mark.parametrize("user_agent", ["", "   ", "2bot/1.0", "(compatible)"])
def test_a_user_agent_without_a_product_token_is_refused(user_agent: str) -> None:
    with pytest.raises(ValueError, match="product token"):
        user_agent_token(user_agent)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:8080/a/b?c", "http://h:8080/robots.txt"),
        ("https://Example.COM:443/x#frag", "https://example.com/robots.txt"),
        ("http://user:pw@h/x", "http://h/robots.txt"),
        ("http://[::1]:8080/x", "http://[::1]:8080/robots.txt"),
        ("http://h", "http://h/robots.txt"),
    ],
)
def test_robots_url(url: str, expected: str) -> None:
    assert robots_url(url) == expected


def test_robots_url_refuses_non_http() -> None:
    with pytest.raises(ValueError, match="not an http"):
        robots_url("ftp://h/x")


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/a/c", False),  # only Disallow: /a matches
        ("/a/b/c", True),  # the longer Allow: /a/b wins
        ("/same", True),  # equally long Allow and Disallow: allow (RFC 9309 §2.2.2)
        ("/x.pdf", False),  # "/*.pdf$"
        ("/dir/x.pdf?download=1", True),  # "$" anchors the end: a query follows
        ("/x.pdfs", True),
        ("/shop/cart/private/1", False),  # "/*/private"
        ("/private", True),  # "/*/private" needs a segment before it
        ("/search?q=x", False),  # patterns match the query too
        ("/search", True),
        ("/robots.txt", True),  # always fetchable
    ],
)
def test_allow_disallow_precedence_and_wildcards(path: str, allowed: bool) -> None:
    r = rules(
        "User-agent: *\n"
        "Disallow: /a\nAllow: /a/b\n"
        "Disallow: /same\nAllow: /same\n"
        "Disallow: /*.pdf$\n"
        "Disallow: /*/private\n"
        "Disallow: /search?\n"
        "Disallow: /robots\n"
    )
    assert r.allows(f"{HOST}{path}") is allowed


def test_empty_disallow_and_empty_file_allow_all() -> None:
    assert rules("User-agent: *\nDisallow:\n").allows(f"{HOST}/x")
    assert rules(b"").allows(f"{HOST}/x")
    assert ALLOW_ALL.allows(f"{HOST}/x")
    assert (ALLOW_ALL.crawl_delay_s, ALLOW_ALL.sitemaps) == (None, ())


def test_crawl_delay_of_the_matching_group_is_capped() -> None:
    body = "User-agent: *\nCrawl-delay: 2\n\nUser-agent: crawlpool\nCrawl-delay: 120\nDisallow: /x\n"
    assert rules(body).crawl_delay_s == 30.0
    assert parse_robots(body.encode(), "crawlpool", crawl_delay_cap_s=60).crawl_delay_s == 60.0
    assert rules(body, token="otherbot").crawl_delay_s == 2.0
    assert rules("User-agent: crawlpool\nCrawl-delay: 1.5\n").crawl_delay_s == 1.5
    assert rules("User-agent: crawlpool\nCrawl-delay: soon\n").crawl_delay_s is None
    assert rules("User-agent: otherbot\nCrawl-delay: 9\n").crawl_delay_s is None


def test_sitemaps_are_kept_in_order() -> None:
    r = rules(
        "Sitemap: https://site.test/a.xml\nUser-agent: *\nDisallow: /x\nSitemap: https://cdn.test/b.xml\n"
    )
    assert r.sitemaps == ("https://site.test/a.xml", "https://cdn.test/b.xml")


def test_a_bom_is_stripped() -> None:
    r = rules(b"\xef\xbb\xbfUser-agent: *\nDisallow: /x\n")
    assert not r.allows(f"{HOST}/x")


def test_latin1_bytes_are_tolerated_and_other_rules_kept() -> None:
    r = rules("User-agent: *\nDisallow: /café\nDisallow: /private\n".encode("latin-1"))
    assert not r.allows(f"{HOST}/private")
    assert r.allows(f"{HOST}/caf%C3%A9")  # the latin-1 byte became U+FFFD, not é


def test_crlf_and_cr_line_endings() -> None:
    assert not rules(b"User-agent: *\r\nDisallow: /x\r\n").allows(f"{HOST}/x")
    assert not rules(b"User-agent: *\rDisallow: /x\r").allows(f"{HOST}/x")


@given(st.binary(max_size=2000))
@example(b"\xff\xfe\x00U\x00s\x00e\x00r")  # UTF-16 with a BOM
@example(b"User-agent: *\nDisallow: /\x00\xff*$$%\nAllow: %zz\nCrawl-delay: nan\nCrawl-delay: -1\n")
def test_any_bytes_parse_without_raising(body: bytes) -> None:
    r = parse_robots(body, "crawlpool")
    r.allows(f"{HOST}/a%20b?c=d")
    assert r.crawl_delay_s is None or 0 <= r.crawl_delay_s <= 30


def _filler(size: int) -> bytes:
    """Comment lines of exactly `size` bytes in all."""
    lines, rest = divmod(size, 100)
    out = (b"#" + b"x" * 98 + b"\n") * lines
    if rest:
        out += b"#" + b"y" * (rest - 2) + b"\n" if rest >= 2 else b"\n"
    return out


def test_a_file_over_the_limit_is_cut_at_a_line_boundary() -> None:
    head = b"User-agent: *\nDisallow: /kept\n"
    straddling = b"Disallow: /cut-in-the-middle\n"
    # The straddling line starts 15 bytes before the limit ("Disallow: /cut-") and ends after it.
    body = head + _filler(ROBOTS_MAX_BYTES - 15 - len(head)) + straddling + b"Disallow: /after\n"
    assert len(head) + len(_filler(ROBOTS_MAX_BYTES - 15 - len(head))) == ROBOTS_MAX_BYTES - 15
    r = parse_robots(body, "crawlpool")
    assert not r.allows(f"{HOST}/kept")
    assert r.allows(f"{HOST}/cut-in-the-middle")
    assert r.allows(f"{HOST}/cut")  # the half of the line before the limit is not read as "/cut"
    assert r.allows(f"{HOST}/after")


def test_a_line_ending_exactly_at_the_limit_is_kept() -> None:
    head = b"User-agent: *\nDisallow: /kept\n"
    edge = b"Disallow: /edge"  # its line break is the first byte past the limit
    body = head + _filler(ROBOTS_MAX_BYTES - len(head) - len(edge)) + edge + b"\nDisallow: /after\n"
    assert body[ROBOTS_MAX_BYTES : ROBOTS_MAX_BYTES + 1] == b"\n"
    r = parse_robots(body, "crawlpool")
    assert not r.allows(f"{HOST}/edge")
    assert r.allows(f"{HOST}/after")


def test_a_file_at_the_limit_is_read_whole() -> None:
    tail = b"Disallow: /last"  # no final line break: the file ends, nothing was cut
    body = b"User-agent: *\n" + _filler(ROBOTS_MAX_BYTES - 14 - len(tail)) + tail
    assert len(body) == ROBOTS_MAX_BYTES
    assert not parse_robots(body, "crawlpool").allows(f"{HOST}/last")


# --- the cache: outcomes of the fetch ---------------------------------------------------------------


async def test_a_200_is_parsed_for_our_token_and_cached() -> None:
    fetch = FakeFetch(
        {ROBOTS: response(200, b"User-agent: *\nDisallow: /\n\nUser-agent: crawlpool\nDisallow: /p\n")}
    )
    cache = make_cache(fetch)
    assert not cache.known(f"{HOST}/x")
    r = await cache.rules_for(f"{HOST}/x")
    assert isinstance(r, RobotsRules)
    assert r.allows(f"{HOST}/x") and not r.allows(f"{HOST}/p")
    assert cache.known(f"{HOST}/other?q=1")
    assert await cache.rules_for(f"{HOST}/other") is r
    assert fetch.calls == [ROBOTS]


async def test_hosts_are_keyed_by_scheme_host_and_port() -> None:
    fetch = FakeFetch()
    cache = make_cache(fetch)
    for url in ["http://site.test/a", "http://SITE.test:80/b", "https://site.test/a", "http://site.test:81/"]:
        await cache.rules_for(url)
    assert fetch.calls == [
        "http://site.test/robots.txt",
        "https://site.test/robots.txt",
        "http://site.test:81/robots.txt",
    ]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 451])
async def test_a_4xx_allows_all_and_is_cached(status: int) -> None:
    fetch = FakeFetch({ROBOTS: response(status, b"User-agent: *\nDisallow: /\n")})
    cache = make_cache(fetch)
    assert await cache.rules_for(f"{HOST}/x") == ALLOW_ALL
    assert cache.known(f"{HOST}/x")
    assert await cache.rules_for(f"{HOST}/y") == ALLOW_ALL
    assert len(fetch.calls) == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_429_and_5xx_are_unavailable_with_growing_backoff(status: int) -> None:
    fetch = FakeFetch({ROBOTS: response(status)})
    clock = Clock()
    cache = make_cache(fetch, clock)
    delays = []
    for failures in range(1, 5):
        answer = await cache.rules_for(f"{HOST}/x")
        assert isinstance(answer, RobotsUnavailable)
        cause = "http_4xx" if status == 429 else "http_5xx"
        assert answer.reason == f"{cause}: robots.txt answered {status}"
        assert answer.failures == failures
        bound = 5.0 * 2 ** (failures - 1)
        assert 0.8 * bound <= answer.retry_in_s <= bound
        delays.append(answer.retry_in_s)
        clock.now += answer.retry_in_s
    assert delays == sorted(delays)
    assert len(fetch.calls) == 4


async def test_the_backoff_is_capped() -> None:
    fetch = FakeFetch({ROBOTS: response(503)})
    clock = Clock()
    cache = make_cache(fetch, clock)
    answer = None
    for _ in range(12):
        answer = await cache.rules_for(f"{HOST}/x")
        assert isinstance(answer, RobotsUnavailable)
        assert answer.retry_in_s <= 600
        clock.now += answer.retry_in_s
    assert isinstance(answer, RobotsUnavailable)
    assert answer.failures == 12 and answer.retry_in_s >= 480


async def test_retry_after_lengthens_the_wait() -> None:
    fetch = FakeFetch({ROBOTS: response(429, retry_after="120")})
    cache = make_cache(fetch)
    answer = await cache.rules_for(f"{HOST}/x")
    assert isinstance(answer, RobotsUnavailable)
    assert answer.retry_in_s == 120.0


@pytest.mark.parametrize(
    ("code", "message"), [("connect", "refused"), ("dns", "no such host"), ("timeout", "5 s"), ("tls", "bad")]
)
async def test_unreachable_is_unavailable_then_a_success_resets(code: str, message: str) -> None:
    fetch = FakeFetch({ROBOTS: response(None, error=FetchError(code, message))})
    clock = Clock()
    cache = make_cache(fetch, clock)
    first = await cache.rules_for(f"{HOST}/x")
    assert isinstance(first, RobotsUnavailable)
    assert first.reason == f"{code}: robots.txt unreachable: {message}"
    assert first.failures == 1

    # The retry time is respected: answered from the cache, with what is left of the wait.
    clock.now += first.retry_in_s - 1
    assert cache.known(f"{HOST}/x")
    again = await cache.rules_for(f"{HOST}/x")
    assert isinstance(again, RobotsUnavailable)
    assert again.failures == 1 and again.retry_in_s == pytest.approx(1.0)
    assert len(fetch.calls) == 1

    clock.now += 1
    assert not cache.known(f"{HOST}/x")
    second = await cache.rules_for(f"{HOST}/x")
    assert isinstance(second, RobotsUnavailable) and second.failures == 2

    clock.now += second.retry_in_s
    fetch.responses[ROBOTS] = response(200, b"User-agent: *\nDisallow: /p\n")
    ok = await cache.rules_for(f"{HOST}/x")
    assert isinstance(ok, RobotsRules) and not ok.allows(f"{HOST}/p")

    # After the rules expire, a new failure counts from 1 again.
    clock.now += 86_400
    fetch.responses[ROBOTS] = response(503)
    after = await cache.rules_for(f"{HOST}/x")
    assert isinstance(after, RobotsUnavailable) and after.failures == 1
    assert len(fetch.calls) == 4


@pytest.mark.parametrize("code", ["truncated", "timeout", "encoding"])
async def test_a_200_whose_body_did_not_arrive_is_unavailable(code: str) -> None:
    fetch = FakeFetch({ROBOTS: response(200, b"", error=FetchError(code, "x"))})
    answer = await make_cache(fetch).rules_for(f"{HOST}/x")
    assert isinstance(answer, RobotsUnavailable)
    assert answer.reason == f"{code}: robots.txt unreadable: x"


async def test_a_body_cut_by_the_fetchers_cap_keeps_its_whole_lines() -> None:
    body = b"User-agent: *\nDisallow: /kept\nDisallow: /cut-here"
    fetch = FakeFetch({ROBOTS: response(200, body[:-5], error=FetchError("too_large", "cut"))})
    r = await make_cache(fetch).rules_for(f"{HOST}/x")
    assert isinstance(r, RobotsRules)
    assert not r.allows(f"{HOST}/kept")
    assert r.allows(f"{HOST}/cut")


async def test_crawl_delay_cap_is_configurable_on_the_cache() -> None:
    fetch = FakeFetch({ROBOTS: response(200, b"User-agent: crawlpool\nCrawl-delay: 120\n")})
    r = await make_cache(fetch, crawl_delay_cap_s=10.0).rules_for(f"{HOST}/x")
    assert isinstance(r, RobotsRules) and r.crawl_delay_s == 10.0
    r = await make_cache(fetch).rules_for(f"{HOST}/x")
    assert isinstance(r, RobotsRules) and r.crawl_delay_s == 30.0


async def test_rules_expire_after_the_ttl() -> None:
    fetch = FakeFetch({ROBOTS: response(200, b"User-agent: *\nDisallow: /old\n")})
    clock = Clock()
    cache = make_cache(fetch, clock, ttl_s=3600.0)
    await cache.rules_for(f"{HOST}/x")
    clock.now += 3599
    assert cache.known(f"{HOST}/x")
    await cache.rules_for(f"{HOST}/x")
    assert len(fetch.calls) == 1

    clock.now += 1
    assert not cache.known(f"{HOST}/x")
    fetch.responses[ROBOTS] = response(200, b"User-agent: *\nDisallow: /new\n")
    r = await cache.rules_for(f"{HOST}/x")
    assert isinstance(r, RobotsRules)
    assert r.allows(f"{HOST}/old") and not r.allows(f"{HOST}/new")
    assert len(fetch.calls) == 2


# --- the cache: redirects -------------------------------------------------------------------------


def _chain(hops: int) -> dict[str, Response]:
    """/robots.txt -> /r1 -> ... -> /r{hops}, which answers 200."""
    urls = [ROBOTS] + [f"{HOST}/r{i}" for i in range(1, hops + 1)]
    chain = {url: redirect(nxt) for url, nxt in itertools.pairwise(urls)}
    chain[urls[-1]] = response(200, b"User-agent: *\nDisallow: /private\n")
    return chain


@pytest.mark.parametrize("hops", [1, 2, 3, 4, 5])
async def test_up_to_five_redirects_are_followed(hops: int) -> None:
    fetch = FakeFetch(_chain(hops))
    r = await make_cache(fetch).rules_for(f"{HOST}/x")
    assert isinstance(r, RobotsRules) and not r.allows(f"{HOST}/private")
    assert len(fetch.calls) == hops + 1


async def test_a_sixth_redirect_allows_all() -> None:
    fetch = FakeFetch(_chain(6))
    cache = make_cache(fetch)
    assert await cache.rules_for(f"{HOST}/x") == ALLOW_ALL
    assert len(fetch.calls) == 6  # the sixth redirect's target is never asked
    assert cache.known(f"{HOST}/x")


async def test_a_redirect_loop_allows_all() -> None:
    fetch = FakeFetch({ROBOTS: redirect("/loop", 302), f"{HOST}/loop": redirect("/robots.txt", 307)})
    assert await make_cache(fetch).rules_for(f"{HOST}/x") == ALLOW_ALL
    assert len(fetch.calls) == 6


async def test_relative_and_cross_host_locations() -> None:
    fetch = FakeFetch(
        {
            ROBOTS: redirect("robots/main.txt"),  # relative to /robots.txt
            f"{HOST}/robots/main.txt": redirect("../real.txt", 308),
            f"{HOST}/real.txt": redirect("//cdn.test/r.txt", 303),
            "http://cdn.test/r.txt": redirect("HTTPS://CDN.test:443/final.txt", 302),
            "https://cdn.test/final.txt": response(200, b"User-agent: *\nDisallow: /p\n"),
        }
    )
    cache = make_cache(fetch)
    r = await cache.rules_for(f"{HOST}/x")
    assert isinstance(r, RobotsRules) and not r.allows(f"{HOST}/p")
    assert fetch.calls[1:] == [
        f"{HOST}/robots/main.txt",
        f"{HOST}/real.txt",
        "http://cdn.test/r.txt",
        "https://cdn.test/final.txt",
    ]
    # The rules belong to the host that was asked about, not to the redirect's target.
    assert cache.known(f"{HOST}/y") and not cache.known("https://cdn.test/y")


@pytest.mark.parametrize("location", ["ftp://elsewhere/robots.txt", "http://bad host/", "http://h:99999/"])
async def test_an_unusable_redirect_allows_all(location: str) -> None:
    fetch = FakeFetch({ROBOTS: redirect(location)})
    assert await make_cache(fetch).rules_for(f"{HOST}/x") == ALLOW_ALL
    assert len(fetch.calls) == 1


async def test_a_redirect_to_a_failing_server_is_unavailable() -> None:
    fetch = FakeFetch(
        {ROBOTS: redirect("http://cdn.test/robots.txt"), "http://cdn.test/robots.txt": response(503)}
    )
    answer = await make_cache(fetch).rules_for(f"{HOST}/x")
    assert isinstance(answer, RobotsUnavailable) and answer.reason == "http_5xx: robots.txt answered 503"


# --- the cache: concurrency ------------------------------------------------------------------------


async def test_concurrent_calls_share_one_fetch() -> None:
    fetch = FakeFetch({ROBOTS: response(200, b"User-agent: *\nDisallow: /p\n")})
    fetch.gate = asyncio.Event()
    cache = make_cache(fetch)
    waiters = [asyncio.create_task(cache.rules_for(f"{HOST}/{i}")) for i in range(20)]
    await fetch.started.wait()
    assert not cache.known(f"{HOST}/x")  # in flight is not known: the answer is not there yet
    fetch.gate.set()
    answers = await asyncio.gather(*waiters)
    assert len(fetch.calls) == 1
    assert all(a is answers[0] for a in answers)
    assert isinstance(answers[0], RobotsRules)


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    fetch = FakeFetch({ROBOTS: response(200, b"User-agent: *\nDisallow: /p\n")})
    fetch.gate = asyncio.Event()
    cache = make_cache(fetch)
    first = asyncio.create_task(cache.rules_for(f"{HOST}/a"))
    second = asyncio.create_task(cache.rules_for(f"{HOST}/b"))
    await fetch.started.wait()
    first.cancel()
    fetch.gate.set()
    r = await second
    assert isinstance(r, RobotsRules) and not r.allows(f"{HOST}/p")
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await cache.rules_for(f"{HOST}/c") is r
    assert len(fetch.calls) == 1


async def test_an_exception_from_fetch_does_not_poison_later_calls() -> None:
    fetch = FakeFetch({ROBOTS: response(200, b"User-agent: *\nDisallow: /p\n")})
    fetch.gate = asyncio.Event()
    fetch.raises = RuntimeError("boom")
    cache = make_cache(fetch)
    waiters = [asyncio.create_task(cache.rules_for(f"{HOST}/{i}")) for i in range(3)]
    await fetch.started.wait()
    fetch.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert not cache.known(f"{HOST}/x")

    fetch.raises = None
    r = await cache.rules_for(f"{HOST}/x")
    assert isinstance(r, RobotsRules)
    assert len(fetch.calls) == 2


async def test_aclose_cancels_fetches_in_flight() -> None:
    fetch = FakeFetch()
    fetch.gate = asyncio.Event()  # never set: the fetch would hang
    cache = make_cache(fetch)
    waiter = asyncio.create_task(cache.rules_for(f"{HOST}/x"))
    await fetch.started.wait()
    await cache.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not cache.known(f"{HOST}/x")


def test_a_bad_url_or_user_agent_is_refused() -> None:
    with pytest.raises(ValueError, match="product token"):
        RobotsCache(FakeFetch(), "1.0")
    with pytest.raises(ValueError, match="not an http"):
        make_cache(FakeFetch()).known("mailto:x@y")


# --- through the real Fetcher -----------------------------------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


async def test_wired_to_the_real_fetcher(mock_http: aioresponses, session: aiohttp.ClientSession) -> None:
    fetcher = Fetcher(session, timeout_s=5, max_bytes=2 * ROBOTS_MAX_BYTES)
    mock_http.get(ROBOTS, status=301, headers={"Location": "/robots-main.txt"})
    mock_http.get(
        f"{HOST}/robots-main.txt",
        body=b"User-agent: *\nDisallow: /\n\nUser-agent: crawlpool\nDisallow: /private\nCrawl-delay: 3\n"
        b"Sitemap: http://site.test/sitemap.xml\n",
        content_type="text/plain",
    )
    mock_http.get("http://down.test/robots.txt", status=503)
    mock_http.get("http://gone.test/robots.txt", exception=aiohttp.ClientOSError(111, "Connection refused"))
    mock_http.get("http://none.test/robots.txt", status=404, body=b"<html>not found</html>")
    cache = RobotsCache(fetcher.fetch, UA, rng=random.Random(1))

    r = await cache.rules_for(f"{HOST}/page")
    assert isinstance(r, RobotsRules)
    assert r.allows(f"{HOST}/page") and not r.allows(f"{HOST}/private/1")
    assert (r.crawl_delay_s, r.sitemaps) == (3.0, ("http://site.test/sitemap.xml",))

    down = await cache.rules_for("http://down.test/x")
    assert isinstance(down, RobotsUnavailable) and down.reason == "http_5xx: robots.txt answered 503"
    gone = await cache.rules_for("http://gone.test/x")
    assert isinstance(gone, RobotsUnavailable) and gone.reason.startswith("connect: robots.txt unreachable:")
    assert await cache.rules_for("http://none.test/x") == ALLOW_ALL


# --- shared state (the frontier as the store) ------------------------------------------------------


def shared_caches(fetch: FakeFetch, clock: Clock) -> tuple[RobotsCache, RobotsCache, MemoryFrontier]:
    """Two caches, as two workers would hold, sharing one frontier's robots.txt state."""
    frontier = MemoryFrontier(Politeness(), clock)
    return make_cache(fetch, clock, store=frontier), make_cache(fetch, clock, store=frontier), frontier


async def test_caches_sharing_a_store_fetch_robots_txt_once() -> None:
    fetch = FakeFetch({ROBOTS: response(200, b"\xef\xbb\xbfUser-agent: *\nDisallow: /p\nCrawl-delay: 99\n")})
    clock = Clock()
    first, second, frontier = shared_caches(fetch, clock)
    a = await first.rules_for(f"{HOST}/x")
    clock.now += 60
    b = await second.rules_for(f"{HOST}/y")
    assert len(fetch.calls) == 1
    for answer in (a, b):
        assert isinstance(answer, RobotsRules)
        assert not answer.allows(f"{HOST}/p") and answer.allows(f"{HOST}/q")
        assert answer.crawl_delay_s == 30.0
    stored = await frontier.robots("http://site.test:80")
    assert stored is not None and stored.body == "User-agent: *\nDisallow: /p\nCrawl-delay: 99\n"
    assert stored.valid_for_s == pytest.approx(86_400 - 60)
    # The second cache keeps its copy until the stored rules expire, then both fetch again (once).
    assert second.known(f"{HOST}/z")
    clock.now += 86_400 - 60
    assert not second.known(f"{HOST}/z")
    await second.rules_for(f"{HOST}/z")
    await first.rules_for(f"{HOST}/z")
    assert len(fetch.calls) == 2


async def test_an_allow_all_outcome_is_shared_too() -> None:
    fetch = FakeFetch({ROBOTS: response(404)})
    first, second, _ = shared_caches(fetch, Clock())
    assert await first.rules_for(f"{HOST}/x") is ALLOW_ALL
    assert await second.rules_for(f"{HOST}/x") is ALLOW_ALL
    assert len(fetch.calls) == 1


async def test_failures_in_a_row_are_counted_across_caches_sharing_a_store() -> None:
    fetch = FakeFetch({ROBOTS: response(503)})
    clock = Clock()
    first, second, frontier = shared_caches(fetch, clock)
    a = await first.rules_for(f"{HOST}/x")
    assert isinstance(a, RobotsUnavailable) and a.failures == 1

    # Before the retry time the other cache answers from the store, with what is left of the wait.
    clock.now += 1
    waiting = await second.rules_for(f"{HOST}/x")
    assert isinstance(waiting, RobotsUnavailable)
    assert waiting.failures == 1 and waiting.retry_in_s == pytest.approx(a.retry_in_s - 1)
    assert len(fetch.calls) == 1

    clock.now += a.retry_in_s
    b = await second.rules_for(f"{HOST}/x")
    assert isinstance(b, RobotsUnavailable) and b.failures == 2
    assert 0.8 * 10.0 <= b.retry_in_s <= 10.0
    stored = await frontier.robots("http://site.test:80")
    assert stored is not None and (stored.reason, stored.failures) == ("http_5xx: robots.txt answered 503", 2)

    clock.now += b.retry_in_s
    c = await first.rules_for(f"{HOST}/x")
    assert isinstance(c, RobotsUnavailable) and c.failures == 3
    assert len(fetch.calls) == 3

    # A success resets the shared count.
    clock.now += c.retry_in_s
    fetch.responses[ROBOTS] = response(200, b"User-agent: *\nDisallow: /p\n")
    assert isinstance(await second.rules_for(f"{HOST}/x"), RobotsRules)
    stored = await frontier.robots("http://site.test:80")
    assert stored is not None and (stored.reason, stored.failures) == (None, 0)


async def test_concurrent_calls_with_a_store_share_one_fetch() -> None:
    fetch = FakeFetch({ROBOTS: response(200, b"User-agent: *\nDisallow: /p\n")})
    fetch.gate = asyncio.Event()
    cache, _, _ = shared_caches(fetch, Clock())
    calls = [asyncio.create_task(cache.rules_for(f"{HOST}/{i}")) for i in range(5)]
    await fetch.started.wait()
    fetch.gate.set()
    answers = await asyncio.gather(*calls)
    assert len(fetch.calls) == 1
    assert all(isinstance(answer, RobotsRules) and not answer.allows(f"{HOST}/p") for answer in answers)

"""The crawl's decisions, as tables: (situation → actions), on virtual time, with no socket.

Each row is a promise of README's politeness, robots.txt, retry/Retry-After, redirect or trap tables.
The policy functions read no clock and draw no random number, so every row is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from itertools import pairwise

import pytest

from crawlpool.fetch import FetchError, Response
from crawlpool.frontier import Politeness, Request
from crawlpool.frontier.memory import MemoryFrontier
from crawlpool.policy.actions import Enqueue, Fetch, PaceHost, Record, Refetch, Release, Retry, SettleTrap
from crawlpool.policy.pacing import (
    MAX_EXTRA_S,
    STEP_S,
    Answered,
    Blocked,
    FloorRaised,
    HostEvent,
    HostPace,
    next_pace,
)
from crawlpool.policy.rules import (
    MAX_REDIRECT_HOPS,
    Rules,
    links_to_follow,
    make_request,
    on_link,
    on_response,
    on_robots,
)
from crawlpool.robots import RobotsUnavailable, parse_robots
from crawlpool.scope import Scope
from crawlpool.traps import TrapLimits
from crawlpool.urls import host_key

SEED = "https://site.test/"
RULES = Rules(scope=Scope([SEED]))
HOST = host_key(SEED)
NOW = 1_800_000_000.0  # the wall clock, for HTTP-date Retry-After values


def ok(ms: int) -> Answered:
    return Answered(200, ms)


def replay(events: Sequence[HostEvent], pace: HostPace | None = None) -> HostPace:
    pace = pace or HostPace()
    for event in events:
        pace = next_pace(pace, event)
    return pace


# -- adaptive pacing -----------------------------------------------------------------------------------

CLIMB = [ok(round(50 * 1.2**i)) for i in range(21)]  # 50 ms to 1.9 s, 20 % slower each answer


PACING_ROWS = [
    pytest.param([ok(1), ok(1), ok(1), ok(1), ok(20)] * 20, 0.0, id="1 ms host, every 5th at 20 ms: none"),
    pytest.param([ok(5)] * 9 * 10 + [ok(40)] * 10, 0.0, id="5 ms host, occasional 40 ms: none"),
    pytest.param(([ok(5)] * 9 + [ok(40)]) * 10, 0.0, id="5 ms host, every 10th at 40 ms: none"),
    pytest.param([ok(1)] * 5 + [ok(450)], 0.0, id="450x slower, but under 500 ms: noise"),
    pytest.param([ok(2000)] * 30, 0.0, id="slow from the start and steady: the host's normal"),
    pytest.param([ok(5000)] + [ok(10)] * 5, 0.0, id="a slow first answer is warm-up, not a signal"),
    pytest.param(CLIMB, None, id="latency climbing from 50 ms to 2 s: backs off"),
    pytest.param([ok(100)] * 5 + [ok(1000)], STEP_S, id="100 ms then 1 s: one step"),
    pytest.param([Answered(503, 5)], STEP_S, id="503: one step"),
    pytest.param([Answered(429, 5)], STEP_S, id="429: one step"),
    pytest.param([Answered(503, 5)] * 2, 2 * STEP_S, id="two 503: doubled"),
    pytest.param([Answered(503, 5)] * 3, 4 * STEP_S, id="three 503: doubled again"),
    pytest.param([Answered(503, 5)] * 20, MAX_EXTRA_S, id="the extra delay is capped"),
    pytest.param([Answered(None, 30_000, "timeout")], STEP_S, id="timeout: one step"),
    pytest.param([Answered(200, 30_000, "timeout")], STEP_S, id="timeout mid-body: one step"),
    pytest.param([Answered(None, 3, "connect")], 0.0, id="refused: says nothing of load"),
    pytest.param([Answered(503, 5), Answered(None, 3, "dns")], STEP_S, id="DNS failure: no recovery"),
    pytest.param([Answered(503, 5), Answered(500, 5)], STEP_S, id="500 neither slows nor speeds"),
    pytest.param([Answered(503, 5), ok(5)], 0.0, id="one 503 is forgiven by one good answer"),
    pytest.param([Answered(503, 5), Answered(404, 5)], 0.0, id="a 404 is a healthy answer"),
    pytest.param([Answered(503, 5)] * 4 + [ok(5)], 1.5, id="recovery takes a quarter off"),
]


@pytest.mark.parametrize(("events", "extra_s"), PACING_ROWS)
def test_pacing(events: list[HostEvent], extra_s: float | None) -> None:
    pace = replay(events)
    if extra_s is None:
        assert pace.extra_s >= STEP_S
    else:
        assert pace.extra_s == pytest.approx(extra_s)


def test_recovery_from_the_cap_takes_about_twenty_good_answers() -> None:
    pace = replay([Answered(503, 5)] * 20)
    answers = 0
    while pace.extra_s > 0:
        pace = next_pace(pace, ok(5))
        answers += 1
    assert 15 <= answers <= 22


@pytest.mark.parametrize(
    ("events", "delay_s"),
    [
        pytest.param([FloorRaised(2.0)], 2.0, id="Crawl-delay raises the floor"),
        pytest.param([FloorRaised(2.0), FloorRaised(1.0)], 2.0, id="never lowers it"),
        pytest.param([FloorRaised(1.0), Answered(503, 5)], 1.0 + STEP_S, id="backoff adds to the floor"),
        pytest.param([FloorRaised(1.0), Answered(503, 5), ok(5), ok(5)], 1.0, id="recovery stops at it"),
        pytest.param([Blocked(60.0)], 0.5, id="a block is kept by the frontier, not in the pace"),
    ],
)
def test_floor(events: list[HostEvent], delay_s: float) -> None:
    assert replay(events, HostPace(floor_s=0.5)).delay_s == pytest.approx(max(delay_s, 0.5))


def test_pace_survives_its_json_form() -> None:
    pace = replay([FloorRaised(1.5), *CLIMB])
    assert HostPace.from_json(pace.to_json()) == pace


# -- robots.txt ----------------------------------------------------------------------------------------

ROBOTS = parse_robots(b"User-agent: *\nDisallow: /private/\n", "crawlpool")
SLOW_ROBOTS = parse_robots(b"User-agent: *\nCrawl-delay: 5\nDisallow: /private/\n", "crawlpool")
DOWN = RobotsUnavailable("http_5xx: robots.txt answered 503", retry_in_s=4.5, failures=1)


@pytest.mark.parametrize(
    ("url", "verdict", "rules", "first", "actions"),
    [
        pytest.param(SEED, ROBOTS, RULES, True, [Fetch()], id="allowed, no delay: fetch at once"),
        pytest.param(
            SEED + "private/x",
            ROBOTS,
            RULES,
            False,
            [Record("robots: disallowed by robots.txt", fetched=False, robots_blocked=True)],
            id="disallowed: recorded, never requested",
        ),
        pytest.param(
            SEED,
            ROBOTS,
            Rules(scope=RULES.scope, delay_s=1.0),
            True,
            [PaceHost(Blocked(1.0)), Release()],
            id="--delay: the page waits a delay after robots.txt",
        ),
        pytest.param(
            SEED, ROBOTS, Rules(scope=RULES.scope, delay_s=1.0), False, [Fetch()], id="--delay, later pages"
        ),
        pytest.param(
            SEED,
            SLOW_ROBOTS,
            RULES,
            True,
            [PaceHost(FloorRaised(5.0)), PaceHost(Blocked(5.0)), Release()],
            id="Crawl-delay raises the floor, and the first page waits it",
        ),
        pytest.param(
            SEED + "private/",
            SLOW_ROBOTS,
            RULES,
            True,
            [
                PaceHost(FloorRaised(5.0)),
                Record("robots: disallowed by robots.txt", fetched=False, robots_blocked=True),
            ],
            id="Crawl-delay and disallowed",
        ),
        pytest.param(
            SEED, DOWN, RULES, True, [PaceHost(Blocked(4.5)), Release()], id="unavailable: the host waits"
        ),
        pytest.param(
            SEED,
            RobotsUnavailable("http_5xx: robots.txt answered 503", 40.0, failures=3),
            RULES,
            False,
            [PaceHost(Blocked(40.0)), Release()],
            id="unavailable --retries times: still waits",
        ),
        pytest.param(
            SEED,
            RobotsUnavailable("http_5xx: robots.txt answered 503", 80.0, failures=4),
            RULES,
            False,
            [Record("robots: http_5xx: robots.txt answered 503", fetched=False)],
            id="unavailable more than --retries times: recorded",
        ),
    ],
)
def test_robots(url: str, verdict: object, rules: Rules, first: bool, actions: list[object]) -> None:
    request = make_request(url, 0, None)
    assert on_robots(request, verdict, rules, first_contact=first) == actions  # type: ignore[arg-type]


# -- responses: retries and Retry-After ----------------------------------------------------------------


def response(
    status: int | None,
    error: FetchError | None = None,
    *,
    body: bytes = b"",
    location: str | None = None,
    retry_after: str | None = None,
    elapsed_ms: int = 7,
) -> Response:
    return Response(status, "text/html", body, location, retry_after, elapsed_ms, error)


def decide(resp: Response, *, attempts: int = 0, rules: Rules = RULES, draw: float = 0.0) -> list[object]:
    request = Request(SEED, 1, HOST, 0, None, attempts=attempts)
    return list(on_response(request, resp, rules, now_epoch_s=NOW, draw=draw))


def pace(resp: Response) -> PaceHost:
    code = resp.error.code if resp.error else None
    return PaceHost(Answered(resp.status, resp.elapsed_ms, code))


TIMEOUT = FetchError("timeout", "no complete response within 30 s")
TRANSIENT = [
    pytest.param(response(None, TIMEOUT), id="timeout before headers"),
    pytest.param(response(200, TIMEOUT), id="timeout mid-body"),
    pytest.param(response(None, FetchError("dns", "no such host")), id="dns"),
    pytest.param(response(None, FetchError("connect", "refused")), id="connect"),
    pytest.param(response(200, FetchError("truncated", "body ended after 10 of 50 bytes")), id="truncated"),
    *(
        pytest.param(response(s, FetchError("http", str(s))), id=str(s))
        for s in (408, 429, 500, 502, 503, 504)
    ),
]
FINAL = [
    pytest.param(response(404, FetchError("http_4xx", "404 Not Found")), id="404"),
    pytest.param(response(403, FetchError("http_4xx", "403 Forbidden")), id="403"),
    pytest.param(response(501, FetchError("http_5xx", "501 Not Implemented")), id="501"),
    pytest.param(response(None, FetchError("tls", "bad certificate")), id="tls"),
    pytest.param(response(200, FetchError("encoding", "corrupt gzip body")), id="encoding"),
    pytest.param(response(None, FetchError("protocol", "bad status line")), id="protocol"),
]


@pytest.mark.parametrize("resp", TRANSIENT)
def test_a_transient_failure_is_retried_after_a_backoff(resp: Response) -> None:
    assert decide(resp) == [pace(resp), Retry(0.25, str(resp.error))]


@pytest.mark.parametrize("resp", TRANSIENT)
def test_the_last_attempt_is_recorded_with_its_own_error(resp: Response) -> None:
    actions = decide(resp, attempts=3)
    assert actions[0] == pace(resp)
    assert actions[-1] == Record(str(resp.error))


@pytest.mark.parametrize("resp", FINAL)
def test_a_lasting_failure_is_recorded_at_once(resp: Response) -> None:
    assert decide(resp) == [pace(resp), Record(str(resp.error))]


@pytest.mark.parametrize(
    ("attempts", "draw", "wait_s"),
    [
        pytest.param(0, 0.0, 0.25, id="first retry: 0.25 s at least"),
        pytest.param(0, 1.0, 0.5, id="first retry: 0.5 s at most"),
        pytest.param(1, 0.5, 0.75, id="second retry: between 0.5 and 1 s"),
        pytest.param(2, 0.0, 1.0, id="third retry: between 1 and 2 s"),
        pytest.param(20, 0.0, 30.0, id="capped at a minute"),
    ],
)
def test_backoff_doubles_with_jitter(attempts: int, draw: float, wait_s: float) -> None:
    rules = Rules(scope=RULES.scope, retries=30)
    actions = decide(response(None, TIMEOUT), attempts=attempts, rules=rules, draw=draw)
    assert actions[-1] == Retry(wait_s, str(TIMEOUT))


def test_no_retries_means_one_attempt() -> None:
    resp = response(None, TIMEOUT)
    assert decide(resp, rules=Rules(scope=RULES.scope, retries=0))[-1] == Record(str(TIMEOUT))


HTTP_DATE = format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("status", "retry_after", "blocked_s"),
    [
        pytest.param(503, "120", 120.0, id="503, seconds"),
        pytest.param(429, "120", 120.0, id="429, seconds"),
        pytest.param(429, HTTP_DATE, 90.0, id="429, HTTP-date"),
        pytest.param(503, "86400", 600.0, id="capped at 10 minutes"),
        pytest.param(503, "soon", None, id="unreadable: backoff only"),
        pytest.param(500, "120", None, id="only 429 and 503 block the host"),
    ],
)
def test_retry_after_blocks_the_host_and_delays_the_retry(
    status: int, retry_after: str, blocked_s: float | None
) -> None:
    resp = response(status, FetchError("http", str(status)), retry_after=retry_after)
    actions = decide(resp)
    if blocked_s is None:
        assert actions == [pace(resp), Retry(0.25, str(resp.error))]
    else:
        assert actions == [pace(resp), PaceHost(Blocked(blocked_s)), Retry(blocked_s, str(resp.error))]


def test_retry_after_on_the_last_attempt_still_blocks_the_host() -> None:
    resp = response(503, FetchError("http_5xx", "503"), retry_after="30")
    assert decide(resp, attempts=3) == [pace(resp), PaceHost(Blocked(30.0)), Record(str(resp.error))]


@pytest.mark.parametrize(
    ("resp", "record"),
    [
        pytest.param(response(200, body=b"<html>"), Record(None, store_body=True), id="a page is stored"),
        pytest.param(response(200), Record(None), id="an empty body: nothing to store"),
        pytest.param(
            response(200, FetchError("too_large", "cut"), body=b"x"),
            Record("too_large: cut", store_body=True),
            id="too large: stored, cut",
        ),
        pytest.param(
            response(404, FetchError("http_4xx", "404 Not Found"), body=b"gone"),
            Record("http_4xx: 404 Not Found"),
            id="an error page is not stored",
        ),
        pytest.param(response(304), Record(None), id="304 is not a redirect"),
    ],
)
def test_what_is_recorded(resp: Response, record: Record) -> None:
    assert decide(resp) == [pace(resp), record]


# -- redirects -----------------------------------------------------------------------------------------


def redirect(location: str | None, *, status: int = 301, **request: object) -> list[object]:
    req = Request(SEED + "a", 1, HOST, 2, SEED, **request)  # type: ignore[arg-type]
    resp = response(status, location=location)
    return list(on_response(req, resp, RULES, now_epoch_s=NOW, draw=0.0))[1:]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_record_and_its_target_a_url_of_its_own(status: int) -> None:
    target = make_request(SEED + "b", 2, SEED + "a", hops=1)
    assert redirect("/b", status=status) == [Enqueue((target,)), Record(None, SEED + "b")]


@pytest.mark.parametrize(
    ("location", "request_fields", "actions"),
    [
        pytest.param("/a", {}, [Refetch()], id="to itself: fetched again"),
        pytest.param("/a", {"self_redirects": 2}, [Refetch()], id="to itself a third time: again"),
        pytest.param(
            "/a",
            {"self_redirects": 3},
            [Record("redirect_loop: redirects to itself 4 times", SEED + "a")],
            id="to itself a fourth time: a loop",
        ),
        pytest.param(
            "/a", {"attempts": 3}, [Refetch()], id="to itself after 3 timeouts: its own budget, not --retries"
        ),
        pytest.param(
            SEED,
            {"hops": 1},
            [Record("redirect_loop: redirects back to the URL that redirected here", SEED)],
            id="A to B back to A",
        ),
        pytest.param(
            "/c",
            {"hops": MAX_REDIRECT_HOPS},
            [Record(f"redirect: more than {MAX_REDIRECT_HOPS} redirects in a row", SEED + "c")],
            id="too many hops",
        ),
        pytest.param(
            "https://elsewhere.invalid/",
            {},
            [Record("off_scope: redirect target is outside the crawl's scope", "https://elsewhere.invalid/")],
            id="out of scope",
        ),
        pytest.param(
            "/" + "x/" * 30,
            {},
            [Record("trap: redirect target: more than 20 path segments", SEED + "x/" * 30)],
            id="into a trap",
        ),
        pytest.param(
            "mailto:someone@site.test",
            {},
            [Record("redirect: Location is not an http(s) URL")],
            id="not http(s)",
        ),
        pytest.param(None, {}, [Record("redirect: 301 without a Location")], id="no Location"),
    ],
)
def test_redirect_rules(location: str | None, request_fields: dict[str, int], actions: list[object]) -> None:
    assert redirect(location, **request_fields) == actions


# -- links, depth and traps ----------------------------------------------------------------------------

LINKS = [SEED + "x", SEED + "y", "https://other.invalid/z"]


@pytest.mark.parametrize(
    ("depth", "max_depth", "count", "follow"),
    [
        pytest.param(0, None, 2, LINKS[:2], id="in-scope links only"),
        pytest.param(1, 2, 2, LINKS[:2], id="under --max-depth: followed"),
        pytest.param(2, 2, 2, [], id="at --max-depth: counted, not followed"),
    ],
)
def test_links_to_follow(depth: int, max_depth: int | None, count: int, follow: list[str]) -> None:
    rules = Rules(scope=RULES.scope, max_depth=max_depth)
    page = Request(SEED, 1, HOST, depth, None)
    assert links_to_follow(page, LINKS, rules) == (count, follow)


def test_a_link_is_queued_one_hop_deeper() -> None:
    page = Request(SEED, 1, HOST, 3, None)
    assert on_link(page, SEED + "x", 42, RULES) == Request(SEED + "x", 42, HOST, 4, SEED)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (SEED + "a/a/a/", "path segment 'a' repeated more than 2 times in a row"),
        (SEED + "s/" * 21, "more than 20 path segments"),
        (SEED + "q" * 2100, "URL longer than 2083 characters"),
    ],
)
def test_a_trap_link_is_settled_never_queued(url: str, reason: str) -> None:
    page = Request(SEED, 1, HOST, 0, None)
    decision = on_link(page, url, 7, Rules(scope=RULES.scope, traps=TrapLimits()))
    assert isinstance(decision, SettleTrap) and decision.reason == reason and decision.request.depth == 1


# -- the frontier enforces the pacing, on virtual time ---------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def urls(n: int, host: str = "https://site.test/") -> list[Request]:
    return [make_request(f"{host}p{i}", 0, None) for i in range(n)]


async def test_delay_spaces_lease_starts_of_one_host() -> None:
    clock = Clock()
    frontier = MemoryFrontier(Politeness(per_host=2, delay_s=0.5), clock=clock)
    await frontier.add(urls(5))
    starts = []
    while len(starts) < 3:
        batch = await frontier.lease(5)
        starts += [clock.now] * len(batch.leases)
        for lease in batch.leases:
            await frontier.ack(lease, None)  # type: ignore[arg-type]
        clock.now += 0.1
    assert [round(b - a, 2) for a, b in pairwise(starts)] == [0.5, 0.5]


async def test_per_host_caps_requests_in_flight() -> None:
    frontier = MemoryFrontier(Politeness(per_host=2), clock=Clock())
    await frontier.add(urls(5) + urls(1, "https://other.test/"))
    batch = await frontier.lease(10)
    hosts = [lease.request.host for lease in batch.leases]
    assert hosts.count(HOST) == 2 and hosts.count(host_key("https://other.test/")) == 1


async def test_a_retry_after_block_holds_every_url_of_the_host() -> None:
    clock = Clock()
    frontier = MemoryFrontier(Politeness(per_host=2), clock=clock)
    await frontier.add(urls(3))
    await frontier.observe(HOST, Blocked(120.0))
    batch = await frontier.lease(3)
    assert batch.leases == [] and batch.wait_s == pytest.approx(120.0)
    clock.now += 120.0
    assert len((await frontier.lease(3)).leases) == 2


async def test_backoff_observed_by_the_frontier_spaces_the_host() -> None:
    clock = Clock()
    frontier = MemoryFrontier(Politeness(per_host=1), clock=clock)
    await frontier.add(urls(3))
    lease = (await frontier.lease(1)).leases[0]
    pace_after = await frontier.observe(HOST, Answered(503, 5))
    await frontier.ack(lease, None)  # type: ignore[arg-type]
    assert pace_after.delay_s == STEP_S
    assert (await frontier.lease(1)).wait_s == pytest.approx(STEP_S)
    clock.now += STEP_S
    assert len((await frontier.lease(1)).leases) == 1

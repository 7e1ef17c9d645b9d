"""The crawl's rules: given what happened, what to do next (see the package docstring).

Each function answers one question the engine asks in a URL's life:

    on_robots     robots.txt was consulted: fetch, record as blocked, or wait for robots.txt?
    on_response   a response (or a failure) came back: retry, refetch, follow, or record?
    links_to_follow, on_link   a page's links: which count, which are followed, which are traps?

Nothing here reads a clock or draws a random number: `now_epoch_s` (for an HTTP-date Retry-After) and
`draw` (a number in [0, 1) for the backoff's jitter) are arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from crawlpool.fetch import REDIRECT_STATUSES, Response
from crawlpool.frontier.base import Request
from crawlpool.policy.actions import (
    Action,
    Enqueue,
    Fetch,
    PaceHost,
    Record,
    Refetch,
    Release,
    Retry,
    SettleTrap,
)
from crawlpool.policy.pacing import Answered, Blocked, FloorRaised
from crawlpool.retries import backoff_s, parse_retry_after
from crawlpool.robots import RobotsRules, RobotsUnavailable
from crawlpool.scope import Scope
from crawlpool.traps import TrapLimits, trap_reason
from crawlpool.urls import fingerprint, host_key, normalize_url

MAX_REDIRECT_HOPS = 20
MAX_SELF_REDIRECTS = 3  # a page redirecting to itself is fetched again this many times at most
# Statuses whose Retry-After means "the whole host, not just this URL" (RFC 9110 §10.2.3).
RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class Rules:
    """The options the rules read, from `CrawlConfig` and the seeds."""

    scope: Scope
    traps: TrapLimits = field(default_factory=TrapLimits)
    max_depth: int | None = None
    retries: int = 3
    retry_backoff_s: float = 0.5
    delay_s: float = 0.0  # --delay: the floor of every host's delay


def make_request(
    url: str, depth: int, referrer: str | None, hops: int = 0, *, like: Request | None = None
) -> Request:
    """A frontier request for a normalized URL; `like`: of the same kind and lastmod as that one (a
    redirect's target is fetched as what redirected to it)."""
    if like is None:
        return Request(url, fingerprint(url), host_key(url), depth, referrer, hops=hops)
    return Request(
        url, fingerprint(url), host_key(url), depth, referrer, hops=hops, kind=like.kind, lastmod=like.lastmod
    )


def on_robots(
    request: Request, verdict: RobotsRules | RobotsUnavailable, rules: Rules, *, first_contact: bool
) -> list[Action]:
    """What to do with a leased URL once its host's robots.txt answered. `first_contact`: robots.txt
    was requested just now, under this lease, so that request used the host's turn."""
    if isinstance(verdict, RobotsUnavailable):
        if verdict.failures > rules.retries:
            return [Record(f"robots: {verdict.reason}", fetched=False)]
        return [PaceHost(Blocked(verdict.retry_in_s)), Release()]
    actions: list[Action] = []
    delay_s = rules.delay_s
    if verdict.crawl_delay_s is not None:
        actions.append(PaceHost(FloorRaised(verdict.crawl_delay_s)))
        delay_s = max(delay_s, verdict.crawl_delay_s)
    if not verdict.allows(request.url):
        actions.append(Record("robots: disallowed by robots.txt", fetched=False, robots_blocked=True))
    elif first_contact and delay_s > 0:
        # The robots.txt request started after the lease did: the page waits a whole delay from now.
        actions += [PaceHost(Blocked(delay_s)), Release()]
    else:
        actions.append(Fetch())
    return actions


def on_response(
    request: Request, response: Response, rules: Rules, *, now_epoch_s: float, draw: float
) -> list[Action]:
    """What to do after a request: pace the host by what it answered, then exactly one of Retry,
    Refetch or Record (with an Enqueue of the redirect target before a Record that follows one)."""
    status = response.status
    error_code = response.error.code if response.error is not None else None
    actions: list[Action] = [PaceHost(Answered(status, response.elapsed_ms, error_code))]
    retry_after_s = None
    if status in RETRY_AFTER_STATUSES:
        retry_after_s = parse_retry_after(response.retry_after, now_epoch_s)
        if retry_after_s:
            actions.append(PaceHost(Blocked(retry_after_s)))
    if response.retryable and request.attempts < rules.retries:
        wait_s = backoff_s(request.attempts, draw, rules.retry_backoff_s)
        actions.append(Retry(max(wait_s, retry_after_s or 0.0), str(response.error)))
        return actions
    if status in REDIRECT_STATUSES:
        if not response.location:
            return [*actions, Record(f"redirect: {status} without a Location")]
        return actions + on_redirect(request, response.location, rules)
    error = response.error
    store = bool(response.body) and (error is None or error.code == "too_large")
    actions.append(Record(str(error) if error is not None else None, store_body=store))
    return actions


def on_redirect(request: Request, location: str, rules: Rules) -> list[Action]:
    """A redirect is a record of its own; its target is queued as a URL of its own, one hop further
    and at the same depth (a redirect is not a link), so it is scope-, trap- and robots-checked and
    deduplicated like any link. A page redirecting to itself is fetched again (`Refetch`), a few times."""
    target = normalize_url(location, request.url)
    if target is None:
        return [Record("redirect: Location is not an http(s) URL")]
    if target == request.url:
        if request.self_redirects < MAX_SELF_REDIRECTS:
            return [Refetch()]
        return [Record(f"redirect_loop: redirects to itself {MAX_SELF_REDIRECTS + 1} times", target)]
    if request.hops > 0 and target == request.referrer:
        return [Record("redirect_loop: redirects back to the URL that redirected here", target)]
    if request.hops >= MAX_REDIRECT_HOPS:
        return [Record(f"redirect: more than {MAX_REDIRECT_HOPS} redirects in a row", target)]
    # A requisite (an image, a stylesheet) may be on any host, and so may where it moved to.
    if request.kind != "requisite" and not rules.scope.allows(target):
        return [Record("off_scope: redirect target is outside the crawl's scope", target)]
    reason = trap_reason(target, rules.traps)
    if reason is not None:
        return [Record(f"trap: redirect target: {reason}", target)]
    return [
        Enqueue((make_request(target, request.depth, request.url, request.hops + 1, like=request),)),
        Record(None, target),
    ]


def links_to_follow(request: Request, found: Iterable[str], rules: Rules) -> tuple[int, list[str]]:
    """A page's links: how many are in scope (the record's `links`), and those to follow (none when
    the page is at `max_depth`)."""
    in_scope = [url for url in found if rules.scope.allows(url)]
    if rules.max_depth is not None and request.depth >= rules.max_depth:
        return len(in_scope), []
    return len(in_scope), in_scope


def on_link(request: Request, url: str, fp: int, rules: Rules) -> Request | SettleTrap:
    """A link of `request`'s page to follow (`fp` is its fingerprint): the Request to queue, or the
    trap it falls into (recorded once, never requested)."""
    link = Request(url, fp, host_key(url), request.depth + 1, request.url)
    reason = trap_reason(url, rules.traps)
    return link if reason is None else SettleTrap(link, reason)


def on_requisite(request: Request, url: str, fp: int, rules: Rules) -> Request | SettleTrap:
    """A requisite of `request`'s page (`--page-requisites`): from any host, at the page's depth (it is
    not a hop), still trap-checked; robots.txt and politeness apply when it is fetched."""
    requisite = Request(url, fp, host_key(url), request.depth, request.url, kind="requisite")
    reason = trap_reason(url, rules.traps)
    return requisite if reason is None else SettleTrap(requisite, reason)

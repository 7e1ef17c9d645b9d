"""Politeness, asserted from the test site's request log: per-host limits and delays across two hosts,
robots.txt outcomes, Crawl-delay, Retry-After and exact attempt counts."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from crawlpool import crawl
from crawlpool.records import Page
from tests.polite_site import Hit, PoliteSite, Sends, page, redirect, sequence, text

pytestmark = pytest.mark.slow  # wall-clock crawls over real sockets: the smoke tests

HOSTS = ("127.0.0.1", "localhost")
Served = Callable[[PoliteSite], Awaitable[int]]
TOLERANCE_S = 0.005  # timer and scheduling slack between two clock readings


@pytest.fixture
async def serve() -> AsyncIterator[Served]:
    servers: list[TestServer] = []

    async def start(site: PoliteSite) -> int:
        server = TestServer(site.app(), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server.port  # type: ignore[no-any-return]

    yield start
    for server in servers:
        await server.close()


async def run(seeds: list[str], tmp_path: Path, **options: Any) -> dict[str, Page]:
    options.setdefault("retries", 0)
    result = await crawl(seeds, output=tmp_path / "out", **options)
    return {p.url: p for p in result.pages}


def max_overlap(hits: list[Hit]) -> int:
    events = sorted([(h.start, 1) for h in hits] + [(h.end, -1) for h in hits])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def two_host_site(port: int, pages: int = 6, delay_s: float = 0.0) -> PoliteSite:
    site = PoliteSite()
    links = [f"http://{h}:{port}/p/{i}" for h in HOSTS for i in range(pages)]
    site.on("/", page(*links))
    for i in range(pages):
        site.on(f"/p/{i}", page(delay_s=delay_s))
    return site


async def test_one_request_at_a_time_and_the_delay_between_starts_per_host(
    serve: Served, tmp_path: Path
) -> None:
    site = PoliteSite()
    port = await serve(site)
    site.behaviours.update(two_host_site(port, delay_s=0.01).behaviours)
    sends = Sends()
    seeds = [f"http://{h}:{port}/" for h in HOSTS]
    await run(seeds, tmp_path, per_host=1, delay_s=0.05, concurrency=8, middlewares=[sends.middleware])
    for host in HOSTS:
        hits = site.hits_of(host)
        assert [h.path for h in hits][:1] == ["/robots.txt"]
        assert len(hits) == len(sends.of(host)) == 1 + 1 + 6  # robots.txt, the seed, six pages
        for before, after in itertools.pairwise(hits):
            assert after.start >= before.end - TOLERANCE_S, "two requests in flight to one host"
        gaps = [after - before for before, after in itertools.pairwise(sends.of(host))]
        assert min(gaps) >= 0.05 - TOLERANCE_S, f"delay between starts not kept: {gaps}"
    both = sorted(site.hits, key=lambda h: h.start)
    assert max_overlap(both) == 2, "the two hosts should be crawled side by side"


async def test_per_host_caps_requests_in_flight(serve: Served, tmp_path: Path) -> None:
    site = PoliteSite()
    port = await serve(site)
    site.on("/", page(*(f"/p/{i}" for i in range(10))))
    for i in range(10):
        site.on(f"/p/{i}", page(delay_s=0.03))
    await run([f"http://127.0.0.1:{port}/"], tmp_path, per_host=3, concurrency=16)
    assert max_overlap(site.hits_of("127.0.0.1")) == 3


async def test_a_slow_host_does_not_hold_back_another(serve: Served, tmp_path: Path) -> None:
    site = PoliteSite()
    port = await serve(site)
    site.on("/", page("/p/0", delay_s=0.5), host="127.0.0.1")
    site.on("/", page(*(f"/p/{i}" for i in range(8))), host="localhost")
    for i in range(8):
        site.on(f"/p/{i}", page(delay_s=0.5), host="127.0.0.1")
        site.on(f"/p/{i}", page(), host="localhost")
    await run([f"http://{h}:{port}/" for h in HOSTS], tmp_path, per_host=1, concurrency=4)
    slow, fast = site.hits_of("127.0.0.1"), site.hits_of("localhost")
    assert len(fast) == 1 + 1 + 8
    assert fast[-1].end < slow[2].start, "the fast host waited for the slow one"


ROBOTS = "User-agent: *\nDisallow: /\n\nUser-agent: crawlpool\nDisallow: /private\n"


@pytest.mark.parametrize(
    ("robots", "options", "blocked"),
    [
        (text(ROBOTS), {}, {"/private"}),  # the crawlpool group wins over *
        (text(ROBOTS), {"user_agent": "otherbot/1.0"}, {"/", "/a", "/private"}),  # * applies
        (text(ROBOTS), {"robots": False}, set()),
        (text("nothing", status=404), {}, set()),
        (text("nothing", status=403), {}, set()),
        (text("oops", status=500), {}, {"/", "/a", "/private"}),  # disallow while unavailable
        (text("slow down", status=429), {}, {"/", "/a", "/private"}),
        (redirect("/real-robots.txt"), {}, {"/private"}),
        (text("User-agent: *\nDisallow: /priv\xe9\nDisallow: /private\n\xff\xfe".encode("latin-1")), {},
         {"/private"}),
    ],
    ids=["200", "other-agent", "no-robots", "404", "403", "500", "429", "redirected", "latin-1"],
)  # fmt: skip
async def test_robots_outcomes(
    serve: Served, tmp_path: Path, robots: Any, options: dict[str, Any], blocked: set[str]
) -> None:
    site = PoliteSite()
    port = await serve(site)
    site.on("/robots.txt", robots)
    site.on("/real-robots.txt", text(ROBOTS))
    site.on("/", page("/a", "/private"))
    site.on("/a", page())
    site.on("/private", page())
    base = f"http://127.0.0.1:{port}"
    records = await run([base + "/"], tmp_path, **options)
    requested = {h.path for h in site.hits}
    expected_fetched = {"/", "/a", "/private"} - blocked
    assert requested - {"/robots.txt", "/real-robots.txt"} == expected_fetched
    assert ("/robots.txt" in requested) is options.get("robots", True)
    for path in blocked:
        if path == "/" or "/" not in blocked:
            assert records[base + path].error_code == "robots"
            assert records[base + path].status is None


async def test_robots_unreachable_blocks_the_host(tmp_path: Path) -> None:
    records = await run(["http://127.0.0.1:9/"], tmp_path)  # discard port: nothing listens
    (only,) = records.values()
    assert only.error is not None and only.error.startswith("robots: ")


async def test_crawl_delay_spaces_requests(serve: Served, tmp_path: Path) -> None:
    site = PoliteSite()
    port = await serve(site)
    site.on("/robots.txt", text("User-agent: *\nCrawl-delay: 0.1\n"))
    site.on("/", page("/a", "/b", "/c"))
    for path in ("/a", "/b", "/c"):
        site.on(path, page())
    sends = Sends()
    await run([f"http://127.0.0.1:{port}/"], tmp_path, per_host=4, middlewares=[sends.middleware])
    assert len(site.hits_of("127.0.0.1")) == len(sends.of("127.0.0.1")) == 5
    gaps = [after - before for before, after in itertools.pairwise(sends.of("127.0.0.1"))]
    assert min(gaps) >= 0.1 - TOLERANCE_S, gaps


@pytest.mark.parametrize(
    ("status", "retry_after", "least_wait_s"),
    [(429, lambda: "1", 1.0), (503, lambda: formatdate(__import__("time").time() + 2, usegmt=True), 1.0)],
    ids=["429-seconds", "503-http-date"],
)
async def test_retry_after_holds_back_the_whole_host(
    serve: Served, tmp_path: Path, status: int, retry_after: Callable[[], str], least_wait_s: float
) -> None:
    site = PoliteSite()
    port = await serve(site)
    site.on("/", page("/busy", "/a", "/b"))

    async def busy_then_ok(request: Any) -> Any:
        return await text("busy", status=status, headers={"Retry-After": retry_after()})(request)

    site.on("/busy", sequence(busy_then_ok, page()))
    site.on("/a", page(delay_s=0.05))
    site.on("/b", page(delay_s=0.05))
    records = await run([f"http://127.0.0.1:{port}/"], tmp_path, retries=1, per_host=1)
    busy = [h for h in site.hits if h.path == "/busy"]
    assert len(busy) == 2
    assert busy[1].start - busy[0].end >= least_wait_s - TOLERANCE_S
    blocked_window = [h for h in site.hits if busy[0].end < h.start < busy[0].end + least_wait_s - 0.01]
    assert blocked_window == [], "the host was hit during its Retry-After"
    assert records[f"http://127.0.0.1:{port}/busy"].status == 200


async def test_exact_attempt_counts(serve: Served, tmp_path: Path) -> None:
    site = PoliteSite()
    port = await serve(site)
    site.on("/", page("/flaky", "/gone", "/once", "/teapot"))
    site.on("/flaky", text("boom", status=500))
    site.on("/gone", text("gone", status=404))
    site.on("/once", sequence(text("later", status=502), page()))
    site.on("/teapot", text("no", status=418))
    result = await crawl(
        [f"http://127.0.0.1:{port}/"], output=tmp_path / "out", retries=2, retry_backoff_s=0.01
    )
    counts = {p: sum(1 for h in site.hits if h.path == p) for p in ("/flaky", "/gone", "/once", "/teapot")}
    assert counts == {"/flaky": 3, "/gone": 1, "/once": 2, "/teapot": 1}
    by_path = {p.url.split(str(port))[1]: p for p in result.pages}
    assert (by_path["/flaky"].status, by_path["/flaky"].error_code) == (500, "http_5xx")
    assert (by_path["/once"].status, by_path["/once"].error) == (200, None)
    assert result.stats.retries == 3
    assert result.stats.requests == 1 + 3 + 1 + 2 + 1  # /, flaky, gone, once, teapot (robots.txt apart)
    manifest = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    assert len(manifest) == 5


async def test_default_user_agent_names_crawlpool_and_the_project(serve: Served, tmp_path: Path) -> None:
    site = PoliteSite()
    seen: list[str] = []

    async def record_ua(request: Any) -> Any:
        seen.append(request.headers["User-Agent"])
        return await page()(request)

    port = await serve(site)
    site.on("/", record_ua)
    await run([f"http://127.0.0.1:{port}/"], tmp_path)
    from crawlpool import __version__

    assert seen == [f"crawlpool/{__version__} (+https://github.com/crawlpool/crawlpool)"]


async def test_redirects_hop_by_hop(serve: Served, tmp_path: Path) -> None:
    site = PoliteSite()
    port = await serve(site)
    base = f"http://127.0.0.1:{port}"
    links = ["/r1", "/la", "/out", "/self", "/selfloop", "/old", "/h/0"]
    site.on("/", page(*links))
    site.on("/r1", redirect("/r2"))
    site.on("/r2", redirect("/final", status=307))
    site.on("/final", page())
    site.on("/la", redirect("/lb"))
    site.on("/lb", redirect("/la", status=302))
    site.on("/out", redirect("http://elsewhere.invalid/"))
    site.on("/self", sequence(redirect("/self", status=302), page()))
    site.on("/selfloop", redirect("/selfloop", status=302))
    site.on("/old", redirect("/"))
    for i in range(25):
        site.on(f"/h/{i}", redirect(f"/h/{i + 1}"))
    records = await run([base + "/"], tmp_path)

    def rec(path: str) -> tuple[int | None, str | None, str | None, bool]:
        r = records[base + path]
        return r.status, r.final_url.removeprefix(base), r.error_code, r.path is not None

    assert rec("/r1") == (301, "/r2", None, False)
    assert rec("/r2") == (307, "/final", None, False)
    assert rec("/final") == (200, "/final", None, True)
    assert records[base + "/final"].referrer == base + "/r2"
    assert rec("/la") == (301, "/lb", None, False)
    assert rec("/lb") == (302, "/la", "redirect_loop", False)
    assert rec("/out") == (301, "http://elsewhere.invalid/", "off_scope", False)
    assert rec("/self") == (200, "/self", None, True)
    assert rec("/selfloop") == (302, "/selfloop", "redirect_loop", False)
    assert rec("/old") == (301, "/", None, False)
    assert rec("/h/20") == (301, "/h/21", "redirect", False)
    assert base + "/h/21" not in records
    requested = [h.path for h in site.hits]
    assert requested.count("/") == 1, "a redirect to a page already fetched fetched it again"
    assert requested.count("/self") == 2
    assert requested.count("/selfloop") == 4
    assert "/h/21" not in requested
    assert len(requested) == len(set(requested)) + 1 + 3  # /self twice, /selfloop four times


async def test_trap_links_are_recorded_and_never_requested(serve: Served, tmp_path: Path) -> None:
    site = PoliteSite()
    port = await serve(site)
    base = f"http://127.0.0.1:{port}"
    repeated = "/cal/cal/cal/x"
    deep = "/" + "/".join(f"d{i}" for i in range(21))
    long = "/long?q=" + "x" * 2100
    site.on("/", page(repeated, deep, long, "/ok/ok/fine"))
    site.on("/ok/ok/fine", page())
    result = await crawl([base + "/"], output=tmp_path / "out", retries=0)
    by_url = {p.url: p for p in result.pages}
    for path in (repeated, deep, long):
        assert by_url[base + path].error_code == "trap", path
        assert by_url[base + path].referrer == base + "/"
    assert by_url[base + "/ok/ok/fine"].status == 200
    assert result.stats.traps == 3
    assert by_url[base + "/"].links == 4
    assert {h.path.split("?")[0] for h in site.hits} == {"/robots.txt", "/", "/ok/ok/fine"}
    loose = await crawl([base + "/"], output=tmp_path / "loose", retries=0, max_repeats=3, max_segments=30)
    assert {p.url for p in loose.pages if p.error_code == "trap"} == {base + long}

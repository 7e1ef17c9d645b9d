"""--sitemaps: the parser on its own, then crawls of local sites whose pages only sitemaps reach."""

from __future__ import annotations

import gzip
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from crawlpool import crawl
from crawlpool.frontier.base import Request
from crawlpool.policy.rules import Rules
from crawlpool.policy.sitemap_rules import MAX_SITEMAP_LEVELS, root_sitemaps, sitemap_entries
from crawlpool.scope import Scope
from crawlpool.sitemaps import SitemapEntry, SitemapParser
from tests.redis_server import drop_crawl, new_crawl_id, redis_url

Server = Callable[..., Awaitable[TestServer]]
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(*locs: str, lastmod: str | None = None) -> bytes:
    mod = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
    items = "".join(f"<url><loc>{loc}</loc>{mod}</url>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {NS}>{items}</urlset>'.encode()


def index(*locs: str) -> bytes:
    items = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f"<sitemapindex {NS}>{items}</sitemapindex>".encode()


def parse(body: bytes, step: int = 5, **limits: int) -> tuple[list[SitemapEntry], SitemapParser]:
    parser = SitemapParser(**limits)
    entries: list[SitemapEntry] = []
    for i in range(0, len(body), step):
        entries += parser.feed(body[i : i + step])
    return entries + parser.close(), parser


# -- the parser ------------------------------------------------------------------------------------


def test_a_urlset_fed_in_small_chunks_gives_each_url_with_its_lastmod() -> None:
    entries, parser = parse(urlset("http://a.test/1", "http://a.test/2", lastmod="2024-05-01"))
    assert entries == [
        SitemapEntry("http://a.test/1", "2024-05-01"),
        SitemapEntry("http://a.test/2", "2024-05-01"),
    ]
    assert (parser.problem, parser.kind) == (None, "urlset")


def test_gzip_is_recognised_by_its_magic_number_and_an_index_names_sitemaps() -> None:
    entries, parser = parse(gzip.compress(index("http://a.test/s1.xml.gz")))
    assert entries == [SitemapEntry("http://a.test/s1.xml.gz", None, is_sitemap=True)]
    assert parser.bytes == len(index("http://a.test/s1.xml.gz"))


def test_a_plain_text_sitemap_has_one_url_per_line() -> None:
    entries, _ = parse(b"http://a.test/x\r\n\n  http://a.test/y  \nhttp://a.test/z")
    assert [e.loc for e in entries] == ["http://a.test/x", "http://a.test/y", "http://a.test/z"]


@pytest.mark.parametrize(
    ("limits", "kept", "problem"),
    [
        ({"max_urls": 2}, 2, "sitemap_limit: more than 2 URLs; the rest were ignored"),
        ({"max_urls": 3}, 3, None),  # exactly at the limit is allowed
        ({"max_bytes": 200}, 2, "sitemap_limit: larger than 200 bytes; the rest was ignored"),
    ],
)
def test_the_protocol_limits_stop_the_parser(limits: dict[str, int], kept: int, problem: str | None) -> None:
    entries, parser = parse(urlset("http://a.test/1", "http://a.test/2", "http://a.test/3"), **limits)
    assert len(entries) == kept
    assert parser.problem == problem
    assert parser.full


def test_a_gzip_bomb_is_inflated_only_up_to_the_cap() -> None:
    bomb = gzip.compress(urlset("http://a.test/1")[: -len("</urlset>")] + b" " * 20_000_000)
    parser = SitemapParser(max_bytes=1_000_000)
    entries = parser.feed(bomb)  # one chunk that inflates to 20 MB
    assert [e.loc for e in entries] == ["http://a.test/1"]
    assert parser.bytes == 1_000_000 and parser.full
    assert parser.problem == "sitemap_limit: larger than 1000000 bytes; the rest was ignored"


def test_malformed_xml_keeps_what_came_before_the_fault() -> None:
    entries, parser = parse(b"<urlset><url><loc>http://a.test/1</loc></url><url><loc>http://a.test/2</lo")
    assert [e.loc for e in entries] == ["http://a.test/1"]
    assert parser.problem is not None and parser.problem.startswith("sitemap: malformed XML")


def test_external_entities_are_never_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("http://a.test/leaked")
    body = f'<!DOCTYPE u [<!ENTITY e SYSTEM "{secret.as_uri()}">]><urlset><url><loc>&e;</loc></url></urlset>'
    entries, _ = parse(body.encode())
    assert entries == []


def test_sitemap_entries_apply_scope_traps_and_the_nesting_limit() -> None:
    rules = Rules(scope=Scope(["http://a.test/"], exclude=["/private"]))
    top = Request("http://a.test/s.xml", 1, "http://a.test:80", MAX_SITEMAP_LEVELS - 2, kind="sitemap")
    entries = [
        SitemapEntry("http://a.test/p", "2024-01-01"),
        SitemapEntry("http://b.test/p"),  # out of scope
        SitemapEntry("http://a.test/private/x"),  # excluded
        SitemapEntry("http://a.test/" + "a/" * 30),  # a trap
        SitemapEntry("http://a.test/child.xml", is_sitemap=True),
        SitemapEntry("http://a.test/s.xml", is_sitemap=True),  # names itself
    ]
    queue, traps, dropped = sitemap_entries(top, entries, rules)
    page, child = queue
    assert (page.url, page.depth, page.kind, page.lastmod, page.referrer) == (
        "http://a.test/p",
        0,
        "page",
        "2024-01-01",
        "http://a.test/s.xml",
    )
    assert (child.kind, child.depth) == ("sitemap", MAX_SITEMAP_LEVELS - 1)
    assert [t.request.url for t in traps] == ["http://a.test/" + "a/" * 30]
    assert dropped == 3
    # One level deeper, an index's sitemaps are no longer followed.
    deepest = Request("http://a.test/c.xml", 2, "http://a.test:80", MAX_SITEMAP_LEVELS - 1, kind="sitemap")
    assert sitemap_entries(deepest, [SitemapEntry("http://a.test/d.xml", is_sitemap=True)], rules)[0] == []


def test_root_sitemaps_are_the_robots_lines_in_scope_else_sitemap_xml() -> None:
    rules = Rules(scope=Scope(["http://a.test/"], include=["/docs/"]))
    named = root_sitemaps("http://a.test:80", ["/maps/one.xml", "http://b.test/off.xml"], rules)
    assert [(r.url, r.kind, r.depth) for r in named] == [("http://a.test/maps/one.xml", "sitemap", 0)]
    # Filters are for pages: /sitemap.xml is read although it matches no include pattern.
    assert [r.url for r in root_sitemaps("http://a.test:80", [], rules)] == ["http://a.test/sitemap.xml"]


# -- crawls of local sites -------------------------------------------------------------------------


async def serve(aiohttp_server: Server, routes: dict[str, Any]) -> tuple[str, list[str]]:
    """A site of `routes` (path -> body, or (status, body)); unknown paths are 404. Returns its base
    URL and the log of requested paths."""
    log: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        log.append(request.path_qs)
        route = routes.get(request.path_qs)
        if route is None:
            return web.Response(status=404, text="not here")
        status, body = route if isinstance(route, tuple) else (200, route)
        if callable(body):
            body = body(base)
        ctype = "text/html" if body.lstrip().startswith(b"<!doctype") else "application/xml"
        headers = {"Location": "/maps/index.xml"} if status == 301 else {}
        return web.Response(status=status, body=body, content_type=ctype, headers=headers)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    return base, log


def page(*links: str) -> Callable[[str], bytes]:
    return lambda base: ("<!doctype html>" + "".join(f'<a href="{base}{p}">x</a>' for p in links)).encode()


def records(output: Path) -> dict[str, dict[str, Any]]:
    lines = (output / "manifest.jsonl").read_text().splitlines()
    by_url = {r["url"]: r for r in map(json.loads, lines)}
    assert len(by_url) == len(lines), "a URL has two records"
    return by_url


async def run(base: str, output: Path, **options: Any) -> dict[str, dict[str, Any]]:
    options = {"frontier": "sqlite", **options}
    await crawl([base + "/"], output=output, sitemaps=True, retries=0, **options)
    return records(output)


def frontier_url(backend: str) -> str:
    if backend != "redis":
        return backend
    return redis_url()  # skips when no redis-server is available


async def test_robots_sitemap_lines_find_an_orphan_page(aiohttp_server: Server, tmp_path: Path) -> None:
    base, log = await serve(
        aiohttp_server,
        {
            "/robots.txt": lambda b: f"User-agent: *\nAllow: /\nSitemap: {b}/maps/main.xml\n".encode(),
            "/": page("/linked.html"),
            "/linked.html": page(),
            "/maps/main.xml": lambda b: urlset(f"{b}/orphan.html", f"{b}/linked.html", lastmod="2024-02-03"),
            "/orphan.html": page(),
        },
    )
    by_url = await run(base, tmp_path / "out")
    assert set(by_url) == {base + p for p in ("/", "/linked.html", "/maps/main.xml", "/orphan.html")}
    sitemap = by_url[base + "/maps/main.xml"]
    assert (sitemap["kind"], sitemap["status"], sitemap["links"], sitemap["path"]) == (
        "sitemap",
        200,
        2,
        None,
    )
    orphan = by_url[base + "/orphan.html"]
    assert (orphan["kind"], orphan["depth"], orphan["referrer"]) == ("page", 0, base + "/maps/main.xml")
    assert orphan["path"] is not None
    assert "/sitemap.xml" not in log, "robots.txt named the sitemaps: no fallback"
    assert log.count("/maps/main.xml") == 1


async def test_without_sitemap_lines_sitemap_xml_is_read(aiohttp_server: Server, tmp_path: Path) -> None:
    base, log = await serve(
        aiohttp_server,
        {
            "/": page(),
            "/sitemap.xml": lambda b: f"{b}/orphan.html\n".encode(),  # a plain-text sitemap
            "/orphan.html": page(),
        },
    )
    by_url = await run(base, tmp_path / "out")
    assert by_url[base + "/sitemap.xml"]["kind"] == "sitemap"
    assert by_url[base + "/orphan.html"]["status"] == 200
    assert log.count("/robots.txt") == 1


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
async def test_an_index_of_gzipped_sitemaps_and_a_loop(
    aiohttp_server: Server, tmp_path: Path, backend: str
) -> None:
    base, log = await serve(
        aiohttp_server,
        {
            "/": page(),
            # The index names itself and a sitemap that names the index back: each is read once.
            "/sitemap.xml": lambda b: index(f"{b}/s1.xml.gz", f"{b}/s2.xml.gz", f"{b}/sitemap.xml"),
            "/s1.xml.gz": lambda b: gzip.compress(urlset(f"{b}/one.html")),
            "/s2.xml.gz": lambda b: gzip.compress(index(f"{b}/sitemap.xml", f"{b}/s3.xml")),
            "/s3.xml": lambda b: urlset(f"{b}/three.html"),
            "/one.html": page(),
            "/three.html": page(),
        },
    )
    options: dict[str, Any] = {"frontier": frontier_url(backend)}
    if backend == "redis":
        options["crawl_id"] = new_crawl_id()
    try:
        by_url = await run(base, tmp_path / "out", **options)
    finally:
        if backend == "redis":
            await drop_crawl(options["frontier"], options["crawl_id"])
    kinds = {url.removeprefix(base): r["kind"] for url, r in by_url.items()}
    assert kinds == {
        "/": "page",
        "/sitemap.xml": "sitemap",
        "/s1.xml.gz": "sitemap",
        "/s2.xml.gz": "sitemap",
        "/s3.xml": "sitemap",
        "/one.html": "page",
        "/three.html": "page",
    }
    assert [by_url[base + p]["depth"] for p in ("/sitemap.xml", "/s2.xml.gz", "/s3.xml")] == [0, 1, 2]
    assert all(log.count(p) == 1 for p in ("/sitemap.xml", "/s1.xml.gz", "/s2.xml.gz", "/s3.xml"))


async def test_a_sitemap_over_the_url_limit_keeps_the_first_50000(
    aiohttp_server: Server, tmp_path: Path
) -> None:
    locs = [f"/p{i}" for i in range(50_003)]
    base, _ = await serve(
        aiohttp_server, {"/": page(), "/sitemap.xml": lambda b: "\n".join(b + p for p in locs).encode()}
    )
    # Only the sitemap is crawled here: the pages it lists are excluded after they are counted.
    by_url = await run(base, tmp_path / "out", exclude=["/p"])
    sitemap = by_url[base + "/sitemap.xml"]
    assert sitemap["links"] == 50_000
    assert sitemap["error"] == "sitemap_limit: more than 50000 URLs; the rest were ignored"


async def test_a_malformed_sitemap_is_recorded_and_the_crawl_goes_on(
    aiohttp_server: Server, tmp_path: Path
) -> None:
    base, _ = await serve(
        aiohttp_server,
        {
            "/robots.txt": lambda b: f"Sitemap: {b}/bad.xml\nSitemap: {b}/good.xml\n".encode(),
            "/": page(),
            "/bad.xml": lambda b: f"<urlset><url><loc>{b}/before.html</loc></url><url><loc>".encode(),
            "/good.xml": lambda b: urlset(f"{b}/after.html"),
            "/before.html": page(),
            "/after.html": page(),
        },
    )
    by_url = await run(base, tmp_path / "out")
    bad = by_url[base + "/bad.xml"]
    assert bad["error"].startswith("sitemap: malformed XML")
    assert bad["links"] == 1
    assert by_url[base + "/before.html"]["status"] == 200
    assert by_url[base + "/after.html"]["status"] == 200


async def test_a_missing_sitemap_is_a_recorded_404_and_without_the_flag_none_is_asked(
    aiohttp_server: Server, tmp_path: Path
) -> None:
    base, log = await serve(aiohttp_server, {"/": page()})
    by_url = await run(base, tmp_path / "on")
    assert by_url[base + "/sitemap.xml"]["error"] == "http_4xx: 404 Not Found"
    log.clear()
    await crawl([base + "/"], output=tmp_path / "off", retries=0)
    assert "/sitemap.xml" not in log


async def test_a_redirected_sitemap_is_read_at_its_target(aiohttp_server: Server, tmp_path: Path) -> None:
    base, _ = await serve(
        aiohttp_server,
        {
            "/": page(),
            "/sitemap.xml": (301, b""),
            "/maps/index.xml": lambda b: urlset(f"{b}/orphan.html"),
            "/orphan.html": page(),
        },
    )
    by_url = await run(base, tmp_path / "out")
    moved = by_url[base + "/sitemap.xml"]
    assert (moved["kind"], moved["status"], moved["error"]) == ("sitemap", 301, None)
    target = by_url[base + "/maps/index.xml"]
    assert (target["kind"], target["links"], target["referrer"]) == ("sitemap", 1, base + "/sitemap.xml")
    assert by_url[base + "/orphan.html"]["status"] == 200


async def test_a_sitemap_robots_txt_disallows_is_not_fetched(aiohttp_server: Server, tmp_path: Path) -> None:
    base, log = await serve(
        aiohttp_server,
        {"/robots.txt": b"User-agent: *\nDisallow: /sitemap.xml\n", "/": page(), "/sitemap.xml": b"x"},
    )
    by_url = await run(base, tmp_path / "out")
    assert by_url[base + "/sitemap.xml"]["error"].startswith("robots")
    assert "/sitemap.xml" not in log

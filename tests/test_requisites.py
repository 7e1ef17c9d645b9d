"""--page-requisites: what stored pages need to render is fetched, from any host, and the mirror of such
a crawl renders offline in a real browser.

Two local servers on 127.0.0.1 (distinct hosts: distinct ports): the site, and an "asset host" whose
robots.txt disallows one image. The seed's host is 127.0.0.1, so the address guard lets both through.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from crawlpool import crawl
from crawlpool.mirror import build_mirror
from crawlpool.requisites import css_requisites, html_requisites
from tests.browser import chromium_binary, open_page

Server = Callable[..., Awaitable[TestServer]]
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2e6a8b40000000049454e44ae426082"
)


def test_html_requisites_in_document_order_without_data_or_links() -> None:
    page = b"""<!doctype html><html><head>
    <base href="/sub/">
    <link rel="stylesheet" href="site.css"><link rel="Shortcut Icon" href="/favicon.ico">
    <link rel="next" href="/page2"><script src="app.js"></script>
    <style>body { background: url('bg.png') } @import "extra.css";</style></head>
    <body><a href="/elsewhere">a link, not a requisite</a>
    <img src="a.png" srcset="a-2x.png 2x, a-3x.png 3x"><img src="data:image/png;base64,AAAA">
    <picture><source srcset="b.webp"></picture><video poster="/poster.jpg"></video>
    <input type="image" src="go.gif"><div style="background-image: url(tile.png)"></div>
    <img src="a.png"></body></html>"""
    found = html_requisites(page, "http://site.test/x/page.html", "text/html")
    assert [url.removeprefix("http://site.test") for url in found] == [
        "/sub/site.css",
        "/favicon.ico",
        "/sub/app.js",
        "/sub/bg.png",
        "/sub/extra.css",
        "/sub/a.png",
        "/sub/a-2x.png",
        "/sub/a-3x.png",
        "/sub/b.webp",
        "/poster.jpg",
        "/sub/go.gif",
        "/sub/tile.png",
    ]
    assert html_requisites(b"", "http://site.test/", "text/html") == []


def test_css_requisites() -> None:
    css = b"""@import "base.css"; @import url(print.css) print;
    @font-face { src: url("fonts/a.woff2") format("woff2"), url(data:font/woff;base64,AA) }
    .x { background: url( 'img/x.png' ) }"""
    found = css_requisites(css, "http://cdn.test/css/site.css")
    assert found == [
        "http://cdn.test/css/base.css",
        "http://cdn.test/css/print.css",
        "http://cdn.test/css/fonts/a.woff2",
        "http://cdn.test/css/img/x.png",
    ]


def asset_app() -> web.Application:
    files = {
        "/robots.txt": (b"User-agent: *\nDisallow: /private.png\n", "text/plain"),
        "/logo.png": (PNG, "image/png"),
        "/private.png": (PNG, "image/png"),
        "/theme.css": (b"@import 'colors.css'; .logo { width: 3px }", "text/css"),
        "/colors.css": (b"p { color: rgb(1, 2, 3) } body { background: url(bg.png) }", "text/css"),
        "/bg.png": (PNG, "image/png"),
    }

    async def handle(request: web.Request) -> web.Response:
        if request.path not in files:
            return web.Response(status=404)
        body, content_type = files[request.path]
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


def site_app(assets: str) -> web.Application:
    home = f"""<!doctype html><html><head><link rel="stylesheet" href="{assets}/theme.css">
    </head><body><p id="p">hello</p>
    <img id="logo" src="{assets}/logo.png"><img src="{assets}/private.png">
    <a href="/about">about</a><script src="/app.js"></script></body></html>"""

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/":
            return web.Response(text=home, content_type="text/html")
        if request.path == "/about":
            return web.Response(text="<p>about</p>", content_type="text/html")
        if request.path == "/app.js":
            return web.Response(text="document.body.dataset.js = 'ran';", content_type="text/javascript")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def crawl_with_requisites(aiohttp_server: Server, output: Path, **options: object) -> tuple[str, str]:
    asset_server = await aiohttp_server(asset_app(), host="127.0.0.1")
    assets = f"http://127.0.0.1:{asset_server.port}"
    site_server = await aiohttp_server(site_app(assets), host="127.0.0.1")
    site = f"http://127.0.0.1:{site_server.port}"
    await crawl([site + "/"], output=output, retries=0, **options)
    return site, assets


def records(output: Path) -> dict[str, dict[str, object]]:
    lines = (output / "manifest.jsonl").read_text().splitlines()
    return {r["url"]: r for r in map(json.loads, lines)}


async def test_requisites_come_from_any_host_at_the_pages_depth(
    aiohttp_server: Server, tmp_path: Path
) -> None:
    site, assets = await crawl_with_requisites(
        aiohttp_server, tmp_path / "out", page_requisites=True, max_depth=0
    )
    by_url = records(tmp_path / "out")
    requisites = {url: r for url, r in by_url.items() if r["kind"] == "requisite"}
    assert set(requisites) == {
        assets + "/theme.css",
        assets + "/colors.css",  # imported by theme.css
        assets + "/bg.png",  # named by colors.css
        assets + "/logo.png",
        assets + "/private.png",
        site + "/app.js",
    }
    assert all(r["depth"] == 0 for r in requisites.values()), "a requisite is not a hop"
    assert requisites[assets + "/private.png"]["error"] == "robots: disallowed by robots.txt"
    assert all(r["path"] for url, r in requisites.items() if not url.endswith("private.png"))
    assert site + "/about" not in by_url, "--max-depth 0 still stops links"


async def test_without_the_flag_only_links_are_fetched(aiohttp_server: Server, tmp_path: Path) -> None:
    site, assets = await crawl_with_requisites(aiohttp_server, tmp_path / "out")
    # the stylesheet is a <link>: in scope (the same host name), it is followed as a page
    assert set(records(tmp_path / "out")) == {site + "/", site + "/about", assets + "/theme.css"}


async def test_the_mirror_of_a_crawl_with_requisites_renders_offline(
    aiohttp_server: Server, tmp_path: Path
) -> None:
    """Open the mirrored home page from file:// with the servers closed and no network: the image is
    decoded, the stylesheet a stylesheet imports applies, and the script ran."""
    chromium_binary()
    output = tmp_path / "out"
    site, _ = await crawl_with_requisites(aiohttp_server, output, page_requisites=True)
    await asyncio.to_thread(build_mirror, output, tmp_path / "mirror")
    host = urlsplit(site).netloc.replace(":", "_") + "_http"
    home = tmp_path / "mirror" / host / "index.html"
    async with open_page(home.as_uri(), tmp_path / "profile") as page:
        seen = await page.wait_for(
            "document.getElementById('logo').complete",
            "[document.getElementById('logo').naturalWidth,"
            " getComputedStyle(document.getElementById('p')).color, document.body.dataset.js]",
        )
    assert seen == [1, "rgb(1, 2, 3)", "ran"]


@pytest.mark.parametrize("kind", ["requisite"])
def test_a_requisite_redirect_may_leave_the_scope(kind: str) -> None:
    from crawlpool.frontier.base import Request
    from crawlpool.policy.actions import Enqueue
    from crawlpool.policy.rules import Rules, on_redirect
    from crawlpool.scope import Scope
    from crawlpool.urls import fingerprint, host_key

    url = "http://cdn.test/logo.png"
    request = Request(url, fingerprint(url), host_key(url), 0, "http://site.test/", kind=kind)  # type: ignore[arg-type]
    actions = on_redirect(request, "http://cdn2.test/logo.png", Rules(scope=Scope(["http://site.test/"])))
    (enqueue,) = [a for a in actions if isinstance(a, Enqueue)]
    assert enqueue.requests[0].kind == "requisite" and enqueue.requests[0].url == "http://cdn2.test/logo.png"

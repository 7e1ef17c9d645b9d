"""`crawlpool mirror`: names (a pure function of the records), link rewriting, and a crawl of a local site
mirrored and opened from file:// in headless Chromium."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from crawlpool import crawl
from crawlpool.cli import main
from crawlpool.errors import ConfigError
from crawlpool.mirror import build_mirror, rewrite_css, rewrite_html
from crawlpool.mirror_paths import assign_names, mirror_name
from crawlpool.paths import page_path


@pytest.mark.parametrize(
    ("url", "html", "expected"),
    [
        ("https://h.test/", True, "h.test/index.html"),
        ("https://h.test/about", True, "h.test/about.html"),
        ("https://h.test/x/index.html", True, "h.test/x/index.html"),
        ("https://h.test/x/", True, "h.test/x/index.html"),
        ("https://h.test/a.php", True, "h.test/a.php.html"),
        ("https://h.test/old.htm", True, "h.test/old.htm"),
        ("https://h.test/list?page=2", True, "h.test/list@qpage=2.html"),
        ("https://h.test/style.css?v=1", False, "h.test/style@qv=1.css"),
        ("https://h.test/img.png", False, "h.test/img.png"),
        ("https://h.test/data", False, "h.test/data@"),
        ("http://h.test:8080/3.12/about", True, "h.test_8080_http/3.12@d/about.html"),
    ],
)
def test_mirror_names(url: str, html: bool, expected: str) -> None:
    assert mirror_name(page_path(url), html) == expected


def test_clashes_are_resolved_in_url_order() -> None:
    bodies = [
        ("https://h.test/x/index.html", page_path("https://h.test/x/index.html"), True),
        ("https://h.test/x/", page_path("https://h.test/x/"), True),
        ("https://h.test/about.html", page_path("https://h.test/about.html"), False),
        ("https://h.test/about", page_path("https://h.test/about"), True),
    ]
    names = assign_names(bodies)
    assert names == {
        "https://h.test/x/": "h.test/x/index.html",
        "https://h.test/x/index.html": "h.test/x/index-2.html",
        "https://h.test/about": "h.test/about.html",
        "https://h.test/about.html": "h.test/about-2.html",
    }
    assert assign_names(reversed(bodies)) == names  # the order given does not matter


def test_links_to_stored_bodies_become_relative_and_the_rest_absolute() -> None:
    stored = {
        "https://h.test/": "h.test/index.html",
        "https://h.test/about": "h.test/about.html",
        "https://h.test/style.css?v=1": "h.test/style@qv=1.css",
        "https://h.test/img%20one.png": "h.test/img%20one.png",
    }
    page = b"""<html><head><base href="/sub/"><link rel="stylesheet" href="/style.css?v=1"></head>
    <body><a href="../about#team">about</a> <a href="missing">gone</a> <a href="mailto:x@h.test">mail</a>
    <img src="/img%20one.png" srcset="/img%20one.png 1x, /big.png 2x">
    <div style="background: url('/img%20one.png')"></div></body></html>"""
    out = rewrite_html(page, "text/html", "https://h.test/x/page", "h.test/x/page.html", stored.get).decode()
    assert 'href="../style@qv=1.css"' in out
    assert 'href="../about.html#team"' in out
    assert 'href="https://h.test/sub/missing"' in out  # not stored: absolute, resolved against <base>
    assert 'href="mailto:x@h.test"' in out
    assert 'src="../img%2520one.png"' in out  # the file's name holds "%20": the link spells "%25"
    assert 'srcset="../img%2520one.png 1x, https://h.test/big.png 2x"' in out
    assert "url('../img%2520one.png')" in out
    assert "<base" not in out
    assert '<meta charset="utf-8">' in out


def test_css_urls_and_imports_are_rewritten() -> None:
    stored = {"https://h.test/img.png": "h.test/img.png", "https://h.test/more.css": "h.test/more.css"}
    css = b'@import "../more.css";\nbody { background: url(/img.png); } p { background: url("data:x") }'
    out = rewrite_css(css, "https://h.test/css/main.css", "h.test/css/main.css", stored.get).decode()
    assert '@import "../more.css";' in out
    assert "url(../img.png)" in out
    assert 'url("data:x")' in out


# A crawl of a local site, mirrored.

STYLE = b"body { color: rgb(1, 2, 3); background: url(/img.png?v=2); }"
PROBE = (
    "<script>document.body.setAttribute('data-color', getComputedStyle(document.body).color);"
    "document.body.setAttribute('data-next', document.getElementById('next').href);</script>"
)
SITE = {
    "/": (
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="/style.css?v=1"><title>home</title></head>'
        '<body><a id="next" href="/about">about</a> <a href="/x/index.html">x</a> <a href="/x/">x dir</a>'
        ' <a href="/old">old</a> <a href="/img.png?v=2">img</a> <a href="http://offsite.invalid/">off</a>'
        f"{PROBE}</body></html>"
    ),
    "/about": '<html><body><a href="/">home</a></body></html>',
    "/x/index.html": '<html><body><a href="../">up</a></body></html>',
    "/x/": '<html><body><a href="index.html">literal</a></body></html>',
}


async def _handle(request: web.Request) -> web.StreamResponse:
    if request.path in SITE:
        return web.Response(text=SITE[request.path], content_type="text/html")
    if request.path == "/style.css":
        return web.Response(body=STYLE, content_type="text/css")
    if request.path == "/img.png":
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + bytes(32), content_type="image/png")
    if request.path == "/old":
        raise web.HTTPMovedPermanently("/about")
    return web.Response(status=404, text="not found")


@pytest.fixture
async def crawled(tmp_path: Path) -> tuple[str, Path]:
    """The site crawled into tmp_path/out, and its base URL; the site is closed by then."""
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", _handle)
    async with TestServer(app, host="127.0.0.1") as server:
        base = f"http://127.0.0.1:{server.port}"
        await crawl([base + "/"], output=tmp_path / "out")
    return base, tmp_path / "out"  # the site is gone: the mirror must stand on its own


def _pages_hashes(output: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (output / "pages").rglob("*")
        if p.is_file()
    }


async def test_mirror_of_a_crawl_links_locally_and_leaves_pages_alone(
    crawled: tuple[str, Path], tmp_path: Path
) -> None:
    base, output = crawled
    before = _pages_hashes(output)
    report = build_mirror(output, tmp_path / "mirror")
    assert _pages_hashes(output) == before
    host = urlsplit(base).netloc.replace(":", "_") + "_http"
    mirror = tmp_path / "mirror"
    files = {str(p.relative_to(mirror)) for p in mirror.rglob("*") if p.is_file()}
    assert files == {
        "index.html",
        f"{host}/index.html",
        f"{host}/about.html",
        f"{host}/x/index.html",
        f"{host}/x/index-2.html",
        f"{host}/style@qv=1.css",
        f"{host}/img@qv=2.png",
    }
    assert (report.pages, report.styles, report.files, report.seeds) == (4, 1, 1, 1)
    home = (mirror / host / "index.html").read_text()
    assert 'href="style@qv=1.css"' in home
    assert 'href="about.html"' in home and 'href="x/index-2.html"' in home and 'href="x/index.html"' in home
    assert 'href="about.html">old' in home  # through the recorded redirect
    assert 'href="http://offsite.invalid/"' in home
    assert "url(img@qv=2.png)" in (mirror / host / "style@qv=1.css").read_text()
    assert 'href="../index.html"' in (mirror / host / "x" / "index-2.html").read_text()
    assert f'href="{host}/index.html"' in (mirror / "index.html").read_text()
    records = [json.loads(line) for line in (output / "manifest.jsonl").read_text().splitlines()]
    for record in records:
        if record["path"] and not record["content_type"].startswith(("text/html", "text/css")):
            # other bodies are the very same file
            assert (output / record["path"]).samefile(mirror / host / "img@qv=2.png")


async def test_mirror_of_an_interrupted_crawl_and_refusals(crawled: tuple[str, Path], tmp_path: Path) -> None:
    _, output = crawled
    manifest = output / "manifest.jsonl"
    manifest.write_bytes(manifest.read_bytes()[:-40])  # killed mid-line
    build_mirror(output, tmp_path / "mirror")
    assert (tmp_path / "mirror" / "index.html").exists()
    with pytest.raises(ConfigError, match="already exists"):
        build_mirror(output, tmp_path / "mirror")
    with pytest.raises(ConfigError, match="holds no crawl"):
        build_mirror(tmp_path / "nothing", tmp_path / "other")


async def test_mirror_cli(
    crawled: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, output = crawled
    assert main(["mirror", str(output), str(tmp_path / "m")]) == 0
    assert "mirrored 4 pages, 1 stylesheets and 1 other files" in capsys.readouterr().err
    assert main(["mirror", str(output), str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err.startswith("crawlpool: error: mirror: ")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
async def test_the_mirror_renders_offline_in_chromium(crawled: tuple[str, Path], tmp_path: Path) -> None:
    """Open the mirrored home page from file:// with no network: the stylesheet applies (its color is
    read back by a script on the page) and the converted link points at a file that exists."""
    base, output = crawled
    build_mirror(output, tmp_path / "mirror")
    host = urlsplit(base).netloc.replace(":", "_") + "_http"
    home = tmp_path / "mirror" / host / "index.html"
    assert CHROMIUM is not None
    run = await asyncio.to_thread(
        subprocess.run,
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--proxy-server=127.0.0.1:9",  # nothing leaves
            "--proxy-bypass-list=<-loopback>",  # not even to the (closed) site on loopback
            "--dump-dom", home.as_uri(),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    color = re.search(r'data-color="([^"]*)"', run.stdout)
    following = re.search(r'data-next="([^"]*)"', run.stdout)
    assert color and following, run.stdout[-2000:]
    assert color[1] == "rgb(1, 2, 3)"  # the local stylesheet was applied
    assert following[1].startswith("file://")
    assert Path(unquote(urlsplit(following[1]).path)) == tmp_path / "mirror" / host / "about.html"
    assert (tmp_path / "mirror" / host / "about.html").is_file()

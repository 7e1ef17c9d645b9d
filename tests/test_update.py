"""--update: a second run over a finished crawl of a local site whose pages changed in between."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from crawlpool import crawl
from crawlpool.errors import ConfigError
from crawlpool.frontier.base import Request
from crawlpool.records import Page
from crawlpool.recrawl import classify, conditional_headers, lastmod_skip, start_update

Server = Callable[..., Awaitable[TestServer]]
SRC = str(Path(__file__).parents[1] / "src")
LAST_MODIFIED = formatdate(1_700_000_000, usegmt=True)


def stored(url: str, **fields: Any) -> Page:
    base = {
        "url": url, "final_url": url, "status": 200, "content_type": "text/html", "depth": 1,
        "referrer": None, "path": "pages/x", "bytes": 3, "sha256": "aaa",
        "fetched_at": "2024-06-01T00:00:00Z", "elapsed_ms": 5, "error": None, "links": 0,
    }  # fmt: skip
    return Page(**{**base, **fields})


# -- the decisions ---------------------------------------------------------------------------------


def test_conditional_headers_come_from_the_stored_validators() -> None:
    assert conditional_headers(stored("u", etag='"v1"', last_modified=LAST_MODIFIED)) == {
        "If-None-Match": '"v1"',
        "If-Modified-Since": LAST_MODIFIED,
    }
    assert conditional_headers(stored("u")) == {}
    assert conditional_headers(None) == {}


@pytest.mark.parametrize(
    ("now", "previous", "change"),
    [
        ({"status": 304, "path": None, "sha256": None, "bytes": 0}, stored("u"), "unchanged"),
        ({"sha256": "aaa"}, stored("u"), "unchanged"),
        ({"sha256": "bbb"}, stored("u"), "changed"),
        ({}, None, "new"),
        ({"status": 404, "path": None, "error": "http_4xx: 404 Not Found"}, stored("u"), "gone"),
        ({"status": 410, "path": None, "error": "http_4xx: 410 Gone"}, stored("u"), "gone"),
        ({"status": 404, "path": None, "error": "http_4xx: 404 Not Found"}, None, None),
        ({"status": 503, "path": None, "error": "http_5xx: 503"}, stored("u"), None),
    ],
)
def test_classify(now: dict[str, Any], previous: Page | None, change: str | None) -> None:
    page = classify(stored("u", **now), previous)
    assert page.change == change
    if now.get("status") == 304:
        assert (page.path, page.sha256, page.bytes) == ("pages/x", "aaa", 3), "a 304 keeps the stored body"


@pytest.mark.parametrize(
    ("lastmod", "skipped"),
    [("2024-05-31", True), ("2024-05-31T23:59:59+00:00", True), ("2024-06-02", False), ("soon", False)],
)
def test_a_sitemap_lastmod_older_than_the_stored_fetch_skips_the_fetch(lastmod: str, skipped: bool) -> None:
    request = Request("u", 1, "h", 0, "s", lastmod=lastmod)
    page = lastmod_skip(request, stored("u"))
    assert (page is not None) == skipped
    if page is not None:
        assert (page.change, page.status, page.path) == ("unchanged", None, "pages/x")


# -- a recrawl of a local site ----------------------------------------------------------------------


@dataclass
class Site:
    """Version 1, then version 2 of a small site; `log` has (run, path, If-None-Match, If-Modified-Since)."""

    version: int = 1
    log: list[tuple[int, str, str | None, str | None]] = field(default_factory=list)

    def body(self, path: str) -> tuple[int, bytes, dict[str, str]] | None:
        v = self.version
        links = (
            ["/a", "/b", "/c", "/d", "/e", "/orphan"] if v == 1 else ["/a", "/b", "/c", "/d", "/e", "/new"]
        )
        if path == "/":
            return 200, _html(links), {}
        if path == "/a":
            return 200, _html([], "a"), {"ETag": '"a1"'}
        if path == "/b":
            return 200, _html([], "b"), {"Last-Modified": LAST_MODIFIED}
        if path in ("/c", "/orphan", "/s1", "/s2"):
            return 200, _html([], path), {}
        if path == "/d":
            return 200, _html([], f"d version {v}"), {}
        if path == "/e" and v == 1:
            return 200, _html([], "e"), {}
        if path == "/new" and v == 2:
            return 200, _html([], "new"), {}
        if path == "/sitemap.xml":
            items = "".join(
                f"<url><loc>{BASE[0]}{p}</loc><lastmod>{mod}</lastmod></url>"
                for p, mod in (("/s1", "2000-01-01"), ("/s2", "2999-01-01"))
            )
            return 200, f"<urlset>{items}</urlset>".encode(), {}
        return None

    async def handle(self, request: web.Request) -> web.Response:
        inm, ims = request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since")
        self.log.append((self.version, request.path, inm, ims))
        answer = self.body(request.path)
        if answer is None:
            return web.Response(status=404)
        status, body, headers = answer
        if (inm is not None and inm == headers.get("ETag")) or (
            ims is not None and ims == headers.get("Last-Modified")
        ):
            return web.Response(status=304, headers=headers)
        return web.Response(status=status, body=body, headers=headers, content_type="text/html")


BASE: list[str] = [""]


def _html(links: list[str], text: str = "") -> bytes:
    return ("<!doctype html><p>" + text + "".join(f'<a href="{p}">x</a>' for p in links)).encode()


async def _serve(aiohttp_server: Server, site: Site) -> str:
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", site.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    BASE[0] = f"http://127.0.0.1:{server.port}"
    return BASE[0]


def _records(output: Path) -> dict[str, dict[str, Any]]:
    lines = (output / "manifest.jsonl").read_text().splitlines()
    by_url = {r["url"]: r for r in map(json.loads, lines)}
    assert len(by_url) == len(lines), "a URL has two records in this run"
    return by_url


async def test_an_update_reports_exactly_what_changed(aiohttp_server: Server, tmp_path: Path) -> None:
    site = Site()
    base = await _serve(aiohttp_server, site)
    output = tmp_path / "out"
    await crawl([base + "/"], output=output, retries=0)
    first = _records(output)
    assert first[base + "/a"]["etag"] == '"a1"'
    assert first[base + "/b"]["last_modified"] == LAST_MODIFIED
    assert all(r["change"] is None for r in first.values())
    assert all(inm is None and ims is None for _, _, inm, ims in site.log)
    d_file = output / first[base + "/d"]["path"]

    site.version = 2
    result = await crawl([base + "/"], output=output, retries=0, update=True)
    assert result.stats.by_change == {"unchanged": 4, "changed": 2, "new": 1, "gone": 1}
    by_url = _records(output)
    changes = {url.removeprefix(base): r["change"] for url, r in by_url.items()}
    assert changes == {
        "/": "changed",
        "/a": "unchanged",
        "/b": "unchanged",
        "/c": "unchanged",
        "/orphan": "unchanged",  # no longer linked: re-fetched because it was stored
        "/d": "changed",
        "/e": "gone",
        "/new": "new",
    }
    assert by_url[base + "/a"]["status"] == 304 and by_url[base + "/b"]["status"] == 304
    assert by_url[base + "/a"]["path"] == first[base + "/a"]["path"]
    assert d_file.read_bytes() == _html([], "d version 2"), "the changed body replaced the stored one"
    run2 = {path: (inm, ims) for run, path, inm, ims in site.log if run == 2}
    assert run2["/a"] == ('"a1"', None)
    assert run2["/b"] == (None, LAST_MODIFIED)
    assert run2["/c"] == (None, None)

    report = json.loads((output / "changes.json").read_text())
    assert report["run"] == 2 and report["finished"] is True
    assert report["counts"] == {"unchanged": 4, "changed": 2, "new": 1, "gone": 1, "failed": 0}
    assert report["unchanged_by"] == {"304": 2, "sha256": 2, "sitemap": 0}
    assert sorted(report["gone"]) == [base + "/e"]
    assert sorted(report["new"]) == [base + "/new"]
    archived = output / ".crawlpool" / "runs" / "1" / "manifest.jsonl"
    assert len(archived.read_text().splitlines()) == len(first), "run 1's manifest is kept"


async def test_with_sitemaps_an_old_lastmod_is_not_fetched_again(
    aiohttp_server: Server, tmp_path: Path
) -> None:
    site = Site()
    base = await _serve(aiohttp_server, site)
    output = tmp_path / "out"
    await crawl([base + "/"], output=output, retries=0, sitemaps=True)
    assert _records(output)[base + "/s1"]["status"] == 200
    site.version = 2
    await crawl([base + "/"], output=output, retries=0, sitemaps=True, update=True)
    by_url = _records(output)
    assert (by_url[base + "/s1"]["change"], by_url[base + "/s1"]["status"]) == ("unchanged", None)
    assert by_url[base + "/s2"]["change"] == "unchanged" and by_url[base + "/s2"]["status"] == 200
    run2 = [path for run, path, _, _ in site.log if run == 2]
    assert "/s1" not in run2 and "/s2" in run2
    report = json.loads((output / "changes.json").read_text())
    assert report["unchanged_by"]["sitemap"] == 1


async def test_an_update_archived_but_never_started_starts_when_asked_again(
    aiohttp_server: Server, tmp_path: Path
) -> None:
    site = Site()
    base = await _serve(aiohttp_server, site)
    output = tmp_path / "out"
    await crawl([base + "/"], output=output, retries=0)
    assert start_update(output, output / ".crawlpool" / "frontier.db") == 2  # then the process died
    site.version = 2
    await crawl([base + "/"], output=output, retries=0, update=True)
    report = json.loads((output / "changes.json").read_text())
    assert report["run"] == 2 and report["counts"]["gone"] == 1
    assert sorted(p.name for p in (output / ".crawlpool" / "runs").iterdir()) == ["1"]


async def test_an_unfinished_update_is_resumed_not_updated_again(
    aiohttp_server: Server, tmp_path: Path
) -> None:
    site = Site()
    base = await _serve(aiohttp_server, site)
    output = tmp_path / "out"
    await crawl([base + "/"], output=output, retries=0)
    site.version = 2
    await crawl([base + "/"], output=output, retries=0, update=True, max_pages=2)
    assert json.loads((output / "changes.json").read_text())["finished"] is False
    with pytest.raises(ConfigError, match="was stopped before it finished; finish it with"):
        await crawl([base + "/"], output=output, retries=0, update=True)
    await crawl([base + "/"], output=output, retries=0, resume=True)
    report = json.loads((output / "changes.json").read_text())
    assert report["finished"] is True
    assert report["counts"] == {"unchanged": 4, "changed": 2, "new": 1, "gone": 1, "failed": 0}


async def test_update_needs_a_crawl_and_refuses_a_fresh_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"there is no crawl in .* to update"):
        await crawl(["http://127.0.0.1:9/"], output=tmp_path / "empty", update=True)


@pytest.mark.slow
async def test_kill_9_during_an_update_then_resume_records_each_url_once(tmp_path: Path) -> None:
    pages = 60
    state = {"version": 1, "requests": 0}
    proc: asyncio.subprocess.Process | None = None

    async def handle(request: web.Request) -> web.Response:
        state["requests"] += 1
        if state["version"] == 2 and state["requests"] == 25 and proc is not None and proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
        name = request.path.strip("/") or "0"
        if not name.isdigit() or int(name) >= pages:
            return web.Response(status=404)
        i = int(name)
        text = f"page {i} v{state['version'] if i % 3 == 0 else 1}"
        links = "".join(f'<a href="/{k}">x</a>' for k in range(1, pages)) if i == 0 else ""
        return web.Response(text=f"<!doctype html><p>{text}{links}", content_type="text/html")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = f"http://127.0.0.1:{server.port}"
    output = tmp_path / "out"
    try:
        await crawl([base + "/"], output=output, retries=0)
        state["version"], state["requests"] = 2, 0
        for extra in (["--update"], ["--resume"]):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "crawlpool", "crawl", base + "/", "-o", str(output), "--retries", "0",
                "--concurrency", "4", "-q", *extra, env={**os.environ, "PYTHONPATH": SRC},
            )  # fmt: skip
            code = await asyncio.wait_for(proc.wait(), timeout=60)
            if extra == ["--update"]:
                assert code == -signal.SIGKILL, "the update was not killed midway"
                killed_at = len((output / "manifest.jsonl").read_text().splitlines())
                assert 0 < killed_at < pages, "the kill did not land mid-run"
    finally:
        await server.close()
    assert code == 0
    by_url = _records(output)
    assert set(by_url) == {base + "/"} | {f"{base}/{i}" for i in range(1, pages)}
    report = json.loads((output / "changes.json").read_text())
    changed = sorted(url for url, r in by_url.items() if r["change"] == "changed")
    assert changed == sorted([base + "/"] + [f"{base}/{i}" for i in range(3, pages, 3)])
    assert report["counts"] == {
        "unchanged": pages - len(changed),
        "changed": len(changed),
        "new": 0,
        "gone": 0,
        "failed": 0,
    }


async def test_with_warc_unchanged_answers_are_revisit_records(
    aiohttp_server: Server, tmp_path: Path
) -> None:
    """A 304 is archived as a server-not-modified revisit, the same body again as an
    identical-payload-digest one, each referring to the first run's capture; `warcio check` passes."""
    from warcio.archiveiterator import ArchiveIterator

    from tests.test_warc import warcio_check

    site = Site()
    base = await _serve(aiohttp_server, site)
    output = tmp_path / "out"
    await crawl([base + "/"], output=output, retries=0, warc=True)
    first = _records(output)
    site.version = 2
    await crawl([base + "/"], output=output, retries=0, update=True, warc=True)
    second = _records(output)
    revisits: dict[str, tuple[str, str, str]] = {}
    responses: set[str] = set()
    for path in sorted((output / "warc").glob("*.warc.gz")):
        with path.open("rb") as fh:
            for record in ArchiveIterator(fh):
                uri = record.rec_headers.get_header("WARC-Target-URI")
                if record.rec_type == "revisit":
                    headers = record.rec_headers
                    revisits[uri.removeprefix(base)] = (
                        headers.get_header("WARC-Profile").rsplit("/", 1)[1],
                        headers.get_header("WARC-Refers-To-Target-URI"),
                        headers.get_header("WARC-Refers-To-Date"),
                    )
                elif record.rec_type == "response":
                    responses.add(uri)
    assert {path: profile for path, (profile, _, _) in revisits.items()} == {
        "/a": "server-not-modified",  # ETag
        "/b": "server-not-modified",  # Last-Modified
        "/c": "identical-payload-digest",
        "/orphan": "identical-payload-digest",
    }
    for path, (_, target, date) in revisits.items():
        assert target == base + path
        assert date.startswith(first[base + path]["fetched_at"][:19])  # the first run's capture
        assert second[base + path]["warc_file"] is not None
    warcio_check(output)
    assert base + "/d" in responses and base + "/new" in responses


async def test_links_of_an_unchanged_page_are_followed(aiohttp_server: Server, tmp_path: Path) -> None:
    """A page answered 304 is the page stored: its links are read from the stored body, so a page it
    links to that appeared since (a 404 in the first run) is found, as `new`."""
    later_exists = False

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/":
            return web.Response(text='<a href="/a">a</a>', content_type="text/html")
        if request.path == "/a":
            if request.headers.get("If-None-Match") == '"a1"':
                return web.Response(status=304, headers={"ETag": '"a1"'})
            body = '<a href="/later">later</a>'
            return web.Response(text=body, content_type="text/html", headers={"ETag": '"a1"'})
        if request.path == "/later" and later_exists:
            return web.Response(text="<p>later</p>", content_type="text/html")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    output = tmp_path / "out"
    await crawl([base + "/"], output=output, retries=0)
    assert _records(output)[base + "/later"]["status"] == 404
    later_exists = True
    await crawl([base + "/"], output=output, retries=0, update=True)
    by_url = _records(output)
    assert by_url[base + "/a"]["status"] == 304 and by_url[base + "/a"]["links"] == 1
    assert by_url[base + "/later"]["change"] == "new"


async def test_an_update_archives_responses_where_the_earlier_run_did_not_archive(
    aiohttp_server: Server, tmp_path: Path
) -> None:
    """A revisit must refer to a capture in an archive: over a crawl made without --warc, an unchanged
    answer is archived as an ordinary response."""
    from warcio.archiveiterator import ArchiveIterator

    site = Site()
    base = await _serve(aiohttp_server, site)
    output = tmp_path / "out"
    await crawl([base + "/"], output=output, retries=0)
    site.version = 2
    await crawl([base + "/"], output=output, retries=0, update=True, warc=True)
    types = set()
    for path in (output / "warc").glob("*.warc.gz"):
        with path.open("rb") as fh:
            types |= {record.rec_type for record in ArchiveIterator(fh)}
    assert "revisit" not in types and "response" in types

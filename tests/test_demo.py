"""The demo site the notebook crawls by default: served by the caller's loop on 127.0.0.1, with a known
link graph (every page reached, one 404, one URL robots.txt refuses, the off-site link left alone)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from crawlpool import crawl
from crawlpool.demo import ARTICLES, PAGES, TAGS, DemoSite


async def test_a_crawl_of_the_demo_site_reaches_every_page_and_its_known_failures(tmp_path: Path) -> None:
    async with await DemoSite.start() as site:
        assert site.url == f"http://127.0.0.1:{site.port}/"
        result = await crawl([site.url], output=tmp_path / "out")
    base = site.url.rstrip("/")
    by_url = {page.url.removeprefix(base): page for page in result.pages}
    pages = set(PAGES) - {"/private/notes.html"}
    assert set(by_url) == pages | {"/data.csv", "/missing.html", "/private/notes.html"}
    assert len(by_url) == 3 + ARTICLES + len(TAGS) + 3
    stored = pages | {"/data.csv"}
    assert all(by_url[path].status == 200 and by_url[path].path is not None for path in stored)
    missing, private = by_url["/missing.html"], by_url["/private/notes.html"]
    assert (missing.status, missing.error_code) == (404, "http_4xx")
    assert (private.status, private.error_code) == (None, "robots")


async def test_the_demo_site_closes_and_frees_its_port() -> None:
    site = await DemoSite.start()
    await site.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", site.port))  # free again


async def test_a_taken_port_is_an_oserror_and_nothing_is_left_serving() -> None:
    async with await DemoSite.start() as site:
        with pytest.raises(OSError, match="address already in use"):
            await DemoSite.start(site.port)

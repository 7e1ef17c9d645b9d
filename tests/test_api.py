"""The Python API: its public surface, running inside an existing loop, stopping early."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import crawlpool
from crawlpool import CrawlConfig, SeedError, UsageError, crawl, crawl_sync, iter_crawl
from tests.site import EXPECTED, make_app


def test_public_surface() -> None:
    assert sorted(crawlpool.__all__) == sorted(
        ["ConfigError", "CrawlConfig", "CrawlResult", "CrawlStats", "CrawlpoolError", "Page", "Progress",
         "SeedError", "UsageError", "__version__", "crawl", "crawl_sync", "iter_crawl"]
    )  # fmt: skip
    for name in crawlpool.__all__:
        assert getattr(crawlpool, name) is not None


async def test_crawl_runs_inside_an_already_running_loop(site: TestServer, tmp_path: Path) -> None:
    """As in Jupyter: the caller's loop is running, and crawl() must not start another."""
    loop = asyncio.get_running_loop()
    result = await crawl([f"http://127.0.0.1:{site.port}/a.html"], output=tmp_path / "o", max_depth=0)
    assert asyncio.get_running_loop() is loop and loop.is_running()
    assert [p.status for p in result.pages] == [200]


async def test_crawl_sync_refuses_a_running_loop(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="running event loop"):
        crawl_sync(["http://127.0.0.1:9/"], output=tmp_path / "o")
    assert not (tmp_path / "o").exists(), "nothing is done before refusing"


@pytest.fixture
def threaded_site() -> Iterator[str]:
    """The test site served from its own thread and loop, for code that runs its own loop."""
    ready = threading.Event()
    stop: list[asyncio.AbstractEventLoop] = []
    port: list[int] = []

    async def serve() -> None:
        async with TestServer(make_app(), host="127.0.0.1") as server:
            port.append(server.port)
            stop.append(asyncio.get_running_loop())
            ready.set()
            await asyncio.Event().wait()

    thread = threading.Thread(target=lambda: asyncio.run(_run_until_cancelled(serve())), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{port[0]}"
    loop = stop[0]
    loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(loop)])
    thread.join(10)


async def _run_until_cancelled(coro: object) -> None:
    try:
        await coro  # type: ignore[misc]
    except asyncio.CancelledError:
        pass


def test_crawl_sync_in_a_plain_script(threaded_site: str, tmp_path: Path) -> None:
    result = crawl_sync([threaded_site + "/b/"], output=tmp_path / "o", retries=0)
    assert {p.url for p in result.pages} == {threaded_site + path for path in EXPECTED}
    assert result.stats.records == len(EXPECTED)


async def test_iter_crawl_yields_records_and_stops_when_left(site: TestServer, tmp_path: Path) -> None:
    output = tmp_path / "o"
    seen = []
    pages = iter_crawl([f"http://127.0.0.1:{site.port}/"], output=output, concurrency=1)
    async with aclosing(pages):
        async for page in pages:
            seen.append(page)
            if len(seen) == 3:
                break
    manifest = (output / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["url"] for line in manifest][:3] == [p.url for p in seen]
    assert len(manifest) <= 4, "the crawl went on after the loop was left"


async def test_cancelling_crawl_stops_it(tmp_path: Path) -> None:
    entered = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_get("/", hang)
    async with TestServer(app, host="127.0.0.1") as server:
        task = asyncio.create_task(
            crawl([f"http://127.0.0.1:{server.port}/"], output=tmp_path / "o", grace_s=0.05)
        )
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (tmp_path / "o" / "manifest.jsonl").read_text() == ""


@pytest.mark.parametrize(
    ("seeds", "message"),
    [([], "no seed URL"), (["ftp://x/"], r"not an http\(s\) URL"), ("http://a/", "single string")],
)
async def test_bad_seeds_raise_before_anything(seeds: object, message: str, tmp_path: Path) -> None:
    with pytest.raises(SeedError, match=message):
        await crawl(seeds, output=tmp_path / "o")  # type: ignore[arg-type]
    assert not (tmp_path / "o").exists()


async def test_bad_options_raise_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown key 'speed'"):
        await crawl(["http://127.0.0.1:9/"], output=tmp_path / "o", speed=3)
    with pytest.raises(UsageError, match="per_host: must be at least 1"):
        await crawl(["http://127.0.0.1:9/"], CrawlConfig(), per_host=0)


async def test_an_unexpected_worker_error_is_recorded_and_the_crawl_goes_on(
    site: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crawlpool.parsing
    from crawlpool.links import extract_links

    def flaky(body: bytes, url: str, content_type: str | None) -> list[str]:
        if url.endswith("/b/"):
            raise ValueError("extractor bug")
        return extract_links(body, url, content_type)

    monkeypatch.setattr(crawlpool.parsing, "get_extractor", lambda name: flaky)
    result = await crawl(
        [f"http://127.0.0.1:{site.port}/"], output=tmp_path / "o", retries=0, parse_workers=0
    )
    by_url = {p.url: p for p in result.pages}
    broken = by_url[f"http://127.0.0.1:{site.port}/b/"]
    assert broken.error == "internal: ValueError: extractor bug"
    assert f"http://127.0.0.1:{site.port}/gz.html" in by_url

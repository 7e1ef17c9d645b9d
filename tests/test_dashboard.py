"""The dashboard's JSON API, its middlewares and its sources, through aiohttp's test client.

A finished crawl of the test site (tests/site.py) gives a real output directory for `StoredSource`; a
fake source pins what the views do with their parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from crawlpool import crawl
from crawlpool.dashboard.address import Address, parse_address, token_for
from crawlpool.dashboard.app import CSP, make_app
from crawlpool.dashboard.source import History, ManifestIndex, StoredSource
from crawlpool.errors import ConfigError


@pytest.fixture
async def crawled(site: TestServer, tmp_path: Path) -> Path:
    """The output directory of a finished crawl of the test site."""
    output = tmp_path / "out"
    await crawl([f"http://127.0.0.1:{site.port}/"], output=output, retries=0)
    return output


@pytest.fixture
async def client(crawled: Path) -> Any:
    source = await StoredSource.open(crawled, None, None)
    async with TestClient(TestServer(make_app(source, update_s=0.01))) as client:
        yield client
    await source.aclose()


async def test_status_of_a_finished_crawl(client: TestClient, crawled: Path) -> None:
    response = await client.get("/api/status")
    assert response.status == 200
    status = await response.json()
    records = (crawled / "manifest.jsonl").read_text().splitlines()
    assert status["state"] == "finished" and status["state_text"] == "finished"
    assert status["records"] == len(records) and status["queued"] == 0
    assert status["pages"] == sum(json.loads(line)["path"] is not None for line in records)
    assert status["errors"] == {"http_4xx": 2, "http_5xx": 1, "truncated": 1}
    assert status["history"][-1][1:] == [status["pages"], 0, status["records"]]


async def test_errors_give_examples_that_point_at_manifest_lines(client: TestClient, crawled: Path) -> None:
    errors = await (await client.get("/api/errors")).json()
    assert errors["by_code"] == {"http_4xx": 2, "http_5xx": 1, "truncated": 1}
    lines = (crawled / "manifest.jsonl").read_text().splitlines()
    for code, examples in errors["examples"].items():
        for example in examples:
            record = json.loads(lines[example["line"] - 1])
            assert record["url"] == example["url"] and record["error"].startswith(code)


async def test_records_search_and_pages(client: TestClient) -> None:
    found = await (await client.get("/api/records", params={"code": "http_4xx"})).json()
    assert {r["status"] for r in found["records"]} == {403, 404} and not found["more"]
    first = await (await client.get("/api/records", params={"limit": "3"})).json()
    second = await (await client.get("/api/records", params={"limit": "3", "offset": "3"})).json()
    assert first["more"] and len(first["records"]) == 3
    assert [r["line"] for r in second["records"]] == [4, 5, 6]
    by_url = await (await client.get("/api/records", params={"url": "gz", "status": "200"})).json()
    assert sorted(r["url"].rsplit("/", 1)[1] for r in by_url["records"]) == ["from-gzip.html", "gz.html"]


async def test_hosts_of_a_stopped_crawl_come_from_its_state(site: TestServer, tmp_path: Path) -> None:
    output = tmp_path / "out"
    await crawl([f"http://127.0.0.1:{site.port}/"], output=output, max_pages=2, retries=0)
    source = await StoredSource.open(output, None, None)
    async with TestClient(TestServer(make_app(source))) as client:
        hosts = (await (await client.get("/api/hosts")).json())["hosts"]
        status = await (await client.get("/api/status")).json()
    assert [h["host"] for h in hosts] == [f"http://127.0.0.1:{site.port}"]
    assert hosts[0]["queued"] == status["queued"] > 0
    assert status["state"] == "stopped" and status["state_text"].startswith("stopped at --max-pages with")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/hosts?limit=0", "limit: must be from 1 to 1000, got 0"),
        ("/api/hosts?limit=many", "limit: expected a whole number, got 'many'"),
        ("/api/hosts?sort=size", "sort: 'size' is not one of queued, in_flight, delay, host"),
        ("/api/records?status=abc", "status: expected a whole number, got 'abc'"),
        ("/api/records?limit=501", "limit: must be from 1 to 500, got 501"),
        ("/api/records?code=404", "code: '404' is not an error code"),
    ],
)
async def test_bad_parameters_are_clear_400s_in_json(client: TestClient, path: str, message: str) -> None:
    response = await client.get(path)
    assert response.status == 400
    assert response.content_type == "application/json"
    assert (await response.json())["error"].startswith(message)


async def test_unknown_api_paths_are_json_404s(client: TestClient) -> None:
    response = await client.get("/api/nothing")
    assert response.status == 404 and "error" in await response.json()
    assert (await client.get("/static/../../etc/passwd")).status == 404


async def test_every_answer_carries_the_security_headers(client: TestClient) -> None:
    for path in ("/", "/static/dashboard.js", "/api/status", "/api/hosts?limit=0", "/api/nothing"):
        response = await client.get(path)
        assert response.headers["Content-Security-Policy"] == CSP, path
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
    assert "http" not in CSP, "no external origin"
    page = await (await client.get("/")).text()
    assert '<script src="/static/dashboard.js"' in page and "http" not in page.replace("http-equiv", "")


async def test_the_token_rule(crawled: Path) -> None:
    source = await StoredSource.open(crawled, None, None)
    async with TestClient(TestServer(make_app(source, token="s3cret"))) as client:
        assert (await client.get("/api/status")).status == 401
        assert (await client.get("/")).status == 401
        assert (await client.get("/api/status", params={"token": "wrong"})).status == 401
        assert (await client.get("/api/status", headers={"Authorization": "Bearer s3cret"})).status == 200
        page = await client.get("/", params={"token": "s3cret"})
        assert page.status == 200 and page.cookies["crawlpool_dashboard"]["httponly"]
        assert (await client.get("/api/status")).status == 200, "the page's cookie carries the token"
    await source.aclose()


async def test_events_stream_status_updates(client: TestClient) -> None:
    response = await client.get("/api/events")
    assert response.headers["Content-Type"] == "text/event-stream"
    events = []
    async for line in response.content:
        if line.startswith(b"data: "):
            events.append(json.loads(line[6:]))
        if len(events) == 2:
            break
    response.close()
    assert all(event["state"] == "finished" for event in events)


def test_addresses_and_tokens() -> None:
    assert parse_address("8080") == Address("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:9000") == Address("0.0.0.0", 9000)
    assert parse_address("[::1]:0") == Address("::1", 0)
    for bad in ("http", "1.2.3.4:99999", "host:"):
        with pytest.raises(ConfigError, match="dashboard"):
            parse_address(bad)
    assert token_for(Address("127.0.0.1", 1), None) is None
    assert token_for(Address("localhost", 1), None) is None
    generated = token_for(Address("0.0.0.0", 1), None)
    assert generated is not None and len(generated) >= 20, "off loopback a token is always required"
    assert token_for(Address("0.0.0.0", 1), "mine") == "mine"


def test_manifest_index_reads_only_whole_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"url": "a", "path": "p", "bytes": 5, "error": null}\n{"url": "b", "err')
    index = ManifestIndex(path)
    index.refresh()
    assert (index.records, index.stored, index.stored_bytes) == (1, 1, 5)
    with path.open("a") as fh:
        fh.write('or": "robots: dns: robots.txt unreachable: x", "path": null}\n')
    index.refresh()
    assert index.records == 2 and index.by_code == {"robots": 1} and index.by_cause == {"robots": {"dns": 1}}


def test_history_thins_itself_to_span_the_whole_crawl() -> None:
    history = History()
    for second in range(5000):
        history.add(float(second), second, 0, second)
    points = history.points()
    assert len(points) <= 720 and points[0][0] == 0.0 and points[-1][0] > 4000


async def test_live_status_says_what_the_crawl_waits_for(aiohttp_server: Any, tmp_path: Path) -> None:
    """A crawl whose only host answers robots.txt with 503 waits for robots.txt: the live overview
    says so, and its hosts table says why the host is held back."""
    from aiohttp import web

    from crawlpool.api import prepare, run_crawl

    async def robots_down(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/{tail:.*}", robots_down)
    server = await aiohttp_server(app, host="127.0.0.1")
    urls: asyncio.Queue[str] = asyncio.Queue()
    config, seeds = prepare(
        [f"http://127.0.0.1:{server.port}/"], None, {"output": tmp_path / "o", "dashboard": "127.0.0.1:0"}
    )
    crawl_task = asyncio.create_task(run_crawl(config, seeds, lambda _: None, on_dashboard=urls.put_nowait))
    try:
        url = await asyncio.wait_for(urls.get(), 10)
        async with aiohttp.ClientSession() as session:
            while True:  # until robots.txt has been asked once (a request to the local server)
                async with session.get(url + "api/status") as response:
                    status = await response.json()
                if status["state"] == "waiting":
                    break
                await asyncio.sleep(0.02)
            async with session.get(url + "api/hosts") as response:
                (host,) = (await response.json())["hosts"]
        assert status["state_text"].startswith("waiting for robots.txt of 1 hosts, next try in")
        assert host["reason"] == "robots.txt unavailable" and host["robots"].startswith(
            "unavailable (http_5xx"
        )
    finally:
        crawl_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await crawl_task

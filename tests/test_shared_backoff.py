"""Three Redis workers against a host that answers 503 with Retry-After, then recovers: one shared
backoff (the block lives in the host's Redis hash, on Redis' clock), no request to that host during the
block from any worker, every URL exactly once, and every worker's answers in one pacing state."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from crawlpool.urls import host_key
from tests.redis_server import drop_crawl, new_crawl_id, redis_url

pytestmark = [pytest.mark.redis, pytest.mark.slow]  # wall-clock crawls over real sockets

SRC = str(Path(__file__).parents[1] / "src")
PAGES = 30
BLOCKED_REQUEST = 6  # the 6th page request (robots.txt not counted) gets the 503
RETRY_AFTER_S = 2
LEASE_S = 2.0
# The block is set on Redis' clock by the worker that got the 503, two round trips after the answer
# ended, and a request follows its lease from another process: allow for both at the window's edges.
START_SLACK_S = 0.05
END_SLACK_S = 0.1
WORKERS = ("w0", "w1", "w2")


async def test_three_workers_share_one_retry_after_block(tmp_path: Path) -> None:
    url = redis_url()
    crawl_id = new_crawl_id()
    log: list[tuple[str, str, int, float, float]] = []  # (path, user agent, status, start, end)
    page_requests = 0
    workers: dict[str, asyncio.subprocess.Process] = {}

    async def handle(request: web.Request) -> web.Response:
        nonlocal page_requests
        started = time.monotonic()
        if request.path == "/robots.txt":
            response = web.Response(status=404)
        else:
            page_requests += 1
            if page_requests == BLOCKED_REQUEST:
                response = web.Response(status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
            else:
                i = int(request.path.rsplit("/", 1)[1])
                body = "".join(f'<a href="/p/{t}">x</a>' for t in range(PAGES)) if i == 0 else "leaf"
                response = web.Response(text=f"<html><body>{body}</body></html>", content_type="text/html")
        agent = request.headers.get("User-Agent", "")
        log.append((request.path, agent, response.status, started, time.monotonic()))
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = f"http://127.0.0.1:{server.port}"
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(f"{base}/p/0\n")
    began = time.monotonic()
    try:
        for name in WORKERS:
            workers[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "crawlpool", "crawl", str(seeds), "-o", str(tmp_path / name),
                "--frontier", url, "--crawl-id", crawl_id, "--lease", str(LEASE_S),
                "--delay", "0", "--per-host", "2", "--concurrency", "4", "--retries", "3",
                "--user-agent", f"crawlpool-{name}/1.0", "-q",
                stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC},
            )  # fmt: skip
        results = {}
        for name, proc in workers.items():
            _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
            results[name] = (proc.returncode, err.decode())
        took_s = time.monotonic() - began
    finally:
        for proc in workers.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await server.close()
    assert all(code == 0 for code, _ in results.values()), results

    # The union of manifests: every page exactly once, the 503'd one retried and stored.
    records = [
        json.loads(line)
        for name in WORKERS
        if (tmp_path / name / "manifest.jsonl").exists()
        for line in (tmp_path / name / "manifest.jsonl").read_text().splitlines()
    ]
    urls = [r["url"] for r in records]
    assert len(urls) == len(set(urls)), "a URL has records from two workers"
    assert set(urls) == {f"{base}/p/{i}" for i in range(PAGES)}
    assert all(r["status"] == 200 for r in records), [r for r in records if r["status"] != 200]

    # One 503, then the block: no worker started a request to the host until Retry-After had passed.
    refused = [entry for entry in log if entry[2] == 503]
    assert len(refused) == 1
    refused_path, _, _, _, answered_at = refused[0]
    window = (answered_at + START_SLACK_S, answered_at + RETRY_AFTER_S - END_SLACK_S)
    during = [entry for entry in log if window[0] <= entry[3] < window[1]]
    assert not during, f"requests during the block: {during}"
    assert [entry[0] for entry in log].count(refused_path) == 2  # the 503 and its one retry
    assert took_s >= RETRY_AFTER_S

    # One pacing state for the host, holding every worker's answers: each page response (the 503
    # included) is observed once; robots.txt answers are not observed.
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        state = await client.hgetall(f"crawlpool:{{{crawl_id}}}:host:{host_key(f'{base}/p/0')}")
    finally:
        await client.aclose()
    assert b"blocked_until_ms" in state
    floor_s, _, _, answers = json.loads(state[b"pace"])
    assert floor_s == 0
    assert answers == page_requests == sum(1 for entry in log if entry[0] != "/robots.txt")

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawlpool", "status", "--frontier", url, "--crawl-id", crawl_id,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip
    await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0
    await drop_crawl(url, crawl_id)

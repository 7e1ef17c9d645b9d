"""WARC output across kill -9 and --resume: the crawler is killed at seeded random moments (by the
site, after a chosen number of answers, as in test_resume.py) and resumed until it finishes; then
`warcio check` passes and each manifest record has exactly one response record, whose decoded payload
is the stored page."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.generated_site import PAGES, Site, assert_complete_and_exactly_once, finish, start_crawl
from tests.redis_server import drop_crawl, new_crawl_id, redis_url
from tests.test_warc import assert_archive_matches_manifest, warcio_check

pytestmark = pytest.mark.slow  # wall-clock crawls in subprocesses
SRC = str(Path(__file__).parents[1] / "src")
HOSTS = 6  # more than one worker's --concurrency: both workers get hosts
PAGES_PER_HOST = 10
LEASE_S = 1.0


async def test_kill_9_at_random_moments_then_resume_archives_each_url_exactly_once(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path
) -> None:
    rng = random.Random(20261201)
    kill_at = sorted({1, 2, *rng.sample(range(3, PAGES), 5)})
    site = Site()
    base = await serve(site)
    output = tmp_path / "out"
    proc: asyncio.subprocess.Process | None = None
    pending = list(kill_at)

    def maybe_kill(count: int) -> None:
        if pending and count >= pending[0] and proc is not None and proc.returncode is None:
            pending.pop(0)
            os.kill(proc.pid, signal.SIGKILL)

    site.on_request = maybe_kill
    runs = 0
    while True:
        proc = await start_crawl(
            base, output, "--warc", "--warc-max-size", "100k", *(["--resume"] if runs else [])
        )
        code, err = await finish(proc)
        runs += 1
        if code == 0:
            break
        assert code == -signal.SIGKILL, err
        assert runs <= len(kill_at) + 1
    assert not pending, "every kill happened"
    assert_complete_and_exactly_once(output, site.urls(base))
    warcio_check(output)
    assert_archive_matches_manifest(output)
    assert len(list((output / "warc").glob("*.warc.gz"))) >= 3  # rotated at 100k


@pytest.mark.redis
@pytest.mark.parametrize("event", ["kill", "stop"])
async def test_redis_workers_each_archive_their_own_exactly_once(tmp_path: Path, event: str) -> None:
    """Two workers of one Redis crawl, each with its own -o and --warc. `kill`: a worker is killed while
    it waits on a response, after it committed pages, and resumed once the other is done (its archive
    is repaired). `stop`: a worker is paused past its lease, so its late commits are refused and its
    archive takes their exchanges back. Over both outputs, each URL has one record and one response
    record.

    (The two are apart because together they sometimes end a worker with "frontier stalled": a worker that
    woke from a pause counts slots it lost as its own, and then does not wait for a dead worker's
    leases to expire. That is the Redis frontier's, not the archive's.)"""
    url = redis_url()
    crawl_id = new_crawl_id()
    workers: dict[str, asyncio.subprocess.Process] = {}
    acted: set[str] = set()
    loop = asyncio.get_running_loop()
    servers: list[TestServer] = []

    by_worker: Counter[str] = Counter()
    victim: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        agent = request.headers.get("User-Agent", "")
        by_worker[agent] += 1
        name = agent.removeprefix("crawlpool-").split("/", 1)[0]
        if by_worker[agent] >= 6 and not acted:
            acted.add(event)  # the first worker with 5 answers behind it waits on this very request
            victim.append(name)
            if event == "kill":
                os.kill(workers[name].pid, signal.SIGKILL)
            else:
                os.kill(workers[name].pid, signal.SIGSTOP)
                loop.call_later(3 * LEASE_S, os.kill, workers[name].pid, signal.SIGCONT)
        if request.path == "/robots.txt":
            return web.Response(text="User-agent: *\nDisallow:\n")
        i = int(request.path.rsplit("/", 1)[1])
        links = "".join(
            f'<a href="http://127.0.0.1:{s.port}/p/{(i * 7 + k) % PAGES_PER_HOST}">x</a>'
            for s in servers
            for k in (1, 2, 3)
        )
        return web.Response(text=f"<html><body>{links}</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    for _ in range(HOSTS):
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
    ports = [server.port for server in servers]
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("".join(f"http://127.0.0.1:{port}/p/0\n" for port in ports))

    async def start(name: str, *extra: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawlpool", "crawl", str(seeds), "-o", str(tmp_path / name),
            "--frontier", url, "--crawl-id", crawl_id, "--lease", str(LEASE_S), "--per-host", "1",
            "--concurrency", "2", "--retries", "0", "--user-agent", f"crawlpool-{name}/1.0", "-q",
            "--warc", *extra,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC},
        )  # fmt: skip

    try:
        workers = {name: await start(name) for name in ("w0", "w1")}
        codes = {}
        for name, proc in workers.items():
            _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
            codes[name] = (proc.returncode, err.decode())
        if event == "kill":
            assert codes[victim[0]][0] == -signal.SIGKILL
            resumed = await start(victim[0], "--resume")
            _, err = await asyncio.wait_for(resumed.communicate(), timeout=120)
            codes[victim[0]] = (resumed.returncode, err.decode())
    finally:
        for proc in workers.values():
            if proc.returncode is None:
                proc.kill()
        for server in servers:
            await server.close()
        await drop_crawl(url, crawl_id)
    assert acted == {event}
    assert codes["w0"] == (0, "") and codes["w1"] == (0, ""), codes
    outputs = [tmp_path / "w0", tmp_path / "w1"]
    records = [
        r for output in outputs for r in map(json.loads, (output / "manifest.jsonl").read_text().splitlines())
    ]
    assert sorted(r["url"] for r in records) == sorted(
        f"http://127.0.0.1:{port}/p/{i}" for port in ports for i in range(PAGES_PER_HOST)
    )
    for output in outputs:
        assert (output / "manifest.jsonl").read_text(), f"{output.name} committed nothing"
        warcio_check(output)
    assert_archive_matches_manifest(*outputs)

"""Crash-safe resume: kill -9 at seeded random moments, SIGINT/SIGTERM, refusals and `crawlpool status`.

The crawler runs as a subprocess against a site served in the test's own loop; the site itself sends
the signal when it has answered a chosen number of requests, so no test sleeps to wait for a moment.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.generated_site import (
    SRC,
    Site,
    assert_complete_and_exactly_once,
    finish,
    single_route_app,
    start_crawl,
)

pytestmark = pytest.mark.slow  # wall-clock crawls over real sockets: the smoke tests

PAGES = 300


async def test_kill_9_at_random_moments_then_resume_stores_everything_exactly_once(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path
) -> None:
    rng = random.Random(20261127)
    kill_at = sorted({1, 2, *rng.sample(range(3, PAGES), 4)})  # first requests included
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
        proc = await start_crawl(base, output, *(["--resume"] if runs else []))
        code, err = await finish(proc)
        runs += 1
        if code == 0:
            break
        assert code == -signal.SIGKILL, err
        assert runs <= len(kill_at) + 1
    assert not pending, "every kill happened"
    assert_complete_and_exactly_once(output, site.urls(base))
    assert site.requests >= PAGES


async def test_politeness_holds_across_a_restart(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path
) -> None:
    site = Site(pages=5)
    base = await serve(site)
    output = tmp_path / "out"
    proc: asyncio.subprocess.Process | None = None

    def kill_after_second(count: int) -> None:
        if count == 2 and proc is not None:
            os.kill(proc.pid, signal.SIGKILL)

    site.on_request = kill_after_second
    proc = await start_crawl(base, output, "--delay", "0.3", "--per-host", "1")
    assert (await finish(proc))[0] == -signal.SIGKILL
    proc = await start_crawl(base, output, "--delay", "0.3", "--per-host", "1", "--resume")
    assert (await finish(proc))[0] == 0
    gaps = [after - before for before, after in zip(site.starts, site.starts[1:], strict=False)]
    assert min(gaps) >= 0.3 - 0.01, gaps


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_signal_stops_within_the_grace_period_and_resume_completes(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path, sig: signal.Signals
) -> None:
    site = Site(pages=40, delay_s=0.2)
    base = await serve(site)
    output = tmp_path / "out"
    proc: asyncio.subprocess.Process | None = None
    signalled: list[float] = []

    def stop_after_ten(count: int) -> None:
        if count == 10 and proc is not None:
            signalled.append(time.monotonic())
            os.kill(proc.pid, sig)

    site.on_request = stop_after_ten
    proc = await start_crawl(base, output, "--grace", "5")
    code, err = await finish(proc)
    assert code == 130, err
    assert time.monotonic() - signalled[0] < 5, "did not stop within the grace period"
    assert "Traceback" not in err
    site.on_request = lambda count: None
    site.delay_s = 0
    proc = await start_crawl(base, output, "--resume")
    assert (await finish(proc))[0] == 0
    assert_complete_and_exactly_once(output, site.urls(base))


async def test_a_second_sigint_exits_at_once_and_stays_resumable(tmp_path: Path) -> None:
    site = Site(pages=10)
    hang = True
    first_request = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        if hang and request.path != "/robots.txt":
            first_request.set()
            await asyncio.Event().wait()  # never answers: only a second SIGINT ends the first run
        return await site.handle(request)

    async with TestServer(single_route_app(handler), host="127.0.0.1") as server:
        base = f"http://127.0.0.1:{server.port}"
        output = tmp_path / "out"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawlpool", "crawl", base + "/", "-o", str(output), "--grace", "60",
            "--progress-interval", "3600", "-v",
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC},
        )  # fmt: skip
        assert proc.stderr is not None
        await asyncio.wait_for(first_request.wait(), timeout=30)
        os.kill(proc.pid, signal.SIGINT)
        said = await asyncio.wait_for(proc.stderr.readline(), timeout=30)
        assert (
            said == b"crawlpool: stopping: requests in flight get up to 60 s to finish; "
            b"press Ctrl-C again to stop at once\n"
        )
        while b"stopping: letting" not in await asyncio.wait_for(proc.stderr.readline(), timeout=30):
            pass
        stopped_at = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 130
        assert time.monotonic() - stopped_at < 10, "the second SIGINT did not end the grace period"
        rest = (await proc.stderr.read()).decode()
        assert "crawlpool: crawl stopped before it was done" in rest
        assert "; continue it with --resume" in rest
        hang = False
        code, out, _ = await _run_cli("status", str(output))
        assert code == 0 and "stopped before it was done" in out and "continue it with --resume" in out
        proc = await start_crawl(base, output, "--resume")
        assert (await finish(proc))[0] == 0
        assert_complete_and_exactly_once(output, site.urls(base))


async def _run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawlpool", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_refusals_and_status(serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path) -> None:
    site = Site(pages=10)
    base = await serve(site)
    output = tmp_path / "out"
    code, _, _ = await _run_cli("status", str(output))
    assert code == 2
    proc = await start_crawl(base, output)
    assert (await finish(proc))[0] == 0
    code, out, _ = await _run_cli("status", str(output))
    assert code == 0
    assert out.splitlines()[0] == f"crawl in {output}: finished"
    assert "pages stored   10" in out
    code, _, err = await _run_cli("crawl", base + "/", "-o", str(output))
    assert code == 2 and "add --resume" in err and len(err.splitlines()) == 1
    code, _, err = await _run_cli("crawl", base + "/a-different-seed", "-o", str(output), "--resume")
    assert code == 2 and "other seeds" in err and len(err.splitlines()) == 1
    code, _, err = await _run_cli("crawl", base + "/", "-o", str(output), "--resume")
    assert code == 0, err

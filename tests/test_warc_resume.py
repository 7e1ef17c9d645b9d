"""WARC output across kill -9 and --resume: the crawler is killed at seeded random moments (by the
site, after a chosen number of answers, as in test_resume.py) and resumed until it finishes; then
`warcio check` passes and each manifest record has exactly one response record, whose decoded payload
is the stored page."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_resume import PAGES, Site, assert_complete_and_exactly_once, finish, serve, start_crawl
from tests.test_warc import assert_archive_matches_manifest, warcio_check

pytestmark = pytest.mark.slow  # wall-clock crawls in subprocesses
__all__ = ["serve"]  # the fixture, shared with test_resume.py


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

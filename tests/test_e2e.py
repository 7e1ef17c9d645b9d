"""End to end: crawl the local test site through the API and through the CLI, and check every record
and every file."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from crawlpool import crawl
from crawlpool.paths import page_path
from crawlpool.records import MANIFEST_FIELDS
from tests.site import EXPECTED, REQUEST_LOG, TOKEN, TOKEN_HEADER


def _base(site: TestServer) -> str:
    return f"http://127.0.0.1:{site.port}"


async def _add_token(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    request.headers[TOKEN_HEADER] = TOKEN
    return await handler(request)


def _read_manifest(output: Path) -> list[dict[str, Any]]:
    lines = (output / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _assert_crawl_of_site(output: Path, base: str) -> None:
    records = _read_manifest(output)
    by_url = {r["url"]: r for r in records}
    assert len(by_url) == len(records), "a URL has two records"
    assert set(by_url) == {base + path for path in EXPECTED}
    for path, (status, error_code, stored) in EXPECTED.items():
        record = by_url[base + path]
        assert list(record) == list(MANIFEST_FIELDS)
        assert record["status"] == status, path
        code = None if record["error"] is None else record["error"].split(":")[0]
        assert code == error_code, (path, record["error"])
        if stored:
            assert record["path"] == page_path(base + path)
            body = (output / record["path"]).read_bytes()
            assert hashlib.sha256(body).hexdigest() == record["sha256"]
            assert len(body) == record["bytes"]
        else:
            assert record["path"] is None
            assert record["sha256"] is None
    stored_files = {str(p.relative_to(output)) for p in (output / "pages").rglob("*") if p.is_file()}
    assert stored_files == {page_path(base + p) for p, e in EXPECTED.items() if e[2]}
    assert not list((output / ".crawlpool" / "tmp").iterdir()), "temp files left behind"
    home = by_url[base + "/"]
    assert home["depth"] == 0 and home["referrer"] is None
    assert home["links"] == 15  # distinct in-scope links; spellings of /a.html and /q count once
    assert by_url[base + "/b/c.html"]["depth"] == 2
    assert by_url[base + "/old"]["final_url"] == base + "/a.html"
    assert by_url[base + "/new.html"]["referrer"] == base + "/moved"
    assert by_url[base + "/from-gzip.html"]["referrer"] == base + "/gz.html"
    gz = (output / by_url[base + "/gz.html"]["path"]).read_bytes()
    assert gz.startswith(b"<!doctype html>"), "gzip body stored decompressed"


async def test_api_crawl_of_the_site_stores_every_page_once(site: TestServer, tmp_path: Path) -> None:
    output = tmp_path / "out"
    result = await crawl([_base(site) + "/"], output=output, retries=0, middlewares=[_add_token])
    _assert_crawl_of_site(output, _base(site))
    assert sorted(p.url for p in result.pages) == sorted(r["url"] for r in _read_manifest(output))
    assert result.stats.pages == sum(1 for e in EXPECTED.values() if e[2])
    assert result.stats.records == len(EXPECTED)
    log = site.app[REQUEST_LOG]
    fetched = [path for path, _ in log]
    assert fetched[0] == "/robots.txt", "robots.txt comes before the host's first page"
    fetched = fetched[1:]
    assert len(fetched) == len(set(fetched)) == len(EXPECTED), "a URL was fetched twice"
    assert "/never-followed" not in fetched
    assert all(headers[TOKEN_HEADER] == TOKEN for _, headers in log), "middleware skipped"
    assert all(h["User-Agent"].startswith("crawlpool/") for _, h in log)


async def test_cli_crawl_of_the_site_in_a_subprocess(site: TestServer, tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(f"# the test site\n\n{_base(site)}/\nftp://nope.example/\n")
    output = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawlpool", "crawl", str(seeds), "-o", str(output),
        "--retries", "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, stderr.decode()
    text = stderr.decode()
    assert f"{seeds}:4: not an http(s) URL (scheme ftp:), skipped" in text
    assert "Traceback" not in text
    records = {r["url"]: r for r in _read_manifest(output)}
    # Without the token middleware the private page is refused: everything else is as in the API run.
    assert records[_base(site) + "/private"]["status"] == 403
    assert set(records) == {_base(site) + p for p in EXPECTED}


async def test_max_pages_and_max_depth_bound_the_crawl(site: TestServer, tmp_path: Path) -> None:
    shallow = await crawl([_base(site) + "/"], output=tmp_path / "d", max_depth=0, retries=0)
    assert [p.url for p in shallow.pages] == [_base(site) + "/"]
    few = await crawl([_base(site) + "/"], output=tmp_path / "p", max_pages=3, retries=0)
    assert few.stats.pages == 3

"""WARC output (`--warc`): crawl a local site with gzip-encoded, chunked, redirecting and failing pages,
then read the archive back with warcio: `warcio check` passes, each record with a status has exactly one
response record whose decoded payload is the stored page, a page replays from the archive, files rotate,
and resume cuts what no committed record refers to."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from warcio.archiveiterator import ArchiveIterator

from crawlpool import crawl
from crawlpool import warc as warc_module
from crawlpool.cli import build_parser
from crawlpool.config import CrawlConfig
from crawlpool.errors import ConfigError
from crawlpool.exchange import Exchange
from crawlpool.warc import INLINE_BUILD_BYTES, WarcWriter, stored_response_headers
from crawlpool.warc_index import index_path, repair_warc_files, surt, warc_files

ROBOTS = b"User-agent: *\nDisallow: /private\n"
GZ_BODY = b"<html><body>zipped <a href='/'>home</a></body></html>"
CHUNKS = [b"<html><body>chunk one, ", b"chunk two, ", b"<a href='/gz'>gz</a></body></html>"]


def _html(*hrefs: str) -> str:
    return "<html><body>" + "".join(f'<a href="{h}">{h}</a>' for h in hrefs) + "</body></html>"


async def _handle(request: web.Request) -> web.StreamResponse:
    path = request.path
    if path == "/robots.txt":
        return web.Response(body=ROBOTS, content_type="text/plain")
    if path == "/":
        return web.Response(
            text=_html("/gz", "/chunked", "/chunked-gz", "/old", "/missing", "/private", "/img"),
            content_type="text/html",
        )
    if path == "/gz":
        return web.Response(
            body=gzip.compress(GZ_BODY), headers={"Content-Encoding": "gzip", "Content-Type": "text/html"}
        )
    if path in ("/chunked", "/chunked-gz"):
        encoded = path == "/chunked-gz"
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        if encoded:
            response.headers["Content-Encoding"] = "gzip"
        response.enable_chunked_encoding()
        await response.prepare(request)
        data = gzip.compress(b"".join(CHUNKS)) if encoded else b"".join(CHUNKS)
        for start in range(0, len(data), 16):  # many chunks on the wire
            await response.write(data[start : start + 16])
        await response.write_eof()
        return response
    if path == "/old":
        raise web.HTTPMovedPermanently("/new")
    if path == "/new":
        return web.Response(text=_html("/"), content_type="text/html")
    if path == "/img":
        return web.Response(body=bytes(range(256)) * 8, content_type="image/png")
    return web.Response(status=404, text="not found")


EXPECTED_STATUS = {
    "/": 200,
    "/gz": 200,
    "/chunked": 200,
    "/chunked-gz": 200,
    "/old": 301,
    "/new": 200,
    "/missing": 404,
    "/img": 200,
}


@pytest.fixture
async def warc_site() -> Any:
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", _handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield f"http://127.0.0.1:{server.port}"


def _manifest(output: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (output / "manifest.jsonl").read_text().splitlines()]


def _responses(output: Path) -> list[tuple[str, int, str, bytes, Any]]:
    """(file, offset, URI, decoded payload, http headers) of every response record of the crawl."""
    found = []
    for _, path in warc_files(output / "warc"):
        with path.open("rb") as fh:
            records = ArchiveIterator(fh)
            for record in records:
                if record.rec_type == "response":
                    uri = record.rec_headers.get_header("WARC-Target-URI")
                    body = record.content_stream().read()
                    found.append((f"warc/{path.name}", records.get_record_offset(), uri, body, record))
    return found


def warcio_check(output: Path) -> str:
    files = [str(path) for _, path in warc_files(output / "warc")]
    assert files, "no WARC file written"
    run = subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", "-v", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "digest pass" in run.stdout
    return run.stdout


def assert_archive_matches_manifest(*outputs: Path) -> None:
    """Each record with a status has exactly one response record, where the record says, whose decoded
    payload hashes to the record's sha256 (for pages stored whole); nothing else but robots.txt. With
    several outputs (the workers of one Redis crawl), over all of them together."""
    records = [(output, record) for output in outputs for record in _manifest(output)]
    responses = [(output, *found) for output in outputs for found in _responses(output)]
    per_uri = Counter(uri for _, _, _, uri, _, _ in responses)
    by_place = {(out, file, offset): (uri, body) for out, file, offset, uri, body, _ in responses}
    for output, record in records:
        if record["status"] is None:
            assert record["warc_file"] is None and record["warc_offset"] is None
            assert per_uri[record["url"]] == 0
            continue
        assert per_uri[record["url"]] == 1, record["url"]
        uri, body = by_place[(output, record["warc_file"], record["warc_offset"])]
        assert uri == record["url"]
        if record["path"] is not None and record["error"] is None:
            assert hashlib.sha256(body).hexdigest() == record["sha256"], record["url"]
    recorded = {record["url"] for _, record in records}
    assert {uri for uri in per_uri if uri not in recorded} <= {
        uri for uri in per_uri if uri.endswith("/robots.txt")
    }


async def test_a_crawl_archives_every_exchange_and_warcio_check_passes(
    warc_site: str, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    result = await crawl([warc_site + "/"], output=output, warc=True)
    assert {p.url.removeprefix(warc_site): p.status for p in result.pages if p.status} == EXPECTED_STATUS
    assert "robots" in {p.error_code for p in result.pages}  # /private: recorded, never requested
    report = warcio_check(output)
    assert "response" in report and "request" in report and "warcinfo" in report
    assert_archive_matches_manifest(output)
    robots = [body for _, _, uri, body, _ in _responses(output) if uri.endswith("/robots.txt")]
    assert robots == [ROBOTS]


async def test_stored_http_headers_frame_the_body_as_stored(warc_site: str, tmp_path: Path) -> None:
    output = tmp_path / "out"
    await crawl([warc_site + "/"], output=output, warc=True)
    records = {uri.removeprefix(warc_site): record for _, _, uri, _, record in _responses(output)}
    for path in ("/chunked", "/chunked-gz"):
        http = records[path].http_headers
        assert http.get_header("Transfer-Encoding") is None, "aiohttp removed the chunks"
        raw = _raw_payload(output, records, path)
        assert http.get_header("Content-Length") == str(len(raw))
    gz = records["/gz"]
    assert gz.http_headers.get_header("Content-Encoding") == "gzip"
    assert gzip.decompress(_raw_payload(output, records, "/gz")) == GZ_BODY  # as sent: still gzip
    assert _raw_payload(output, records, "/chunked-gz")[:2] == b"\x1f\x8b"
    assert records["/old"].http_headers.get_statuscode() == "301"
    assert records["/old"].http_headers.get_header("Location").endswith("/new")
    assert records["/"].rec_headers.get_header("WARC-IP-Address") == "127.0.0.1"


def _raw_payload(output: Path, records: dict[str, Any], path: str) -> bytes:
    """The payload of `path`'s response record as stored (not decoded)."""
    record = records[path]
    uri = record.rec_headers.get_header("WARC-Target-URI")
    for _, warc in warc_files(output / "warc"):
        with warc.open("rb") as fh:
            for candidate in ArchiveIterator(fh):
                if (
                    candidate.rec_type == "response"
                    and candidate.rec_headers.get_header("WARC-Target-URI") == uri
                ):
                    data: bytes = candidate.raw_stream.read()
                    return data
    raise AssertionError(path)


async def test_each_response_names_its_request_and_the_other_way_round(
    warc_site: str, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    await crawl([warc_site + "/"], output=output, warc=True)
    ids: dict[str, tuple[str, str | None]] = {}
    for _, path in warc_files(output / "warc"):
        with path.open("rb") as fh:
            for record in ArchiveIterator(fh):
                headers = record.rec_headers
                ids[headers.get_header("WARC-Record-ID")] = (
                    record.rec_type,
                    headers.get_header("WARC-Concurrent-To"),
                )
                assert headers.get_header("WARC-Block-Digest"), record.rec_type
                if record.rec_type == "request":
                    assert record.http_headers.protocol == "GET"
    pairs = [(kind, to) for kind, to in ids.values() if kind in ("request", "response")]
    assert pairs
    for kind, to in pairs:
        assert to is not None
        other_kind, back = ids[to]
        assert {kind, other_kind} == {"request", "response"}
        assert back is not None and ids[back][0] == kind


async def test_a_page_replays_from_the_archive_as_it_was_served(warc_site: str, tmp_path: Path) -> None:
    """A warcio-based replay server answers from the WARC record alone; a browser-like client (aiohttp,
    decoding gzip itself) gets from it exactly what it gets from the live site."""
    output = tmp_path / "out"
    result = await crawl([warc_site + "/"], output=output, warc=True)
    by_url = {page.url: page for page in result.pages}

    async def replay(request: web.Request) -> web.Response:
        page = by_url[warc_site + request.path_qs]
        assert page.warc_file is not None and page.warc_offset is not None
        with (output / page.warc_file).open("rb") as fh:
            fh.seek(page.warc_offset)
            record = next(iter(ArchiveIterator(fh)))
            http = record.http_headers
            body = record.raw_stream.read()  # as sent: the client decodes Content-Encoding itself
        headers = {k: v for k, v in http.headers if k.lower() not in ("content-length", "date", "server")}
        return web.Response(status=int(http.get_statuscode()), body=body, headers=headers)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", replay)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        for path in ("/", "/gz", "/chunked", "/chunked-gz", "/img"):
            async with session.get(warc_site + path) as live:
                original = await live.read()
            async with session.get(f"http://127.0.0.1:{server.port}{path}") as replayed:
                assert replayed.status == 200
                assert await replayed.read() == original, path
            stored = (output / by_url[warc_site + path].path).read_bytes()  # type: ignore[operator]
            assert stored == original


async def test_files_rotate_at_max_size_each_with_warcinfo_and_an_index(
    warc_site: str, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    await crawl([warc_site + "/"], output=output, warc=True, warc_max_size=1, concurrency=1)
    files = warc_files(output / "warc")
    assert len(files) >= len(EXPECTED_STATUS)  # one exchange per file: each passes 1 byte at once
    assert [serial for serial, _ in files] == list(range(len(files)))
    for _, path in files:
        with path.open("rb") as fh:
            kinds = [record.rec_type for record in ArchiveIterator(fh)]
        assert kinds == ["warcinfo", "response", "request"], path
        lines = index_path(path).read_text().splitlines()
        assert len(lines) == 1
        assert json.loads(lines[0].split(" ", 2)[2])["filename"] == path.name
    warcio_check(output)
    assert_archive_matches_manifest(output)


async def test_the_cdxj_index_lists_each_response_sorted_with_its_offset(
    warc_site: str, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    result = await crawl([warc_site + "/"], output=output, warc=True)
    ((_, warc),) = warc_files(output / "warc")
    lines = index_path(warc).read_text().splitlines()
    assert lines == sorted(lines)
    entries = {json.loads(line.split(" ", 2)[2])["url"]: line for line in lines}
    for page in result.pages:
        if page.status is None:
            continue
        key, stamp, fields = entries[page.url].split(" ", 2)
        assert key == surt(page.url)
        assert len(stamp) == 14 and stamp.isdigit()
        data = json.loads(fields)
        assert int(data["offset"]) == page.warc_offset
        assert data["status"] == str(page.status)


async def test_without_warc_nothing_is_archived_and_fields_are_null(warc_site: str, tmp_path: Path) -> None:
    output = tmp_path / "out"
    result = await crawl([warc_site + "/"], output=output)
    assert not (output / "warc").exists()
    assert all(p.warc_file is None and p.warc_offset is None for p in result.pages)
    assert all(r["warc_file"] is None for r in _manifest(output))


def test_surt_keys() -> None:
    assert surt("http://www.Example.com:8080/A?b=1&a=2") == "com,example:8080)/a?a=2&b=1"
    assert surt("https://example.com/") == "com,example)/"
    assert surt("http://127.0.0.1:9000/x") == "1,0,0,127:9000)/x"  # as pywb's index writes it


def test_warc_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="warc_max_size"):
        CrawlConfig(warc_max_size=0)
    with pytest.raises(ConfigError, match="warc: expected true or false"):
        CrawlConfig(warc="yes")  # type: ignore[arg-type]
    args = build_parser().parse_args(["crawl", "http://a.test/", "--warc", "--warc-max-size", "5MiB"])
    assert args.warc is True and args.warc_max_size == 5 * 1024 * 1024


def test_framing_headers_describe_the_stored_body() -> None:
    chunked = (("Transfer-Encoding", "chunked"), ("X-A", "1"))
    exchange = _exchange("http://a.test/x", b"hello", headers=chunked)
    ct = ("Content-Type", "text/html")
    assert stored_response_headers(exchange) == [ct, ("X-A", "1"), ("Content-Length", "5")]
    exchange = _exchange("http://a.test/x", b"hi", headers=(("Content-Length", "9"), ("X-A", "1")))
    assert stored_response_headers(exchange) == [ct, ("Content-Length", "2"), ("X-A", "1")]


# Resume: the repair of the WARC files after a kill, on files written by the real writer.


def _exchange(url: str, payload: bytes, *, headers: tuple[tuple[str, str], ...] = ()) -> Exchange:
    return Exchange(
        url=url,
        started=datetime.now(UTC),
        request_target="/" + url.split("/", 3)[3],
        request_headers=(("Host", "a.test"),),
        http_version="1.1",
        status=200,
        reason="OK",
        response_headers=(("Content-Type", "text/html"), *headers),
        payload=payload,
        truncated=None,
        peer_ip="127.0.0.1",
    )


def _uris(path: Path) -> list[tuple[str, str]]:
    with path.open("rb") as fh:
        return [
            (record.rec_type, record.rec_headers.get_header("WARC-Target-URI") or "")
            for record in ArchiveIterator(fh)
        ]


async def test_repair_keeps_committed_and_robots_exchanges_and_cuts_the_rest(tmp_path: Path) -> None:
    async with WarcWriter(tmp_path, max_bytes=10**9, info={"software": "test"}) as writer:
        first = await writer.append(await writer.build(_exchange("http://a.test/1", b"one")))
        committed = await writer.append(await writer.build(_exchange("http://a.test/2", b"two")))
        await writer.append(await writer.build(_exchange("http://a.test/3", b"never committed")))
        await writer.append(await writer.build(_exchange("http://a.test/robots.txt", b"User-agent: *")))
    ((_, path),) = warc_files(tmp_path / "warc")
    with path.open("ab") as fh:
        fh.write(gzip.compress(b"WARC/1.1\r\nWARC-Type: response\r\n" + b"x" * 500)[:100])  # cut by a kill
    dropped = repair_warc_files(tmp_path / "warc", {committed.file: committed.offset})
    assert dropped == 3  # /3's two records and the half one
    assert _uris(path) == [
        ("warcinfo", ""),
        ("response", "http://a.test/1"),
        ("request", "http://a.test/1"),
        ("response", "http://a.test/2"),
        ("request", "http://a.test/2"),
        ("response", "http://a.test/robots.txt"),
        ("request", "http://a.test/robots.txt"),
    ]
    assert first.offset < committed.offset
    index = index_path(path).read_text()
    assert "test,a)/3" not in index and "test,a)/2" in index
    assert repair_warc_files(tmp_path / "warc", {committed.file: committed.offset}) == 0  # idempotent


async def test_repair_empties_a_file_with_nothing_committed_and_the_next_run_starts_a_new_one(
    tmp_path: Path,
) -> None:
    async with WarcWriter(tmp_path, max_bytes=10**9, info={"software": "test"}) as writer:
        await writer.append(await writer.build(_exchange("http://a.test/1", b"one")))
    ((_, path),) = warc_files(tmp_path / "warc")
    repair_warc_files(tmp_path / "warc", {})
    assert _uris(path) == [("warcinfo", "")]
    async with WarcWriter(tmp_path, max_bytes=10**9, info={"software": "test"}) as writer:
        where = await writer.append(await writer.build(_exchange("http://a.test/1", b"one")))
    assert [serial for serial, _ in warc_files(tmp_path / "warc")] == [0, 1]
    assert where.file.endswith("-00001.warc.gz")


async def test_undo_takes_back_the_last_exchange(tmp_path: Path) -> None:
    async with WarcWriter(tmp_path, max_bytes=10**9, info={"software": "test"}) as writer:
        await writer.append(await writer.build(_exchange("http://a.test/1", b"one")))
        where = await writer.append(await writer.build(_exchange("http://a.test/2", b"two")))
        await writer.undo(where)
    ((_, path),) = warc_files(tmp_path / "warc")
    assert path.stat().st_size == where.offset
    assert [uri for kind, uri in _uris(path) if kind == "response"] == ["http://a.test/1"]
    assert "test,a)/2" not in index_path(path).read_text()


async def test_large_and_small_exchanges_interleave_whole(tmp_path: Path) -> None:
    """Exchanges past INLINE_BUILD_BYTES are built and written in the writer's thread, smaller ones on
    the loop: in either case each lands whole, in order, where `append` says."""
    big = random.Random(13).randbytes(INLINE_BUILD_BYTES + 1000)  # gzip cannot shrink it
    bodies = [b"small", big, b"small again", big]
    async with WarcWriter(tmp_path, max_bytes=10**9, info={"software": "test"}) as writer:
        places = [
            await writer.append(await writer.build(_exchange(f"http://a.test/{i}", body)))
            for i, body in enumerate(bodies)
        ]
    ((_, path),) = warc_files(tmp_path / "warc")
    found = []
    with path.open("rb") as fh:
        records = ArchiveIterator(fh)
        for record in records:
            if record.rec_type == "response":
                body = record.content_stream().read()  # before get_record_offset, which reads to the end
                uri = record.rec_headers.get_header("WARC-Target-URI")
                found.append((records.get_record_offset(), uri, body))
    expected = [
        (where.offset, f"http://a.test/{i}", body)
        for i, (where, body) in enumerate(zip(places, bodies, strict=True))
    ]
    assert found == expected
    warcio_check(tmp_path)


async def test_the_e2e_site_with_truncated_and_failing_pages_archives_cleanly(
    site: TestServer, tmp_path: Path
) -> None:
    """tests/site.py: a body cut off mid-way, a 500, a 403, redirects to pages seen before."""
    output = tmp_path / "out"
    result = await crawl([f"http://127.0.0.1:{site.port}/"], output=output, warc=True, retries=0)
    warcio_check(output)
    assert_archive_matches_manifest(output)
    truncated = next(p for p in result.pages if p.error_code == "truncated")
    with (output / str(truncated.warc_file)).open("rb") as fh:
        fh.seek(int(truncated.warc_offset or 0))
        record = next(iter(ArchiveIterator(fh)))
        assert record.rec_headers.get_header("WARC-Truncated") == "disconnect"
        assert record.content_stream().read() == b"<html>0123"


async def test_index_lines_spill_to_disk_and_come_back_sorted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warc_module, "INDEX_LINES_KEPT", 4)  # a 1 GB file of small records: ~10^6 lines
    async with WarcWriter(tmp_path, max_bytes=10**9, info={"software": "test"}) as writer:
        for i in range(11):
            where = await writer.append(await writer.build(_exchange(f"http://a.test/{i % 7}/{i}", b"x")))
        await writer.undo(where)  # the last line is taken back, whatever was spilled before it
    ((_, path),) = warc_files(tmp_path / "warc")
    lines = index_path(path).read_text().splitlines()
    assert lines == sorted(lines)
    assert sorted(json.loads(line.split(" ", 2)[2])["url"] for line in lines) == sorted(
        f"http://a.test/{i % 7}/{i}" for i in range(10)
    )
    assert [p.name for p in (tmp_path / "warc").iterdir() if p.suffix == ".unsorted"] == []

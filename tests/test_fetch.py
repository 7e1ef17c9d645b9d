"""Fetch faults, with aioresponses standing in for the network."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aioresponses import aioresponses

from crawlpool.fetch import Fetcher, Response

URL = "http://site.test/page.html"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


async def fetch(session: aiohttp.ClientSession, max_bytes: int = 1_000_000) -> Response:
    return await Fetcher(session, timeout_s=5, max_bytes=max_bytes).fetch(URL)


async def test_a_whole_page(mock_http: aioresponses, session: aiohttp.ClientSession) -> None:
    mock_http.get(URL, body=b"<html>hi</html>", content_type="text/html")
    response = await fetch(session)
    assert (response.status, response.error, response.body) == (200, None, b"<html>hi</html>")
    assert response.content_type == "text/html"


async def test_timeout(mock_http: aioresponses, session: aiohttp.ClientSession) -> None:
    mock_http.get(URL, exception=TimeoutError())
    response = await fetch(session)
    assert response.status is None and response.error is not None
    assert response.error.code == "timeout" and response.retryable


async def test_timeout_counts_the_whole_request() -> None:
    """A server that answers the headers but never finishes the body times out too."""
    started = asyncio.Event()

    async def slow_body(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.StreamResponse()
        response.content_length = 100
        await response.prepare(request)
        await response.write(b"x")
        started.set()
        await asyncio.Event().wait()  # never finishes; the client's deadline must end it
        return response

    from aiohttp import web
    from aiohttp.test_utils import TestServer

    app = web.Application()
    app.router.add_get("/", slow_body)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as s:
        fetcher = Fetcher(s, timeout_s=0.2, max_bytes=1000)
        response = await fetcher.fetch(f"http://127.0.0.1:{server.port}/")
    assert started.is_set()
    assert response.status == 200 and response.error is not None
    assert response.error.code == "timeout" and response.body == b""
    assert response.retryable, "a stall after the status line is as transient as one before it"


@pytest.mark.parametrize(
    ("exception", "code"),
    [
        (aiohttp.ClientOSError(104, "Connection reset by peer"), "connect"),
        (aiohttp.ServerDisconnectedError(), "connect"),
        (aiohttp.ClientPayloadError("Response payload is not completed"), "truncated"),
    ],
)
async def test_connection_faults(
    mock_http: aioresponses, session: aiohttp.ClientSession, exception: Exception, code: str
) -> None:
    mock_http.get(URL, exception=exception)
    response = await fetch(session)
    assert response.error is not None and response.error.code == code
    assert response.body == b"" and response.retryable


async def test_a_body_shorter_than_its_content_length_is_not_a_page(
    mock_http: aioresponses,
    session: aiohttp.ClientSession,
) -> None:
    mock_http.get(URL, body=b"0123456789", headers={"Content-Length": "1000"})
    response = await fetch(session)
    assert response.error is not None and response.error.code == "truncated"
    assert response.body == b"" and response.status == 200 and response.retryable


async def test_a_body_over_max_bytes_is_cut_and_flagged(
    mock_http: aioresponses, session: aiohttp.ClientSession
) -> None:
    mock_http.get(URL, body=b"a" * 5000, content_type="text/html")
    response = await fetch(session, max_bytes=1000)
    assert response.error is not None and response.error.code == "too_large"
    assert response.body == b"a" * 1000 and not response.retryable


async def test_max_bytes_counts_decompressed_bytes(
    mock_http: aioresponses, session: aiohttp.ClientSession
) -> None:
    compressed = gzip.compress(b"b" * 5000)
    assert len(compressed) < 1000
    mock_http.get(URL, body=compressed, headers={"Content-Encoding": "gzip"})
    response = await fetch(session, max_bytes=1000)
    assert response.error is not None and response.error.code == "too_large"
    assert response.body == b"b" * 1000


async def test_a_gzip_bomb_does_not_grow_memory(
    mock_http: aioresponses, session: aiohttp.ClientSession
) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB from ~64 KiB
    mock_http.get(URL, body=bomb, headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        response = await fetch(session, max_bytes=1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.error is not None and response.error.code == "too_large"
    assert len(response.body) == 1024 * 1024
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes while reading a 64 MiB bomb"


async def test_gzip_and_deflate_bodies_are_decoded(
    mock_http: aioresponses, session: aiohttp.ClientSession
) -> None:
    text = b"<html>" + b"z" * 3000 + b"</html>"
    mock_http.get(URL, body=gzip.compress(text), headers={"Content-Encoding": "gzip"})
    mock_http.get(URL, body=zlib.compress(text), headers={"Content-Encoding": "deflate"})
    mock_http.get(URL, body=gzip.compress(text[:10]) + gzip.compress(text[10:]),
             headers={"Content-Encoding": "gzip"})  # fmt: skip
    for _ in range(3):
        response = await fetch(session)
        assert (response.error, response.body) == (None, text)


def raw_deflate(data: bytes) -> bytes:
    """`data` as a deflate stream without the zlib header and checksum."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


async def test_raw_deflate_is_decoded_too(mock_http: aioresponses, session: aiohttp.ClientSession) -> None:
    """`Content-Encoding: deflate` means zlib-wrapped (RFC 9110), but servers send raw deflate too."""
    text = b"<html>" + b"r" * 3000 + b"</html>"
    mock_http.get(URL, body=raw_deflate(text), headers={"Content-Encoding": "deflate"})
    mock_http.get(URL, body=raw_deflate(b""), headers={"Content-Encoding": "deflate"})
    response = await fetch(session)
    assert (response.error, response.body) == (None, text)
    response = await fetch(session)
    assert (response.error, response.body) == (None, b"")


async def test_raw_deflate_is_bounded_by_max_bytes(
    mock_http: aioresponses, session: aiohttp.ClientSession
) -> None:
    bomb = raw_deflate(b"\0" * (16 * 1024 * 1024))
    mock_http.get(URL, body=bomb, headers={"Content-Encoding": "deflate"})
    tracemalloc.start()
    try:
        response = await fetch(session, max_bytes=256 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.error is not None and response.error.code == "too_large"
    assert response.body == b"\0" * (256 * 1024)
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes while reading a 16 MiB raw deflate bomb"


async def test_cut_or_corrupt_deflate_is_an_error(
    mock_http: aioresponses, session: aiohttp.ClientSession
) -> None:
    text = bytes(range(256)) * 200  # little to compress: a cut stream is cut mid-block
    for whole in (zlib.compress(text), raw_deflate(text)):
        mock_http.get(URL, body=whole[: len(whole) // 2], headers={"Content-Encoding": "deflate"})
    mock_http.get(URL, body=b"\xff\xff not deflate either way", headers={"Content-Encoding": "deflate"})
    responses = [await fetch(session) for _ in range(3)]
    assert [r.error.code if r.error else None for r in responses] == ["truncated", "truncated", "encoding"]
    assert all(r.body == b"" for r in responses)


async def test_corrupt_or_cut_gzip_is_an_error(
    mock_http: aioresponses, session: aiohttp.ClientSession
) -> None:
    whole = gzip.compress(b"x" * 10_000)
    mock_http.get(URL, body=whole[: len(whole) // 2], headers={"Content-Encoding": "gzip"})
    mock_http.get(URL, body=b"not gzip at all", headers={"Content-Encoding": "gzip"})
    mock_http.get(URL, body=b"???", headers={"Content-Encoding": "br"})
    responses = [await fetch(session) for _ in range(3)]
    assert [r.error.code if r.error else None for r in responses] == ["truncated", "encoding", "encoding"]
    assert [r.retryable for r in responses] == [True, False, False]


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [(404, "http_4xx", False), (403, "http_4xx", False), (429, "http_4xx", True),
     (500, "http_5xx", True), (503, "http_5xx", True), (501, "http_5xx", False)],
)  # fmt: skip
async def test_http_errors_keep_their_status(
    mock_http: aioresponses, session: aiohttp.ClientSession, status: int, code: str, retryable: bool
) -> None:
    mock_http.get(URL, status=status, body=b"nope", headers={"Retry-After": "7"})
    response = await fetch(session)
    assert response.status == status and response.error is not None
    assert response.error.code == code and response.retryable is retryable
    assert response.retry_after == "7"


async def test_redirects_are_not_followed_by_the_fetcher(
    mock_http: aioresponses, session: aiohttp.ClientSession
) -> None:
    mock_http.get(URL, status=301, headers={"Location": "/elsewhere"})
    response = await fetch(session)
    assert (response.status, response.location, response.error) == (301, "/elsewhere", None)

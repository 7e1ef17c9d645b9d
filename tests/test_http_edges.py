"""HTTP edge cases seen on the wire: hostile servers on 127.0.0.1 count what really reaches them."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

import crawlpool
from crawlpool.fetch import Fetcher, body_expected
from tests import hostile
from tests.hostile import Behaviour, HostileServer

TRANSIENT: dict[str, tuple[Behaviour, str]] = {
    "timeout before headers": (hostile.stall_before_headers, "timeout"),
    "timeout mid-body": (hostile.stall_mid_body, "timeout"),
    "short Content-Length": (hostile.short_content_length, "truncated"),
    "cut chunked body": (hostile.cut_chunked_body, "truncated"),
    "gzip ended early": (hostile.gzip_ended_early, "truncated"),
    "reset before answer": (hostile.reset_before_answer, "connect"),
    "dropped before answer": (hostile.drop_before_answer, "connect"),
    "503": (hostile.status("503 Service Unavailable"), "http_5xx"),
    "429": (hostile.status("429 Too Many Requests"), "http_4xx"),
}


@pytest.mark.parametrize("kind", list(TRANSIENT))
async def test_a_transient_failure_is_tried_exactly_retries_plus_one_times(kind: str, tmp_path: Path) -> None:
    """`--retries 1` means two requests on the wire, whether the failure came before the status line
    or after it, and aiohttp's own silent re-send of a dropped idempotent request must not add any.
    The record is the last attempt's."""
    behaviour, code = TRANSIENT[kind]
    output = tmp_path / "out"
    async with HostileServer(behaviour) as server:
        result = await crawlpool.crawl(
            [server.url("/")],
            output=output,
            retries=1,
            retry_backoff_s=0.01,
            timeout_s=0.5,  # the stalling servers never answer; the others answer at once
            frontier="memory",
            robots=False,
        )
    assert server.requests == 2, f"{kind}: {server.requests} requests on the wire for --retries 1"
    assert result.stats.retries == 1
    records = [json.loads(line) for line in (output / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 1
    assert records[0]["error"].split(":")[0] == code, records[0]
    assert records[0]["path"] is None and records[0]["bytes"] == 0


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (hostile.status("304 Not Modified", "Content-Length: 5000", body=b""), 304),
        (hostile.status("204 No Content", body=b""), 204),
    ],
)
async def test_no_body_is_expected_none_is_read_and_nothing_is_truncated(
    answer: Behaviour, status: int
) -> None:
    """A 304's Content-Length is the size of the page it stands for, not of a body that follows."""
    async with HostileServer(answer) as server, aiohttp.ClientSession(auto_decompress=False) as session:
        response = await Fetcher(session, timeout_s=2, max_bytes=1000).fetch(server.url("/"))
    assert (response.status, response.error, response.body) == (status, None, b"")
    assert not response.retryable and server.requests == 1


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [("GET", 200, True), ("GET", 404, True), ("GET", 301, True), ("GET", 100, False), ("GET", 101, False),
     ("GET", 204, False), ("GET", 304, False), ("HEAD", 200, False), ("HEAD", 404, False)],
)  # fmt: skip
def test_which_answers_have_a_body(method: str, status: int, expected: bool) -> None:
    assert body_expected(method, status) is expected

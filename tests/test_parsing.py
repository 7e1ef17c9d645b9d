"""Link extraction on the event loop (`--parse-workers 0`, and every worker process): one page per turn
of the loop, so the loop polls its sockets (lease replies, answers, new requests) between two pages."""

from __future__ import annotations

import asyncio

import pytest

from crawlpool import parsing
from crawlpool.parsing import LinkParser


async def test_pages_answered_together_are_parsed_one_per_turn_of_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    events: list[str] = []

    def extract(body: bytes, url: str, content_type: str | None) -> list[str]:
        events.append(f"parse {url}")
        # What the loop would do at its next turn: read a socket, send a request.
        loop.call_soon(events.append, f"next turn after {url}")
        return [url + "/link"]

    monkeypatch.setattr(parsing, "get_extractor", lambda parser: extract)
    parser = LinkParser("lxml", processes=0)
    found = await asyncio.gather(*(parser.links(b"<a>", url, "text/html") for url in ("a", "b", "c")))

    assert found == [["a/link"], ["b/link"], ["c/link"]]
    assert events == [
        "parse a",
        "next turn after a",  # without the turns, b and c were parsed here, in a's turn
        "parse b",
        "next turn after b",
        "parse c",
        "next turn after c",
    ]


async def test_a_parse_cancelled_while_it_waits_for_its_turn_does_not_hold_up_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []

    def extract(body: bytes, url: str, content_type: str | None) -> list[str]:
        parsed.append(url)
        return []

    monkeypatch.setattr(parsing, "get_extractor", lambda parser: extract)
    parser = LinkParser("lxml", processes=0)
    first = asyncio.ensure_future(parser.links(b"", "a", None))
    waiting = asyncio.ensure_future(parser.links(b"", "b", None))
    last = asyncio.ensure_future(parser.links(b"", "c", None))
    await first
    waiting.cancel()
    assert await last == []
    assert parsed == ["a", "c"]
    assert waiting.cancelled()

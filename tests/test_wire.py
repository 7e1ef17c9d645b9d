"""The worker processes' messages (`multiproc.wire`): framed pickles over a real socket pair."""

from __future__ import annotations

import socket

import pytest

from crawlpool.frontier import FrontierCounts, Lease, LeaseBatch, Request, RobotsState
from crawlpool.multiproc.wire import Channel, ChannelClosed
from crawlpool.policy.pacing import Answered, Blocked, FloorRaised, HostPace
from crawlpool.records import Page

PAGE = Page(
    url="http://127.0.0.1/a",
    final_url="http://127.0.0.1/b",
    status=200,
    content_type="text/html",
    depth=2,
    referrer="http://127.0.0.1/",
    path="127.0.0.1/a.html",
    bytes=10,
    sha256="00",
    fetched_at="2026-12-01T00:00:00.000Z",
    elapsed_ms=3,
    error=None,
    links=4,
    etag='"x"',
    kind="requisite",
)
REQUEST = Request("http://127.0.0.1/a", 7, "127.0.0.1", 2, "http://127.0.0.1/", 1, 2, 1, "sitemap", "2026")


async def test_every_message_type_arrives_equal_and_in_order() -> None:
    ours, theirs = socket.socketpair()
    a, b = await Channel.over(ours), await Channel.over(theirs)
    messages = [
        ("call", 1, "ack", (Lease(REQUEST, 1 << 40), PAGE)),
        ("reply", 2, True, LeaseBatch([Lease(REQUEST, 3)], 0.25)),
        ("reply", 3, True, (FrontierCounts(1, 2, 3, 4), False)),
        ("call", -1, "observe", ("h", Answered(200, 12.5, None))),
        ("call", -1, "observe", ("h", Blocked(3.0))),
        ("call", -1, "observe", ("h", FloorRaised(1.5))),
        ("reply", 4, True, HostPace(1.0, 2.0, 3.0, 4)),
        ("reply", 5, True, RobotsState("User-agent: *", None, 0, 60.0)),
    ]
    for message in messages:  # queued in one turn: one write
        a.send(message)
    assert [await b.receive() for _ in messages] == messages
    a.close()
    with pytest.raises(ChannelClosed):
        await b.receive()
    b.close()

"""Hostile HTTP servers on 127.0.0.1: raw asyncio sockets that answer every request with one scripted
misbehaviour (stall, cut the body, reset, ...) and count the requests that reach them on the wire.

aiohttp.web cannot send a body shorter than its Content-Length, a chunked body without its last chunk
or a reset, so these write bytes themselves. Each connection serves one request and is closed; every
scripted answer says `Connection: close` so that the client never reuses a socket we are about to drop.
A server answers at most `max_requests` requests: later connections are counted and closed unanswered.
Behaviours that stall wait on an event that leaving the `async with` sets; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import struct
from collections.abc import Awaitable, Callable
from types import TracebackType

Behaviour = Callable[[asyncio.StreamWriter, asyncio.Event], Awaitable[None]]


def head(status: str, *headers: str) -> bytes:
    """A response head that closes the connection, with `headers` ("Name: value") as given."""
    lines = [f"HTTP/1.1 {status}", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class HostileServer:
    def __init__(self, behaviour: Behaviour, *, max_requests: int = 10) -> None:
        self._behaviour = behaviour
        self._max_requests = max_requests
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.requests = 0  # request heads read, answered or not
        self.paths: list[str] = []

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            try:
                request_head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # a connection that never sent a request
            self.requests += 1
            self.paths.append(request_head.split(b" ", 2)[1].decode())
            if self.requests <= self._max_requests:
                await self._behaviour(writer, self._release)
        except ConnectionError:
            pass  # the client gave up first (its timeout): that is what some tests wait for
        finally:
            self._writers.discard(writer)
            self._handlers.discard(task)
            if not writer.transport.is_closing():
                writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


# The misbehaviours. Each is called once per request, after the request head was read.


async def stall_before_headers(writer: asyncio.StreamWriter, release: asyncio.Event) -> None:
    await release.wait()


async def stall_mid_body(writer: asyncio.StreamWriter, release: asyncio.Event) -> None:
    writer.write(head("200 OK", "Content-Type: text/html", "Content-Length: 100") + b"<")
    await writer.drain()
    await release.wait()


async def short_content_length(writer: asyncio.StreamWriter, release: asyncio.Event) -> None:
    writer.write(head("200 OK", "Content-Type: text/html", "Content-Length: 1000") + b"<html>0123")
    await writer.drain()


async def cut_chunked_body(writer: asyncio.StreamWriter, release: asyncio.Event) -> None:
    writer.write(head("200 OK", "Content-Type: text/html", "Transfer-Encoding: chunked") + b"6\r\n<html>\r\n")
    await writer.drain()  # and no terminating 0-size chunk


GZIP_WHOLE = gzip.compress(b"<html>" + b"x" * 10_000 + b"</html>")
GZIP_HALF = GZIP_WHOLE[: len(GZIP_WHOLE) // 2]


async def gzip_ended_early(writer: asyncio.StreamWriter, release: asyncio.Event) -> None:
    """A body whole by its Content-Length whose gzip stream stops half way."""
    writer.write(
        head(
            "200 OK",
            "Content-Type: text/html",
            "Content-Encoding: gzip",
            f"Content-Length: {len(GZIP_HALF)}",
        )
        + GZIP_HALF
    )
    await writer.drain()


async def reset_before_answer(writer: asyncio.StreamWriter, release: asyncio.Event) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # with SO_LINGER 0: an RST, not a FIN


async def drop_before_answer(writer: asyncio.StreamWriter, release: asyncio.Event) -> None:
    writer.close()


def status(line: str, *headers: str, body: bytes = b"nope") -> Behaviour:
    """Answer `line` (e.g. "503 Service Unavailable") with a whole body, and its Content-Length unless
    `headers` give one."""
    if not any(h.lower().startswith("content-length:") for h in headers):
        headers = (*headers, f"Content-Length: {len(body)}")

    async def answer(writer: asyncio.StreamWriter, release: asyncio.Event) -> None:
        writer.write(head(line, *headers) + body)
        await writer.drain()

    return answer

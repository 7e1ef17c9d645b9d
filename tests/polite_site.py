"""A test site whose answers each test chooses, and which logs every request with start and end times.

Behaviours are keyed by (hostname, path) or by path alone; the same server answers as two hosts,
`127.0.0.1` and `localhost`, which a crawler must treat as two politeness keys.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Hit:
    host: str  # the Host header's name, without the port
    path: str
    start: float
    end: float


@dataclass
class PoliteSite:
    behaviours: dict[str | tuple[str, str], Behaviour] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)

    def on(self, path: str, behaviour: Behaviour, host: str | None = None) -> None:
        self.behaviours[(host, path) if host else path] = behaviour

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            started = time.monotonic()
            name = request.host.rsplit(":", 1)[0]
            behaviour = self.behaviours.get((name, request.path)) or self.behaviours.get(request.path)
            try:
                if behaviour is None:
                    return web.Response(status=404, text="not found")
                return await behaviour(request)
            finally:
                self.hits.append(Hit(name, request.path_qs, started, time.monotonic()))

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handle)
        return app

    def hits_of(self, host: str) -> list[Hit]:
        return sorted((h for h in self.hits if h.host == host), key=lambda h: h.start)


@dataclass
class Sends:
    """When the crawler handed each request to aiohttp, on its own clock, recorded by a client middleware.

    The site sees a request later by a lag that varies: the site and the crawler share the test's event
    loop, so a request waits in the socket while the crawler commits or parses. The delay between starts
    is what the crawler keeps, so tests assert it here; the site's log is for what a host can tell
    exactly (requests in flight, a request inside a Retry-After window)."""

    times: list[tuple[str, str, float]] = field(default_factory=list)  # (host, path, when)

    async def middleware(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        self.times.append((request.url.host or "", request.url.path_qs, time.monotonic()))
        return await handler(request)

    def of(self, host: str) -> list[float]:
        return [when for name, _, when in self.times if name == host]


def page(*hrefs: str, delay_s: float = 0.0) -> Behaviour:
    """An HTML page linking to `hrefs`, answered after `delay_s` (the server being slow)."""
    import asyncio

    body = "<html><body>" + "".join(f'<a href="{h}">x</a>' for h in hrefs) + "</body></html>"

    async def answer(request: web.Request) -> web.StreamResponse:
        if delay_s:
            await asyncio.sleep(delay_s)
        return web.Response(text=body, content_type="text/html")

    return answer


def text(body: str | bytes, status: int = 200, headers: dict[str, str] | None = None) -> Behaviour:
    async def answer(request: web.Request) -> web.StreamResponse:
        data = body.encode() if isinstance(body, str) else body
        return web.Response(body=data, status=status, headers=headers, content_type="text/plain")

    return answer


def sequence(*behaviours: Behaviour) -> Behaviour:
    """Answers with each behaviour in turn, then keeps answering with the last."""
    calls = 0

    async def answer(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        behaviour = behaviours[min(calls, len(behaviours) - 1)]
        calls += 1
        return await behaviour(request)

    return answer


def redirect(location: str, status: int = 301) -> Behaviour:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    return answer

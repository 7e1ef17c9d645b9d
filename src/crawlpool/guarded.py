"""The crawl's TCP connector, which connects only to addresses the `AddressGuard` allows.

Why here. Every request the crawl sends (pages, each redirect hop, robots.txt and its redirects, a user
middleware's own requests) goes through the one session's connector, and a new connection always asks
`TCPConnector._resolve_host` for the addresses to try, both for host names (the resolver, or the DNS
cache) and for IP literals (which aiohttp answers itself without a resolver). Checking its answer is
therefore checking the address actually connected to: a link, a redirect or a robots.txt redirect to an
inward address is refused, and so is a name whose DNS answer changes to 127.0.0.1 after a first public
one (DNS rebinding), since the check runs on every connection, cached answers included. A pooled
keep-alive connection is reused only for the same host and port, and it passed the check when made.

`_resolve_host` is aiohttp's (private) hook; `tests/test_address_guard.py` crawls through it, so an
aiohttp release that stops calling it fails the tests rather than the guard going quiet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import ResolveResult

from crawlpool.addresses import AddressGuard

if TYPE_CHECKING:
    from aiohttp.tracing import Trace


class BlockedAddress(aiohttp.ClientConnectionError):
    """The guard refused every address of a host; the message says why ("10.0.0.5 is private").
    Raised before any packet is sent to it. The fetcher records it as `blocked_address`."""


class GuardedConnector(aiohttp.TCPConnector):
    """A `TCPConnector` that drops the addresses `guard` refuses and raises `BlockedAddress` when none
    is left."""

    def __init__(self, guard: AddressGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard = guard

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces=traces)
        allowed, reason = self._guard.check(host, [result["host"] for result in results])
        if not allowed:
            raise BlockedAddress(reason or f"{host} resolved to no address")
        keep = set(allowed)
        return [result for result in results if result["host"] in keep]

"""Serving the dashboard for as long as a block runs (see address.py for where and with which token)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from crawlpool.dashboard.address import Address
from crawlpool.dashboard.app import make_app
from crawlpool.dashboard.source import Source
from crawlpool.errors import ConfigError


@contextlib.asynccontextmanager
async def serving(source: Source, address: Address, token: str | None) -> AsyncIterator[str]:
    """Serve the dashboard of `source` until the block ends; yields its URL (with `?token=` when one is
    required). Raises ConfigError when the address cannot be bound."""
    # A short shutdown: the event streams never end by themselves.
    runner = web.AppRunner(
        make_app(source, token=token), access_log=None, handle_signals=False, shutdown_timeout=0.5
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, address.host, address.port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"dashboard: cannot listen on {address.host}:{address.port}: {exc.strerror or exc}"
            ) from None
        port = runner.addresses[0][1]
        host = f"[{address.host}]" if ":" in address.host else address.host
        yield f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    finally:
        await runner.cleanup()

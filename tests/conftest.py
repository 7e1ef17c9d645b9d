from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import aioresponses.core as aioresponses_core
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from yarl import URL

from tests import loopback_only
from tests.generated_site import serve  # noqa: F401  (a fixture: subprocess crawls of a generated site)
from tests.site import make_app

loopback_only.install()  # at import, before any test or fixture can open a socket


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    """Fail the test if anything in it tried to connect outside loopback (see tests/loopback_only.py)."""
    before = len(loopback_only.violations)
    yield
    tried = loopback_only.violations[before:]
    if tried:
        pytest.fail(f"tried to leave loopback: {'; '.join(tried)}")


@pytest.fixture
async def site(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> TestServer:
    """The test site of tests/site.py, on 127.0.0.1 on a free port."""
    app: web.Application = make_app()
    return await aiohttp_server(app, host="127.0.0.1")


class _MockResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required `stream_writer` argument
    (pnuckowski/aioresponses#289); give it the one attribute a finished request's writer needs."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mock_http(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """aioresponses, working with the installed aiohttp."""
    monkeypatch.setattr(aioresponses_core, "ClientResponse", _MockResponse)
    with aioresponses() as mock:
        yield mock

"""A real headless Chromium for tests of what a person looks at (Debian's `chromium` package).

`open_page(url)` starts Chromium with the DevTools protocol on a free loopback port, opens `url` in a new
tab and returns a `Page` that evaluates JavaScript in it (aiohttp's WebSocket client speaks the
protocol). Waiting for the page is done inside the page: `page.wait_for(js_condition)` polls the
condition in the browser and answers when it holds, so no test sleeps. Skips with a reason when there is
no Chromium.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

START_TIMEOUT_S = 20.0


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    reason = "no chromium on PATH (Debian: apt-get install chromium); .ci/run installs it"
    if os.environ.get("CRAWLPOOL_REQUIRE_CHROMIUM") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        async for message in self._ws:
            data = json.loads(message.data)
            if data.get("id") == call_id:
                if "error" in data:
                    raise AssertionError(f"{method}: {data['error']}")
                result: dict[str, Any] = data["result"]
                return result
        raise AssertionError("the browser closed the connection")

    async def navigate(self, url: str, timeout_s: float = 20.0) -> None:
        """Load `url` and return once its load event fired (scripts with `defer` have run by then)."""
        await self.call("Page.enable")
        await self.call("Page.navigate", url=url)

        async def loaded() -> None:
            async for message in self._ws:
                if json.loads(message.data).get("method") == "Page.loadEventFired":
                    return

        await asyncio.wait_for(loaded(), timeout_s)

    async def evaluate(self, expression: str, timeout_s: float = 20.0) -> Any:
        """The value of a JavaScript expression (a promise is awaited) in the page."""
        result = await asyncio.wait_for(
            self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True),
            timeout_s,
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, condition: str, value: str = "true", timeout_s: float = 20.0) -> Any:
        """`value` once the JavaScript `condition` holds, polled in the page every 50 ms."""
        expression = (
            "new Promise((resolve) => { const check = () => { try { if ("
            + condition
            + ") { resolve("
            + value
            + "); return; } } catch (e) {} setTimeout(check, 50); }; check(); })"
        )
        return await self.evaluate(expression, timeout_s)

    async def screenshot(self, width: int = 1200, height: int = 900) -> bytes:
        """The page as a PNG."""
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = await self.call("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])


@contextlib.asynccontextmanager
async def open_page(url: str, profile: Path) -> AsyncIterator[Page]:
    binary = chromium_binary()
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1",
        f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            target = await _new_tab(session, port)
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.navigate(url)
                yield page
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _new_tab(session: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    """A new blank tab, once the DevTools endpoint answers (Chromium takes a moment to start)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while True:
        try:
            async with session.put(f"http://127.0.0.1:{port}/json/new?about:blank") as response:
                if response.status == 200:
                    target: dict[str, Any] = await response.json(content_type=None)
                    return target
        except aiohttp.ClientConnectionError:
            pass
        if loop.time() > deadline:
            raise AssertionError(f"chromium did not open its DevTools port {port} in {START_TIMEOUT_S} s")
        await asyncio.sleep(0.05)  # the browser's start-up, not the code under test

"""Serve a directory over HTTP on 127.0.0.1 with aiohttp.web (the fallback when nginx is absent).

Prints the port on stdout once listening, then serves until killed or until --max-requests.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from aiohttp import web


async def serve(root: Path, port: int, max_requests: int) -> None:
    done = asyncio.Event()
    count = 0

    @web.middleware
    async def count_requests(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        nonlocal count
        count += 1
        if count >= max_requests:
            done.set()
        return await handler(request)

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(root / "index.html")

    app = web.Application(middlewares=[count_requests])
    app.router.add_get("/", index)
    app.router.add_static("/", root)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    sys.stdout.write(f"{server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    await done.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    args = parser.parse_args()
    asyncio.run(serve(args.root, args.port, args.max_requests))


if __name__ == "__main__":
    main()

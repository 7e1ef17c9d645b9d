"""Child process: the ceiling, a bare aiohttp loop that fetches the site's known URL list and writes bodies.

    python -m benchmarks.bare_loop --base http://127.0.0.1:PORT --pages N --out DIR --result FILE \
        --concurrency 32 [--extract bs4|lxml]

One ClientSession with the connector limits crawlpool uses (`limit` and `limit_per_host` = concurrency),
`concurrency` tasks taking URLs from the list, each body written to its own file with aiofiles. With
`--extract`, each body also goes through crawlpool's link extractor inline, as a crawler must; the links
are thrown away (the URL list is known in advance), so no frontier, scope or dedup cost is in the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiofiles
import aiohttp

from benchmarks.childresult import ChildResult, child_parser
from benchmarks.sitegen import page_urls
from crawlpool import links

Extractor = links.LinkExtractor


def extractor(name: str | None) -> Extractor | None:
    if name is None:
        return None
    found: Extractor = getattr(links, "extract_links" if name == "bs4" else f"extract_links_{name}")
    return found


async def fetch_all(
    urls: list[str], out: Path, concurrency: int, extract: Extractor | None
) -> tuple[list[str], int]:
    """Fetch every URL with `concurrency` workers; return (URLs stored, errors)."""
    stored: list[str] = []
    errors = 0
    todo: Iterator[tuple[int, str]] = enumerate(urls)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal errors
            for i, url in todo:  # one shared iterator: each URL goes to exactly one worker
                try:
                    async with session.get(url) as resp:
                        body = await resp.read()
                        status, ctype = resp.status, resp.headers.get("Content-Type")
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                    continue
                if status != 200:
                    errors += 1
                    continue
                async with aiofiles.open(out / f"{i}.html", "wb") as fh:
                    await fh.write(body)
                if extract is not None:
                    extract(body, url, ctype)
                stored.append(url)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return stored, errors


def main() -> None:
    parser = child_parser(__doc__)
    parser.add_argument("--extract", help="crawlpool extractor run on each body: bs4, lxml")
    args = parser.parse_args()
    urls = page_urls(args.base, args.pages)
    args.out.mkdir(parents=True, exist_ok=True)
    extract = extractor(args.extract)
    started = time.perf_counter()
    stored, errors = asyncio.run(fetch_all(urls, args.out, args.concurrency, extract))
    wall_s = time.perf_counter() - started
    ChildResult.check(stored, args.base, args.pages, errors=errors, wall_s=wall_s, requests=len(urls)).write(
        args.result
    )


if __name__ == "__main__":
    main()

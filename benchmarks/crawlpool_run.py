"""Child process: crawl the served site with crawlpool's Python API and report a ChildResult.

    python -m benchmarks.crawlpool_run --base http://127.0.0.1:PORT --pages N --out DIR --result FILE \
        --concurrency 32 --options '{"frontier": "memory"}'

The harness (`benchmarks.variants`) passes only options the installed `CrawlConfig` accepts.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import crawlpool
from benchmarks.childresult import ChildResult, child_parser


async def run(
    base: str, out: Path, concurrency: int, options: dict[str, Any]
) -> tuple[crawlpool.CrawlResult, float]:
    started = time.perf_counter()
    result = await crawlpool.crawl(
        [base + "/"], output=out, concurrency=concurrency, per_host=concurrency, **options
    )
    return result, time.perf_counter() - started


def main() -> None:
    parser = child_parser(__doc__)
    parser.add_argument("--options", default="{}", help="more crawl() keyword options, as JSON")
    args = parser.parse_args()
    result, wall_s = asyncio.run(run(args.base, args.out, args.concurrency, json.loads(args.options)))
    stored = [p.url for p in result.pages if p.status == 200 and p.path is not None]
    ChildResult.check(
        stored,
        args.base,
        args.pages,
        errors=result.stats.errors,
        wall_s=wall_s,
        requests=result.stats.requests,
    ).write(args.result)


if __name__ == "__main__":
    main()

"""Child process: crawl the served site with `wget -r` (GNU wget: C, one request at a time) and report
a ChildResult, as the crawlpool and Scrapy children do.

    python -m benchmarks.wget_run --base http://127.0.0.1:PORT --pages N --out DIR --result FILE

wget has no concurrency setting (the harness's --concurrency is ignored) and keeps robots.txt off here as
every variant does. Its CPU is counted by the harness as this child's descendant.
"""

from __future__ import annotations

import subprocess
import time
from urllib.parse import urlsplit

from benchmarks.childresult import ChildResult, child_parser


def main() -> None:
    args = child_parser(__doc__).parse_args()
    command = ["wget", "-r", "-l", "inf", "-np", "-nv", "--no-proxy", "-e", "robots=off", "-P", str(args.out)]
    started = time.perf_counter()
    run = subprocess.run([*command, args.base + "/"], capture_output=True, text=True, check=False)
    wall_s = time.perf_counter() - started
    root = args.out / urlsplit(args.base).netloc
    stored = []
    for path in root.rglob("*"):
        if path.is_file():
            relative = path.relative_to(root).as_posix()
            stored.append(args.base + "/" if relative == "index.html" else f"{args.base}/{relative}")
    errors = sum("ERROR" in line for line in run.stderr.splitlines())
    ChildResult.check(
        stored, args.base, args.pages, errors=errors, wall_s=wall_s, requests=len(stored)
    ).write(args.result)


if __name__ == "__main__":
    main()

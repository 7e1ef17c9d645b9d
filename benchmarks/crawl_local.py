"""Crawl a generated local site with the crawlpool CLI and check every page is stored exactly once.

    python -m benchmarks.crawl_local --pages 1000

Generates the site (benchmarks/sitegen.py) in a temp directory, serves it on 127.0.0.1 from a separate
process (benchmarks/serve.py), runs `crawlpool crawl` in a subprocess, then checks the manifest: one
record per page, each stored file present with its sha256. Prints pages/s of the crawl process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.sitegen import generate, page_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--per-host", type=int, default=32)
    parser.add_argument("extra", nargs="*", help="more crawlpool crawl flags (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, output = Path(tmp) / "site", Path(tmp) / "out"
        generate(root, args.pages)
        server = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.serve", str(root), "--max-requests", str(args.pages * 3)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            base = f"http://127.0.0.1:{port}"
            started = time.perf_counter()
            crawl = subprocess.run(
                [sys.executable, "-m", "crawlpool", "crawl", base + "/", "-o", str(output),
                 "--concurrency", str(args.concurrency), "--per-host", str(args.per_host), "-q", *args.extra],
                env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
                check=False,
                timeout=600,
            )  # fmt: skip
            elapsed = time.perf_counter() - started
        finally:
            server.kill()
            server.wait()
        records = [json.loads(line) for line in (output / "manifest.jsonl").open()]
        urls = [r["url"] for r in records]
        expected = {base + "/"} | {f"{base}/{page_name(i)}" for i in range(1, args.pages)}
        assert crawl.returncode == 0, crawl.returncode
        assert len(urls) == len(set(urls)), "a URL has two manifest records"
        assert set(urls) == expected, f"missing: {sorted(expected - set(urls))[:5]}"
        for record in records:
            body = (output / record["path"]).read_bytes()
            assert hashlib.sha256(body).hexdigest() == record["sha256"]
        print(
            f"{len(records)} pages stored exactly once in {elapsed:.2f} s "
            f"= {len(records) / elapsed:.0f} pages/s (crawl process wall time, incl. start-up)"
        )


if __name__ == "__main__":
    main()

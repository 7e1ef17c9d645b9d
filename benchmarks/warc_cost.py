"""What `--warc` costs: the default crawl (sqlite frontier, bs4) of the benchmark site with and without it.

    python -m benchmarks.warc_cost                # 20,000 pages, one round of each (a few minutes)
    python -m benchmarks.warc_cost --small        # 2,000 pages
    python -m benchmarks.warc_cost --repeat 3     # three interleaved rounds; each side's median by pages/s

Serves the same generated site as `benchmarks.run` (nginx when installed), runs both crawls in fresh
processes, interleaved (without, with, without, with ...), and prints pages/s, CPU ms per page and peak RSS
of each, the ratio (target: `--warc` keeps at least 0.85 of the pages/s), the WARC bytes written, and the
last line of `warcio check` over the files of the last `--warc` run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import sitegen
from benchmarks.measure import Measurement, become_subreaper, measure
from benchmarks.server import REPO_ROOT, serve_site

TARGET_RATIO = 0.85
COMMON = {"robots": False, "retries": 0, "frontier": "sqlite"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.warc_cost", description=__doc__)
    parser.add_argument("--small", action="store_true", help="2,000 pages instead of 20,000")
    parser.add_argument("--pages", type=int, help="site size (overrides --small)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (default 1)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-nginx", action="store_true", help="serve with aiohttp even if nginx is there")
    parser.add_argument("--work-dir", type=Path, help="where crawl outputs go while measured (a temp dir)")
    return parser.parse_args(argv)


def run_once(base: str, pages: int, concurrency: int, out: Path, warc: bool) -> Measurement:
    result = out.with_suffix(".json")
    options = {**COMMON, "warc": warc}
    command = [
        sys.executable, "-m", "benchmarks.crawlpool_run", "--base", base, "--pages", str(pages),
        "--out", str(out), "--result", str(result), "--concurrency", str(concurrency),
        "--options", json.dumps(options),
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    os.sync()  # the previous run's writeback must not land in this one's time
    return measure(command, result, timeout_s=60 + pages * 0.1, cwd=REPO_ROOT, env=env)


def describe(label: str, m: Measurement) -> str:
    r = m.result
    if r is None:
        return f"{label:<14} FAILED exit {m.returncode}: {m.stderr_tail[-300:]}"
    return (
        f"{label:<14} {r.pages:>6}/{r.expected} pages  {r.wall_s:6.1f} s  {r.pages / r.wall_s:6.0f} pages/s  "
        f"{m.cpu_s * 1000 / max(r.pages, 1):5.2f} CPU ms/page  {m.peak_rss_mb:4.0f} MB"
    )


def pages_per_s(m: Measurement) -> float:
    return 0.0 if m.result is None else m.result.pages / m.result.wall_s


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    pages = args.pages or (2_000 if args.small else 20_000)
    become_subreaper()
    site, _ = sitegen.cached_site(pages, None)
    runs: dict[bool, list[Measurement]] = {False: [], True: []}
    check_line = "not run"
    warc_bytes = 0
    with (
        serve_site(site, (pages + 100) * 2 * 2 * args.repeat + 100, prefer_nginx=not args.no_nginx) as server,
        tempfile.TemporaryDirectory(prefix="crawlpool-warc-bench-", dir=args.work_dir) as work,
    ):
        print(f"site: {pages:,} pages, server: {server.name}", file=sys.stderr)
        for round_no in range(args.repeat):
            for warc in (False, True):
                out = Path(work) / f"{'warc' if warc else 'plain'}-{round_no}"
                m = run_once(server.base, pages, args.concurrency, out, warc)
                runs[warc].append(m)
                print(describe("--warc" if warc else "without", m), file=sys.stderr)
                if warc and round_no == args.repeat - 1:
                    files = sorted((out / "warc").glob("*.warc.gz"))
                    warc_bytes = sum(f.stat().st_size for f in files)
                    check = subprocess.run(
                        [sys.executable, "-m", "warcio.cli", "check", *map(str, files)],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    check_line = f"exit {check.returncode}" + (
                        f": {check.stdout.strip()}" if check.stdout else ""
                    )
                shutil.rmtree(out, ignore_errors=True)
    plain = statistics.median_low(pages_per_s(m) for m in runs[False])
    archived = statistics.median_low(pages_per_s(m) for m in runs[True])
    ratio = archived / plain if plain else 0.0
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"pages/s without --warc: {plain:.0f}")
    print(f"pages/s with --warc:    {archived:.0f}")
    print(f"ratio: {ratio:.3f} (cost {100 * (1 - ratio):.1f}%; target cost < 15%: {verdict})")
    print(f"WARC bytes written (last run): {warc_bytes:,}")
    print(f"warcio check over them: {check_line}")


if __name__ == "__main__":
    main()

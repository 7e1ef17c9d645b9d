"""The crawlpool benchmark: crawlpool against a bare aiohttp loop (the ceiling) and Scrapy, on a local site.

    python -m benchmarks.run            # 20,000 pages
    python -m benchmarks.run --small    # 2,000 pages, the variants the targets need: under a minute

Generates (or reuses) a deterministic site, serves it on 127.0.0.1 (nginx if installed, else aiohttp),
then runs every variant in a fresh process, interleaved (A B C ... A B C ... for --repeat rounds), and
prints the table and the issue's targets; benchmarks/results/latest.md and latest.json keep them.
See benchmarks/README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import crawlpool
from benchmarks import sitegen
from benchmarks.measure import Measurement, become_subreaper, measure, tmpfs_scratch
from benchmarks.report import TARGET_KEYS, build_report, markdown, write
from benchmarks.server import REPO_ROOT, serve_site
from benchmarks.variants import DEFAULT_SCRAPY_PYTHON, Variant, all_variants

FULL_PAGES = 20_000
SMALL_PAGES = 2_000
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--small", action="store_true", help=f"{SMALL_PAGES:,} pages instead of {FULL_PAGES:,}"
    )
    parser.add_argument("--pages", type=int, help="site size (overrides --small)")
    parser.add_argument(
        "--all", action="store_true", help="with --small: every variant, not only the targets'"
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all variants (default 1)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight, per host too (32)")
    parser.add_argument(
        "--only", action="append", default=[], help="run only variants whose key contains this"
    )
    parser.add_argument(
        "--no-nginx", action="store_true", help="serve with aiohttp even if nginx is installed"
    )
    parser.add_argument(
        "--scrapy-python", type=Path, default=DEFAULT_SCRAPY_PYTHON, help="a Python with Scrapy"
    )
    parser.add_argument("--timeout", type=float, help="seconds before a variant is killed (default by size)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="where crawl outputs go while measured (default: a temp dir in /dev/shm if it has room)",
    )
    parser.add_argument("--cache-dir", type=Path, help="where generated sites are kept")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    pages = args.pages or (SMALL_PAGES if args.small else FULL_PAGES)
    timeout_s = args.timeout or 60 + pages * 0.06
    started = time.perf_counter()
    if not become_subreaper():
        log("warning: cannot adopt orphaned processes: CPU of helpers outliving a variant is not counted")
    site, reused = sitegen.cached_site(pages, args.cache_dir)
    log(f"site: {pages:,} pages in {site} ({'reused' if reused else 'generated'})")
    variants = select(all_variants(args.scrapy_python), args.only, args.small and not args.all)
    runnable = [v for v in variants if v.unavailable is None]
    for v in variants:
        if v.unavailable is not None:
            log(f"skip {v.key}: {v.unavailable}")
    max_requests = (pages + 100) * 2 * len(runnable) * args.repeat + 100
    runs: dict[str, list[Measurement]] = {v.key: [] for v in runnable}
    with (
        serve_site(site, max_requests, prefer_nginx=not args.no_nginx) as server,
        tempfile.TemporaryDirectory(prefix="crawlpool-bench-", dir=work_dir(args)) as work,
    ):
        log(f"server: {server.name} at {server.base} (pid {server.pid})")
        for round_no in range(args.repeat):
            for variant in runnable:
                m = run_variant(
                    variant, server.base, pages, args.concurrency, Path(work), round_no, timeout_s
                )
                runs[variant.key].append(m)
                log(progress(variant, m, round_no, args.repeat))
        server_name = server.name
    meta = metadata(pages, server_name, args, time.perf_counter() - started)
    report = build_report(meta, variants, runs)
    print(markdown(report))
    md, js = write(report, args.results_dir)
    log(f"wrote {md} and {js} in {time.perf_counter() - started:.0f} s")


def select(variants: list[Variant], only: list[str], targets_only: bool) -> list[Variant]:
    """The variants to run: those matching --only, and with --small only those the targets need. Scrapy
    when left out stays in the table, with the issue's published figure."""
    chosen = []
    for v in variants:
        if (not only or any(s in v.key for s in only)) and (not targets_only or v.key in TARGET_KEYS):
            chosen.append(v)
        elif v.kind == "scrapy":
            why = "not run with --small (use --all)" if targets_only else "not selected by --only"
            chosen.append(dataclasses.replace(v, unavailable=v.unavailable or why))
    return chosen


def run_variant(
    variant: Variant, base: str, pages: int, concurrency: int, work: Path, round_no: int, timeout_s: float
) -> Measurement:
    slug = f"{variant.key.replace('/', '-')}-{round_no}"
    out, result = work / slug, work / f"{slug}.json"
    command = [
        variant.python, "-m", variant.module, "--base", base, "--pages", str(pages), "--out", str(out),
        "--result", str(result), "--concurrency", str(concurrency), *variant.args,
    ]  # fmt: skip
    # The benchmarks package from here; crawlpool as the parent imports it (a PYTHONPATH given stays).
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    os.sync()  # the previous variant's writeback must not land in this one's time
    try:
        return measure(command, result, timeout_s=timeout_s, cwd=REPO_ROOT, env=env)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def progress(variant: Variant, m: Measurement, round_no: int, rounds: int) -> str:
    head = f"[{round_no + 1}/{rounds}] {variant.key:<32}"
    r = m.result
    if r is None:
        return (
            f"{head} FAILED exit {m.returncode}{' (timeout)' if m.timed_out else ''}: {m.stderr_tail[-300:]}"
        )
    return (
        f"{head} {r.pages:>6}/{r.expected} pages  {r.wall_s:6.1f} s  {r.pages / r.wall_s:6.0f} pages/s  "
        f"{m.cpu_s * 1000 / max(r.pages, 1):5.2f} CPU ms/page  {m.peak_rss_mb:4.0f} MB"
    )


def work_dir(args: argparse.Namespace) -> Path | None:
    """Outputs go to tmpfs unless told otherwise, as in the issue's measurements: a disk's writeback
    lands in whichever variant runs next and moved its CPU per page by 50% between runs here. One
    variant's output is there at a time (~30 KB a page), with room to spare."""
    if args.work_dir is not None:
        return Path(args.work_dir)
    pages = args.pages or (SMALL_PAGES if args.small else FULL_PAGES)
    return tmpfs_scratch(2 * pages * sitegen.PAGE_BYTES)


def metadata(pages: int, server: str, args: argparse.Namespace, elapsed_s: float) -> dict[str, Any]:
    where = work_dir(args)
    return {
        "outputs": str(where) if where is not None else tempfile.gettempdir(),
        "pages": pages,
        "page_kb": sitegen.PAGE_BYTES // 1000,
        "links": sitegen.LINKS,
        "server": server,
        "concurrency": args.concurrency,
        "rounds": args.repeat,
        "crawlpool": crawlpool.__version__,
        "commit": git_commit(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": round(elapsed_s, 1),
    }


def git_commit() -> str:
    """HEAD's short hash, marked when src/ has uncommitted changes (read-only git commands); or where
    crawlpool was imported from, when that is not this checkout (PYTHONPATH=.../src)."""
    package = Path(crawlpool.__file__).resolve().parent
    if not package.is_relative_to(REPO_ROOT):
        return f"{package} (not this checkout)"

    def git(*cmd: str) -> str:
        done = subprocess.run(
            ["git", *cmd], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False
        )
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" + uncommitted changes in src/" if git("status", "--porcelain", "--", "src") else "")


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

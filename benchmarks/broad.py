"""The broad-crawl benchmark: many hosts, each answering late, a few requests per host at a time.

    python -m benchmarks.broad                           # 200 hosts x 20 pages, C=64 and 256: ~2 min
    python -m benchmarks.broad --pages 50                # the issue's 200 x 50 (~4 min)
    python -m benchmarks.broad --pages 50 --realistic    # ~30 KB pages of ~50 links, as the issue's table

Serves `--hosts` distinct hosts on loopback addresses 127.0.1.1, 127.0.1.2, ... (each its own IP, so its
own host for politeness), every answer `--latency` seconds late, from one CPU-cheap asyncio server
process (`broad_site.py`). For each concurrency C, one after the other, each crawler crawls every host
from its root (all roots are seeds, so crawlpool's address guard lets the loopback addresses through),
robots.txt off, at most `--per-host` requests to a host at once:

- crawlpool (`python -m crawlpool crawl`, its default frontier unless `--frontier`), per parser, with
  `--processes 1` and `--processes 2` when the installed CrawlConfig has a `processes` field (without
  it, the one process it has and "n/a" for 2);
- Scrapy (`scrapy_broad.py`) with its documented broad-crawl settings, run with the Python of a separate
  virtualenv (`--scrapy-python`, default /tmp/scrapy-venv/bin/python), skipped when that is missing.

Each crawler runs in a fresh child process measured by `measure.py` (CPU of the child and all its
descendants, peak RSS of its process tree), against a fresh server, and the table says:

- pages stored and whether they are exactly the site's pages (manifest for crawlpool, bodies written for
  Scrapy; fragments stripped);
- pages/s over the crawl's own elapsed time, and its share of the bound `min(C, hosts x per_host) /
  latency` pages/s;
- CPU ms per page and peak RSS of the crawler's process tree;
- the most requests the server ever saw in flight to one host, and how many hosts went over --per-host.

Everything binds to 127.0.x.x; nothing leaves the machine. Ratios from one run are what to compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.broad_site import Coverage, Site, root_url, serve
from benchmarks.measure import Measurement, become_subreaper, measure, tmpfs_scratch
from benchmarks.variants import DEFAULT_SCRAPY_PYTHON, NOT_BUILT, refused

REPO_ROOT = Path(__file__).resolve().parents[1]
PROCESSES = (1, 2)


@dataclass(frozen=True, slots=True)
class Row:
    crawler: str  # crawlpool | Scrapy
    parser: str
    processes: str  # "1", "2"; "" for Scrapy
    args: tuple[str, ...] = ()  # crawlpool's extra CLI options
    unavailable: str | None = None  # why it cannot run here, shown in its row


@dataclass(frozen=True, slots=True)
class Outcome:
    coverage: Coverage | None  # None: the crawler wrote nothing to check
    wall_s: float  # the crawl's own elapsed time
    measurement: Measurement
    peaks: list[int]  # the most requests each host had in flight at once, as the server saw it
    server_cpu_s: float


def crawlpool_rows(parsers: list[str], frontier: str | None, config: type[Any] | None = None) -> list[Row]:
    """A row per parser and process count; `--processes N` only where the config has and accepts it."""
    if config is None:
        from crawlpool import CrawlConfig

        config = CrawlConfig
    fields = {f.name for f in dataclasses.fields(config)}
    base = {"robots": False} | ({"frontier": frontier} if frontier else {})
    rows = []
    for parser in parsers:
        for n in PROCESSES:
            if "processes" not in fields:
                why = None if n == 1 else f"{NOT_BUILT}: CrawlConfig has no `processes`"
                rows.append(Row("crawlpool", parser, str(n), unavailable=why))
                continue
            why = refused({**base, "parser": parser, "processes": n}, config)
            rows.append(Row("crawlpool", parser, str(n), ("--processes", str(n)), why))
    return rows


def scrapy_row(python: Path) -> Row:
    why = None if python.exists() else f"not installed ({python} missing)"
    return Row("Scrapy", "Scrapy's own", "", unavailable=why)


def bound(concurrency: int, hosts: int, per_host: int, latency: float) -> float:
    """The most pages/s a crawler can get: every allowed request slot busy for one latency per page."""
    return min(concurrency, hosts * per_host) / latency


def manifest_urls(output: Path) -> list[str]:
    """The URLs crawlpool stored a 200 body for, once per manifest record."""
    urls = []
    with (output / "manifest.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record.get("status") == 200 and record.get("path") is not None:
                urls.append(record["url"])
    return urls


def run_row(row: Row, site: Site, concurrency: int, args: argparse.Namespace, work: Path) -> Outcome:
    seeds = work / "seeds.txt"
    seeds.write_text("".join(root_url(h) + "\n" for h in range(site.hosts)))
    output, result = work / "out", work / "result.json"
    shutil.rmtree(output, ignore_errors=True)
    result.unlink(missing_ok=True)
    env = dict(os.environ)
    if row.crawler == "Scrapy":
        command = [
            str(args.scrapy_python), "-m", "benchmarks.scrapy_broad", "--seeds", str(seeds),
            "--out", str(output), "--result", str(result), "--concurrency", str(concurrency),
            "--per-host", str(args.per_host),
        ]  # fmt: skip
        env["PYTHONPATH"] = str(REPO_ROOT)
    else:
        command = [
            sys.executable, "-m", "crawlpool", "crawl", str(seeds), "-o", str(output), "-q",
            "--no-robots", "--per-host", str(args.per_host), "--concurrency", str(concurrency),
            "--parser", row.parser, "--stats-json", str(result),
            *(("--frontier", args.frontier) if args.frontier else ()), *row.args,
        ]  # fmt: skip
    ready, ready_server = multiprocessing.Pipe()
    stop, stop_server = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(site, args.latency, ready_server, stop_server))
    server.start()
    try:
        assert ready.recv() == "ready"
        timeout_s = 60 + site.hosts * site.pages * 0.05
        measurement = measure(command, None, timeout_s=timeout_s, cwd=REPO_ROOT, env=env)
    finally:
        stop.send("stop")
        peaks, server_cpu_s = ready.recv()
        server.join()
    coverage, wall_s = None, measurement.process_wall_s
    try:
        numbers = json.loads(result.read_text(encoding="utf-8"))
        stored = numbers["stored"] if row.crawler == "Scrapy" else manifest_urls(output)
        coverage = Coverage.of(stored, site.expected_urls())
        wall_s = float(numbers["wall_s" if row.crawler == "Scrapy" else "elapsed_s"])
    except (OSError, ValueError, KeyError):
        pass  # it crashed or was killed: the row says FAILED
    shutil.rmtree(output, ignore_errors=True)
    return Outcome(coverage, wall_s, measurement, peaks, server_cpu_s)


def table_line(row: Row, concurrency: int, outcome: Outcome | None, best: float, per_host: int) -> str:
    head = f"| {row.crawler} | {row.parser} | {row.processes or '-'} | {concurrency} |"
    if outcome is None:
        return f"{head} {row.unavailable} | | | | | |"
    m, coverage = outcome.measurement, outcome.coverage
    if coverage is None or m.returncode != 0:
        why = "timed out" if m.timed_out else f"exit {m.returncode}"
        return f"{head} FAILED ({why}) | | | | | |"
    rate = coverage.pages / outcome.wall_s
    over = sum(n > per_host for n in outcome.peaks)
    most = f"{max(outcome.peaks, default=0)}" + (f" ({over} hosts > {per_host})" if over else "")
    return (
        f"{head} {coverage.pages:,} {coverage.status} | {rate:,.0f} | {rate / best:.0%} | "
        f"{m.cpu_s * 1000 / max(coverage.pages, 1):.2f} | {m.peak_rss_mb:.0f} | {most} |"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.broad",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--hosts", type=int, default=200, help="distinct hosts (default 200)")
    parser.add_argument(
        "--pages", type=int, default=20, help="pages per host (default 20, to keep the run near 2 min)"
    )
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each answer (0.2)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--per-host", type=int, default=2, help="requests in flight per host (2)")
    parser.add_argument(
        "--realistic", action="store_true", help="~30 KB pages of ~50 links instead of small ones"
    )
    parser.add_argument("--parsers", nargs="+", default=["bs4", "lxml"], choices=["bs4", "lxml"])
    parser.add_argument("--frontier", help="crawlpool's --frontier (default: crawlpool's own default)")
    parser.add_argument("--no-crawlpool", action="store_true", help="run Scrapy only")
    parser.add_argument("--no-scrapy", action="store_true", help="run crawlpool only")
    parser.add_argument(
        "--scrapy-python", type=Path, default=DEFAULT_SCRAPY_PYTHON, help="a Python with Scrapy"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="where crawl outputs go while measured (default: a temp dir in /dev/shm if it has room)",
    )
    args = parser.parse_args(argv)
    if min(args.hosts, args.pages, args.per_host, *args.concurrency) < 1 or args.latency <= 0:
        parser.error("--hosts, --pages, --per-host and --concurrency must be at least 1, --latency above 0")
    if args.hosts > 254 * 255:
        parser.error("--hosts: at most 64,770 loopback addresses are used")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not become_subreaper():
        log("warning: cannot adopt orphaned processes: CPU of helpers outliving a crawler is not counted")
    site = Site(args.hosts, args.pages, args.realistic)
    rows = [] if args.no_crawlpool else crawlpool_rows(args.parsers, args.frontier)
    if not args.no_scrapy:
        rows.append(scrapy_row(args.scrapy_python))
    mix = "~30 KB pages, ~50 links" if args.realistic else "small pages, 4 links"
    print(
        f"{args.hosts} hosts x {args.pages} pages ({mix}), every answer {args.latency:g} s late, "
        f"--per-host {args.per_host}; crawlpool {args.frontier or 'default'} frontier"
    )
    print(
        "| crawler | parser | processes | C | pages | pages/s | share of bound | CPU ms/page "
        "| peak RSS MB | most in flight to one host |"
    )
    print("|---|---|--:|--:|---|--:|--:|--:|--:|--:|", flush=True)
    scratch = tmpfs_scratch(2 * site.hosts * site.pages * (30_000 if args.realistic else 2_000))
    started = time.perf_counter()
    rates: dict[tuple[str, str, int], float] = {}  # (parser, processes, C) -> crawlpool's pages/s
    with tempfile.TemporaryDirectory(prefix="broad-", dir=args.work_dir or scratch) as tmp:
        for concurrency in args.concurrency:
            best = bound(concurrency, args.hosts, args.per_host, args.latency)
            for row in rows:
                outcome = None
                if row.unavailable is None:
                    outcome = run_row(row, site, concurrency, args, Path(tmp))
                    log(
                        f"{row.crawler} {row.parser} processes={row.processes or '-'} C={concurrency}: "
                        f"{outcome.wall_s:.1f} s, CPU {outcome.measurement.cpu_s:.1f} s, "
                        f"{outcome.measurement.processes} processes; server CPU "
                        f"{outcome.server_cpu_s / max(outcome.measurement.process_wall_s, 1e-9):.0%}"
                    )
                print(table_line(row, concurrency, outcome, best, args.per_host), flush=True)
                if row.crawler == "crawlpool" and outcome is not None and outcome.coverage is not None:
                    rates[(row.parser, row.processes, concurrency)] = outcome.coverage.pages / outcome.wall_s
    scaling = scaling_lines(rates)
    if scaling:
        print("\n" + "\n".join(scaling))
    log(f"done in {time.perf_counter() - started:.0f} s")


def scaling_lines(rates: dict[tuple[str, str, int], float]) -> list[str]:
    """What two processes made against one, per parser and C (a crawl that waits on its sites gains
    little; issue 14 asks 1.7x of a CPU-bound one)."""
    return [
        f"- {parser}, C={c}: 2 processes / 1 = {two / rates[(parser, '1', c)]:.2f}x"
        for (parser, processes, c), two in rates.items()
        if processes == "2" and (parser, "1", c) in rates
    ]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

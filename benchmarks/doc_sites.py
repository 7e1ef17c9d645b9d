"""crawlpool against `wget -r` on two real documentation sites: Debian's Python 3.11 and PostgreSQL 15 docs.

    python -m benchmarks.doc_sites              # 2 sites x (wget, crawlpool, crawlpool --parser lxml)
    python -m benchmarks.doc_sites --repeat 3   # three interleaved rounds; each row shows its median run

The HTML comes from the Debian packages python3.11-doc and postgresql-doc-15; missing ones are installed
with apt-get (with nginx, and wget), which needs root. Each site is served from its directory on 127.0.0.1
by nginx (foreground, one process, an access log in a temp dir), or by `python -m http.server` without
nginx, and crawled from its index.html by:

    wget -r -l inf -np -nv --no-proxy -P TMP/wget URL            (robots.txt obeyed, wget's default)
    crawlpool crawl URL -o TMP/cp                                 (default settings)
    crawlpool crawl URL -o TMP/cp-lxml --parser lxml

each in a fresh process measured by benchmarks/measure.py. Checks the issue's two targets: (1) crawlpool
stores every HTML page wget stores; (2) crawlpool's wall time <= 1.3 x its CPU time + 0.5 s. Prints a
Markdown table and writes it to benchmarks/results/doc_sites.md. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.measure import Measurement, become_subreaper, measure
from benchmarks.run import git_commit, log
from benchmarks.server import REPO_ROOT, Server, free_port, start_nginx, stop, wait_until_ready

RESULTS = Path(__file__).resolve().parent / "results" / "doc_sites.md"
WALL_FACTOR, WALL_SLACK_S = 1.3, 0.5  # target 2: wall <= 1.3 x CPU + 0.5 s
MISSING_SHOWN = 10
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
# A request line in nginx's log format here (`200 "GET /x HTTP/1.1"`) or http.server's
# (`127.0.0.1 - - [date] "GET /x HTTP/1.1" 200 -`); http.server's other stderr lines do not match.
REQUEST_LINE = re.compile(r'(?:^(\d{3}) "[A-Z]+ (\S+) HTTP/[\d.]+"|"[A-Z]+ (\S+) HTTP/[\d.]+" (\d{3}) )')


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    package: str
    root: Path  # the HTML directory the package installs


SITES = (
    Site("python3.11-doc", "python3.11-doc", Path("/usr/share/doc/python3.11/html")),
    Site("postgresql-doc-15", "postgresql-doc-15", Path("/usr/share/doc/postgresql-doc-15/html")),
)
CRAWLERS = ("wget", "crawlpool", "crawlpool --parser lxml")


@dataclass(frozen=True, slots=True)
class Served:
    site: Site
    server: Server
    access_log: Path

    @property
    def seed(self) -> str:
        return f"{self.server.base}/index.html"


@dataclass(slots=True)
class Run:
    site: str
    crawler: str
    measurement: Measurement
    html_urls: set[str]  # the HTML pages stored, as url_key()s
    requests: int  # request lines the server logged during the run
    statuses: Counter[str]
    repeated: int  # requests for a path already requested in this run
    notes: list[str] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        return self.measurement.process_wall_s

    @property
    def cpu_s(self) -> float:
        return self.measurement.cpu_s

    @property
    def wall_ok(self) -> bool:
        return self.wall_s <= WALL_FACTOR * self.cpu_s + WALL_SLACK_S


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.doc_sites",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds (default 1)")
    parser.add_argument("--no-nginx", action="store_true", help="serve with python -m http.server")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a run is killed (900)")
    parser.add_argument("--work-dir", type=Path, help="where crawl outputs go (a temp dir in it)")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"default {RESULTS}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if not ensure_installed(want_nginx=not args.no_nginx):
        return 1
    if not become_subreaper():
        log("warning: cannot adopt orphaned processes: CPU of helpers outliving a crawl is not counted")
    nginx = None if args.no_nginx else shutil.which("nginx")
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="doc-sites-", dir=args.work_dir)))
        served = [stack.enter_context(serve_docs(site, nginx, work)) for site in SITES]
        for s in served:
            log(f"{s.site.name}: {s.server.name} at {s.seed} (pid {s.server.pid}), root {s.site.root}")
        for round_no in range(args.repeat):
            for s in served:
                for crawler in CRAWLERS:
                    run = run_crawler(s, crawler, work / f"r{round_no}", args.timeout)
                    runs.append(run)
                    log(progress(run, round_no, args.repeat))
        server_name = served[0].server.name
    text = report(runs, server_name, args.repeat, time.perf_counter() - started)
    print(text)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text, encoding="utf-8")
    log(f"wrote {args.results}")
    return 0


def ensure_installed(want_nginx: bool) -> bool:
    """Install with apt-get what is missing: the doc packages and wget (needed), nginx (wanted; without it
    the sites are served by http.server). False, after one line saying why, when a needed one cannot be."""
    needed = [s.package for s in SITES if not (s.root / "index.html").is_file()]
    if shutil.which("wget") is None:
        needed.append("wget")
    wanted = ["nginx"] if want_nginx and shutil.which("nginx") is None else []
    packages = needed + wanted
    if not packages:
        return True
    if os.geteuid() != 0:
        if needed:
            log(f"error: {' '.join(needed)} not installed and not root: run as root or apt-get install them")
            return False
        log("nginx not installed and not root: serving with python -m http.server")
        return True
    log(f"installing with apt-get: {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        log(f"error: apt-get install {' '.join(packages)} failed ({done.returncode}): {last[0]}")
        return False
    missing = [s.package for s in SITES if not (s.root / "index.html").is_file()]
    if missing:
        log(f"error: installed {' '.join(missing)} but its HTML is not there (dpkg path-exclude?)")
        return False
    return True


@contextlib.contextmanager
def serve_docs(site: Site, nginx: str | None, work: Path) -> Iterator[Served]:
    """Serve `site.root` on 127.0.0.1 until the block ends, every request logged to a file."""
    tmp = work / f"server-{site.name}"
    tmp.mkdir()
    access_log = tmp / "access.log"
    proc: subprocess.Popen[str]
    if nginx is not None:
        proc, port, name = start_nginx(nginx, site.root, tmp, access_log=access_log, system_types=True)
    else:
        port = free_port()
        with access_log.open("w") as stderr:  # http.server logs each request on stderr
            proc = subprocess.Popen(
                [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                cwd=site.root.resolve(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                text=True,
            )
        name = f"python -m http.server (Python {platform.python_version()})"
    try:
        server = Server(f"http://127.0.0.1:{port}", name, proc.pid)
        wait_until_ready(server, proc)
        yield Served(site, server, access_log)
    finally:
        stop(proc)


def child_env() -> dict[str, str]:
    """This environment without proxies (everything here is on loopback), benchmarks and crawlpool as the
    parent imports them (a PYTHONPATH given stays first)."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO_ROOT)]))
    return env


def run_crawler(served: Served, crawler: str, work: Path, timeout_s: float) -> Run:
    slug = {"wget": "wget", "crawlpool": "cp", "crawlpool --parser lxml": "cp-lxml"}[crawler]
    out = work / served.site.name / slug
    out.parent.mkdir(parents=True, exist_ok=True)
    if crawler == "wget":
        command = ["wget", "-r", "-l", "inf", "-np", "-nv", "--no-proxy", "-P", str(out), served.seed]
    else:
        stats = out.parent / f"{slug}-stats.json"
        extra = ["--parser", "lxml"] if crawler.endswith("lxml") else []
        command = [
            sys.executable, "-m", "crawlpool", "crawl", served.seed, "-o", str(out), *extra,
            "--stats-json", str(stats),
        ]  # fmt: skip
    log(f"$ {' '.join(command)}")
    log_start = served.access_log.stat().st_size
    os.sync()  # the previous run's writeback must not land in this one's time
    m = measure(command, out.parent / "no-result", timeout_s=timeout_s, cwd=REPO_ROOT, env=child_env())
    requests, statuses, repeated = read_access_log(served.access_log, log_start)
    notes = []
    if m.returncode != 0:
        notes.append(f"exit {m.returncode}{' (timeout)' if m.timed_out else ''}")
    if crawler == "wget":
        html = wget_html(out)
    else:
        html, dupes = crawlpool_html(out)
        if dupes:
            notes.append(f"{dupes} URLs with more than one manifest record")
        with contextlib.suppress(OSError, ValueError):
            s = json.loads(stats.read_text(encoding="utf-8"))
            notes.append(
                f"crawlpool's own elapsed {s.get('elapsed_s', float('nan')):.1f} s, "
                f"{s.get('requests')} requests, {s.get('retries')} retries, errors {s.get('by_error')}"
            )
        tail = [line for line in m.stderr_tail.splitlines() if line.strip()][-6:]
        notes.extend(f"stderr: {line}" for line in tail)
    shutil.rmtree(out, ignore_errors=True)
    return Run(served.site.name, crawler, m, html, requests, statuses, repeated, notes)


def read_access_log(path: Path, offset: int) -> tuple[int, Counter[str], int]:
    """Requests logged after `offset`: how many, by status, and how many repeated an earlier path."""
    with path.open("rb") as fh:
        fh.seek(offset)
        lines = fh.read().decode("utf-8", "replace").splitlines()
    statuses: Counter[str] = Counter()
    paths: Counter[str] = Counter()
    for line in lines:
        if match := REQUEST_LINE.search(line):
            statuses[match[1] or match[4]] += 1
            paths[match[2] or match[3]] += 1
    return sum(statuses.values()), statuses, sum(paths.values()) - len(paths)


def url_key(url: str) -> str:
    """What two spellings of one URL on the site share: the percent-decoded path, and the query."""
    parts = urllib.parse.urlsplit(url)
    path = urllib.parse.unquote(parts.path) or "/"
    return path + (f"?{parts.query}" if parts.query else "")


def wget_html(out: Path) -> set[str]:
    """The HTML files wget stored (named .html or .htm), as url_key()s: wget writes URL /a/b.html of
    127.0.0.1:PORT to OUT/127.0.0.1:PORT/a/b.html, so the path under the host directory is the URL's path
    (percent-decoded; a query stays in the file name after '?')."""
    hosts = [d for d in out.iterdir() if d.is_dir()] if out.is_dir() else []
    keys = set()
    for host in hosts:
        for file in host.rglob("*"):
            if file.is_file() and file.suffix.lower() in (".html", ".htm"):
                keys.add("/" + file.relative_to(host).as_posix())
    return keys


def crawlpool_html(out: Path) -> tuple[set[str], int]:
    """The HTML pages crawlpool stored: manifest records with a text/html content type and a stored body
    (non-null path), as url_key()s; and how many URLs had more than one record (there should be none)."""
    keys: set[str] = set()
    urls: Counter[str] = Counter()
    manifest = out / "manifest.jsonl"
    if not manifest.is_file():
        return keys, 0
    with manifest.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            urls[record["url"]] += 1
            ctype = (record.get("content_type") or "").split(";")[0].strip().lower()
            if ctype == "text/html" and record.get("path"):
                keys.add(url_key(record["url"]))
    return keys, sum(1 for n in urls.values() if n > 1)


def progress(run: Run, round_no: int, rounds: int) -> str:
    head = f"[{round_no + 1}/{rounds}] {run.site:<18} {run.crawler:<24}"
    lines = [
        f"{head} {run.wall_s:7.1f} s wall  {run.cpu_s:6.1f} s CPU  {len(run.html_urls):5} HTML pages  "
        f"{run.requests:5} requests (by status {dict(sorted(run.statuses.items()))}, "
        f"{run.repeated} repeats of a path)  {run.measurement.processes} processes at most"
    ]
    lines.extend(f"    {note}" for note in run.notes)
    return "\n".join(lines)


def median_run(runs: list[Run]) -> Run:
    """The run with the median wall time (the lower middle one for an even number)."""
    ordered = sorted(runs, key=lambda r: r.wall_s)
    return ordered[(len(ordered) - 1) // 2]


def report(runs: list[Run], server: str, rounds: int, elapsed_s: float) -> str:
    import crawlpool

    lines = [
        "# crawlpool vs wget -r on two documentation sites",
        "",
        f"crawlpool {crawlpool.__version__} ({git_commit()}), {wget_version()}, served by {server}; "
        f"{rounds} round(s), each row its median run by wall time; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, "
        f"{datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}, {elapsed_s:.0f} s in all.",
        "",
        "| site | crawler | wall s | CPU s | HTML pages | requests | wall ≤ 1.3×CPU+0.5? |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    chosen: dict[tuple[str, str], Run] = {}
    for site in SITES:
        for crawler in CRAWLERS:
            mine = [r for r in runs if r.site == site.name and r.crawler == crawler]
            r = chosen[site.name, crawler] = median_run(mine)
            bound = WALL_FACTOR * r.cpu_s + WALL_SLACK_S
            verdict = f"{'yes' if r.wall_ok else '**no**'} ({r.wall_s:.1f} vs {bound:.1f})"
            if crawler == "wget":
                verdict += ", not a target"
            # wget exits 8 when a server answered with an error (a broken link's 404): not a failure.
            ok_codes = (0, 8) if crawler == "wget" else (0,)
            code = r.measurement.returncode
            failed = "" if code in ok_codes else f" (exit {code})"
            lines.append(
                f"| {site.name} | {crawler}{failed} | {r.wall_s:.1f} | {r.cpu_s:.1f} | {len(r.html_urls)} "
                f"| {r.requests} | {verdict} |"
            )
    lines += ["", "## Targets", ""]
    for site in SITES:
        wget = chosen[site.name, "wget"]
        for crawler in CRAWLERS[1:]:
            mine = [r for r in runs if r.site == site.name and r.crawler == crawler]
            r = chosen[site.name, crawler]
            missing = sorted(wget.html_urls - r.html_urls)
            extra = len(r.html_urls - wget.html_urls)
            status = "met" if not missing else "**NOT met**"
            lines.append(
                f"- {site.name}, {crawler}: (1) stores every HTML page wget stores: {status} "
                f"({len(wget.html_urls) - len(missing)} of wget's {len(wget.html_urls)}; "
                f"{extra} HTML pages wget did not store)"
            )
            lines.extend(f"  - missing: `{m}`" for m in missing[:MISSING_SHOWN])
            if len(missing) > MISSING_SHOWN:
                lines.append(f"  - ... and {len(missing) - MISSING_SHOWN} more")
            ok = sum(run.wall_ok for run in mine)
            ratio = r.wall_s / r.cpu_s if r.cpu_s else float("inf")
            lines.append(
                f"- {site.name}, {crawler}: (2) wall ≤ 1.3 × CPU + 0.5 s: "
                f"{'met' if r.wall_ok else '**NOT met**'} (wall {r.wall_s:.1f} s, CPU {r.cpu_s:.1f} s, "
                f"wall/CPU {ratio:.2f}; {ok} of {len(mine)} runs met it; wall/CPU of wget "
                f"{wget.wall_s / wget.cpu_s if wget.cpu_s else float('inf'):.2f}; "
                f"crawlpool wall / wget wall {r.wall_s / wget.wall_s:.2f})"
            )
    lines += [
        "",
        "wall s: the whole child process, start-up included (`os.wait4` on the child). CPU s: user + sys of",
        "the child and all its descendants (crawlpool's parse workers): the growth of RUSAGE_CHILDREN over",
        "the run, this process being their subreaper (benchmarks/measure.py). HTML pages: wget, files under",
        "its directory named .html/.htm; crawlpool, manifest records with content_type text/html and a",
        "non-null path. requests: request lines in the server's access log during the run (robots.txt and",
        "404s included).",
        "",
    ]
    return "\n".join(lines)


def wget_version() -> str:
    out = subprocess.run(["wget", "--version"], capture_output=True, text=True, timeout=10, check=False)
    first = out.stdout.splitlines()[:1] or ["wget"]
    return " ".join(first[0].split()[:3])


if __name__ == "__main__":
    sys.exit(main())

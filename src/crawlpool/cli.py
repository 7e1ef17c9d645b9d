"""The command line: `crawlpool crawl SEEDS... [options]`.

The CLI is the only place that configures logging, installs signal handlers and calls `asyncio.run`.
Exit codes: 0 the crawl finished (failed pages are data, not fatal); 2 bad input, reported in one line
before any request; 1 a store failed mid-crawl (state, pages, manifest: one line, state kept for
--resume) or an unexpected fatal error; 3 nothing could be fetched: every URL tried failed because its
host could not be reached; 130 stopped by SIGINT or SIGTERM.

Everything it writes to stderr goes through `_Voice`, so that with `--log-format json` every line is a
JSON object: log records, progress lines, the summary and the one-line errors alike.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import signal
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from crawlpool._version import __version__
from crawlpool.api import Progress, prepare, run_crawl
from crawlpool.config import CrawlConfig, build_config, load_toml, parse_size
from crawlpool.dashboard.address import Address, token_for
from crawlpool.dashboard.server import serving
from crawlpool.dashboard.source import StoredSource
from crawlpool.engine import Engine
from crawlpool.errors import ConfigError, FrontierError, StorageError, UsageError
from crawlpool.frontier import is_redis, without_password
from crawlpool.logs import json_line, setup_logging
from crawlpool.mirror import build_mirror
from crawlpool.records import Page
from crawlpool.rejoin import finished_notice
from crawlpool.reports import crawl_status, failures
from crawlpool.seeds import load_seeds
from crawlpool.store import MANIFEST_NAME
from crawlpool.summary import headline, render_summary, stats_json, summary_lines

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
log = logging.getLogger("crawlpool")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line instead of usage text plus a line."""

    argv: Sequence[str] = ()  # the command line being parsed (set by `main`), for the error's form

    def error(self, message: str) -> NoReturn:
        prog = self.prog
        command = next((arg for arg in self.argv if arg in _COMMANDS), None)
        if prog == "crawlpool" and command is not None:  # `crawl URL --bogus` is the crawl's mistake
            prog = f"crawlpool {command}"
        text = f"{prog}: error: {message} (see {prog} --help)"
        if _json_requested(self.argv):
            text = json_line("error", text, {"event": "error"})
        self.exit(EXIT_USAGE, text + "\n")


_COMMANDS = ("crawl", "status", "failures", "dashboard")


def _json_requested(argv: Sequence[str]) -> bool:
    """`--log-format json` is on the command line, even if the rest of it does not parse."""
    return "--log-format=json" in argv or ("--log-format", "json") in itertools.pairwise(argv)


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _processes(text: str) -> int | str:
    if text == "auto":
        return text
    if not text.strip().lstrip("+-").isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of processes or auto, got {text!r}")
    return _positive_int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="crawlpool", description="A polite, resumable, fast web crawler.")
    parser.add_argument("--version", action="version", version=f"crawlpool {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    cmd = commands.add_parser(
        "crawl",
        help="crawl from seed URLs",
        description="Crawl from seed URLs or seed-list files (one URL a line, '-' for stdin).",
    )
    cmd.add_argument("seeds", nargs="+", metavar="SEEDS", help="seed-list files, '-', or URLs")
    out = cmd.add_argument_group("output and configuration")
    out.add_argument("-o", "--output", type=Path, help="output directory (default: output)")
    out.add_argument("-c", "--config", type=Path, help="TOML config file; flags override it")
    limits = cmd.add_argument_group("how much to crawl")
    limits.add_argument("--max-pages", type=_positive_int, metavar="N", help="stop after N stored pages")
    limits.add_argument(
        "--max-depth", type=_non_negative_int, metavar="N", help="follow links N deep (seeds: 0)"
    )
    limits.add_argument("--max-bytes", type=_size, metavar="SIZE", help="largest body kept (default: 10MiB)")
    limits.add_argument(
        "--page-requisites",
        action="store_true",
        default=None,
        help="also fetch the images, stylesheets, scripts, fonts and icons stored pages use, from any host",
    )
    limits.add_argument(
        "--scope",
        choices=("host", "domain", "any"),
        help="follow links to the seeds' hosts (default), registered domains, or anywhere",
    )
    limits.add_argument(
        "--max-url-chars",
        type=_positive_int,
        metavar="N",
        help="trap guard: longest URL followed (default: 2083)",
    )
    limits.add_argument(
        "--max-segments", type=_positive_int, metavar="N", help="trap guard: most path segments (default: 20)"
    )
    limits.add_argument(
        "--max-repeats",
        type=_positive_int,
        metavar="N",
        help="trap guard: most repeats of one path segment in a row (default: 2)",
    )
    limits.add_argument(
        "--include", action="append", metavar="RE", help="follow only URLs matching RE (repeatable)"
    )
    limits.add_argument(
        "--exclude", action="append", metavar="RE", help="never follow URLs matching RE (repeatable)"
    )
    limits.add_argument(
        "--sitemaps",
        action="store_true",
        default=None,
        help="also crawl what each in-scope host's sitemaps list (robots.txt Sitemap: lines, else "
        "/sitemap.xml)",
    )
    speed = cmd.add_argument_group("parsing")
    speed.add_argument(
        "--parser", choices=("bs4", "lxml"), help="link extractor: bs4 (default) or lxml (same links, faster)"
    )
    speed.add_argument(
        "--parse-workers",
        type=_non_negative_int,
        metavar="N",
        help="link-extraction processes (default: one per CPU beyond the first two, at most 4; 0: inline)",
    )
    speed.add_argument(
        "--processes",
        type=_processes,
        metavar="N",
        help="crawl processes sharing the crawl (default: auto, one per core; 1: this process only)",
    )
    polite = cmd.add_argument_group("speed and politeness")
    polite.add_argument(
        "--concurrency", type=_positive_int, metavar="N", help="requests in flight (default: 32)"
    )
    polite.add_argument(
        "--per-host", type=_positive_int, metavar="N", help="requests in flight per host (default: 2)"
    )
    polite.add_argument(
        "--delay",
        type=_seconds,
        metavar="S",
        dest="delay_s",
        help="least seconds between two request starts to one host; a host that answers 429/503, "
        "times out or slows down sharply (0.5 s and 4x its usual) is spaced further (default: 0)",
    )
    polite.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        dest="timeout_s",
        help="seconds per request, connect to last byte (default: 30)",
    )
    polite.add_argument(
        "--retries",
        type=_non_negative_int,
        metavar="N",
        help="extra tries after a timeout, DNS or connection error, a cut body, or 408/429/500/502/503/504 "
        "(default: 3; redirects to itself have their own budget of 3)",
    )
    polite.add_argument(
        "--retry-backoff",
        type=_seconds,
        metavar="S",
        dest="retry_backoff_s",
        help="first retry waits up to S seconds, doubling each time (default: 0.5)",
    )
    polite.add_argument("--user-agent", metavar="UA", help="User-Agent header")
    polite.add_argument(
        "--no-robots", dest="robots", action="store_false", default=None, help="ignore robots.txt"
    )
    polite.add_argument(
        "--max-crawl-delay",
        type=_seconds,
        metavar="S",
        dest="max_crawl_delay_s",
        help="cap on a robots.txt Crawl-delay (default: 30)",
    )
    guard = cmd.add_argument_group("addresses (the guard against links into private networks)")
    guard.add_argument(
        "--allow-private",
        action="store_true",
        default=None,
        help="connect to private, loopback, link-local and other non-public addresses too "
        "(by default only a seed's host may be at one)",
    )
    guard.add_argument(
        "--allow-address",
        action="append",
        metavar="CIDR",
        help="connect to addresses in this network too, e.g. 10.0.0.0/8 (repeatable)",
    )
    state = cmd.add_argument_group("state, resume and several machines")
    state.add_argument(
        "--frontier",
        metavar="URL",
        help="where the crawl's state lives: sqlite (default, in OUTPUT), sqlite:///PATH, memory, "
        "or redis://HOST:PORT/DB to share one crawl between processes and machines "
        "(redis+cluster://HOST:PORT: over a Redis Cluster)",
    )
    state.add_argument(
        "--resume", action="store_true", default=None, help="continue the crawl whose state is in OUTPUT"
    )
    state.add_argument(
        "--update",
        action="store_true",
        default=None,
        help="re-fetch the finished crawl in OUTPUT conditionally and report what changed (changes.json)",
    )
    state.add_argument(
        "--crawl-id",
        metavar="NAME",
        help="with a redis frontier: the crawl to join (default: derived from the seeds)",
    )
    state.add_argument(
        "--lease",
        type=_seconds,
        metavar="S",
        dest="lease_s",
        help="with a redis frontier: a worker's hosts come back this long after it stops heartbeating, "
        "and a worker that loses Redis this long stops (default: 60)",
    )
    state.add_argument(
        "--grace",
        type=_seconds,
        metavar="S",
        dest="grace_s",
        help="on SIGINT/SIGTERM, let requests in flight finish for up to S seconds (default: 10)",
    )
    archive = cmd.add_argument_group("archive")
    archive.add_argument(
        "--warc",
        action="store_true",
        default=None,
        help="also write every HTTP exchange to OUTPUT/warc/*.warc.gz (WARC/1.1, with CDXJ indexes)",
    )
    archive.add_argument(
        "--warc-max-size",
        type=_size,
        metavar="SIZE",
        help="start a new WARC file once one reaches SIZE (default: 1GB)",
    )
    cmd.set_defaults(run=_run_crawl)
    talk = cmd.add_argument_group("what it says")
    talk.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    talk.add_argument("-v", "--verbose", action="count", default=0, help="more detail (-vv: debug)")
    talk.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="json: one JSON object per line"
    )
    talk.add_argument(
        "--progress-interval",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="when stderr is not a terminal, a status line every S seconds (default: 10)",
    )
    talk.add_argument(
        "--stats-json", type=Path, metavar="FILE", help="write the end-of-crawl numbers as JSON"
    )
    talk.add_argument(
        "--dashboard",
        metavar="[HOST:]PORT",
        help="serve a live dashboard while crawling (HOST: 127.0.0.1; its URL is printed once)",
    )
    talk.add_argument(
        "--dashboard-token",
        metavar="TOKEN",
        help="the token the dashboard requires (off loopback one is generated when not given)",
    )

    board = commands.add_parser(
        "dashboard",
        help="serve the dashboard of a crawl, running or finished, read-only",
        description="Serve the dashboard of the crawl in OUTPUT (any backend), or of a Redis crawl.",
    )
    board.add_argument("output", type=Path, nargs="?", metavar="OUTPUT", help="the crawl's output directory")
    board.add_argument("--frontier", metavar="URL", help="redis://... (default: where OUTPUT recorded it)")
    board.add_argument("--crawl-id", metavar="NAME", help="with a redis frontier: the crawl to show")
    board.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    board.add_argument(
        "--port", type=_int_at_least(0), default=8080, help="port (default: 8080; 0: any free)"
    )
    board.add_argument("--token", help="the token it requires (off loopback one is generated when not given)")
    board.set_defaults(run=_run_dashboard, quiet=False, verbose=0, log_format="text")

    status = commands.add_parser(
        "status",
        help="what a crawl has done and has left",
        description="Pages stored, queued, in flight, failed by error code, hosts, times.",
    )
    status.add_argument("output", type=Path, nargs="?", metavar="OUTPUT", help="the crawl's output directory")
    status.add_argument(
        "--frontier",
        metavar="URL",
        help="sqlite, sqlite:///PATH or redis://... (default: where OUTPUT recorded it, else sqlite)",
    )
    status.add_argument(
        "--crawl-id",
        metavar="NAME",
        help="with a redis frontier: the crawl to show (default: OUTPUT's; with no OUTPUT, list the crawls)",
    )
    status.set_defaults(run=_run_status, quiet=False, verbose=0, log_format="text")

    fail = commands.add_parser(
        "failures",
        help="list the URLs a crawl could not fetch or store",
        description="List failed records of OUTPUT/manifest.jsonl, one per line: url, status, error.",
    )
    fail.add_argument("output", type=Path, metavar="OUTPUT", help="the crawl's output directory")
    fail.add_argument("--code", help="only this error code (timeout, http_4xx, robots, ...)")
    fail.set_defaults(run=_run_failures, quiet=False, verbose=0, log_format="text")

    mirror = commands.add_parser(
        "mirror",
        help="make a copy of a crawl you can browse offline",
        description="Copy OUTPUT's stored pages to DEST with .html names and links rewritten to the "
        "local copies (wget -k -E). OUTPUT is not changed; an interrupted crawl works too.",
    )
    mirror.add_argument("output", type=Path, metavar="OUTPUT", help="the crawl's output directory")
    mirror.add_argument("dest", type=Path, metavar="DEST", help="a new or empty directory for the copy")
    mirror.set_defaults(run=_run_mirror, quiet=False, verbose=0, log_format="text")
    return parser


_CLI_ONLY = {
    "command",
    "seeds",
    "config",
    "quiet",
    "verbose",
    "run",
    "log_format",
    "progress_interval",
    "stats_json",
    "host",
    "port",
    "token",
}


def _config_from_args(args: argparse.Namespace) -> CrawlConfig:
    file_options: dict[str, Any] = load_toml(args.config) if args.config else {}
    if file_options:
        try:  # the file's values alone first, so that a bad one is reported with the file's name
            build_config(file_options)
        except ConfigError as exc:
            raise ConfigError(f"{args.config}: {exc}") from None
    flags = {name: value for name, value in vars(args).items() if name not in _CLI_ONLY and value is not None}
    for name in ("include", "exclude", "allow_address"):
        if name in flags:
            flags[name] = tuple(flags[name])
    try:
        return build_config(file_options, flags)
    except ConfigError as exc:  # a flag's bad value is named by its flag, not its config key
        key, sep, rest = str(exc).partition(": ")
        if sep and key in flags:
            raise ConfigError(f"argument --{key.removesuffix('_s').replace('_', '-')}: {rest}") from None
        raise


@dataclass(slots=True)
class _CrawlWatch:
    """What the CLI keeps of a running crawl: its engine (for counters after a stop) and pages per host."""

    engine: Engine | None = None
    hosts: Counter[str] = field(default_factory=Counter)

    def on_page(self, page: Page) -> None:
        if page.path is not None:
            self.hosts[page.url.split("/")[2].rpartition("@")[2]] += 1  # host[:port], as written


@dataclass(frozen=True, slots=True)
class _Voice:
    """The CLI's own lines on stderr, as text or (`json`) as JSON objects like the log records."""

    json: bool

    def say(self, message: str, *, level: str = "info", event: str = "message", **fields: object) -> None:
        if self.json:
            sys.stderr.write(json_line(level, message, {"event": event, **fields}) + "\n")
        else:
            sys.stderr.write(f"crawlpool: {message}\n")


async def _crawl_until_signalled(
    seeds: list[str],
    config: CrawlConfig,
    watch: _CrawlWatch,
    progress: Progress | None,
    announce: Callable[[], None],
    show_dashboard: Callable[[str], None],
    on_stop: Callable[[], None],
) -> bool:
    """Run the crawl; SIGINT or SIGTERM cancels it. False means it was stopped by a signal."""

    def keep(engine: Engine) -> None:
        watch.engine = engine
        announce()  # the frontier is open: the crawl id is worth telling now

    task = asyncio.create_task(
        run_crawl(
            config, seeds, watch.on_page, progress=progress, on_engine=keep, on_dashboard=show_dashboard
        )
    )
    loop = asyncio.get_running_loop()
    stops = 0

    def stop() -> None:
        nonlocal stops
        stops += 1
        if stops == 1:
            on_stop()
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await task
    except asyncio.CancelledError:
        if task.cancelled():
            return False
        raise
    return True


def _run_dashboard(args: argparse.Namespace) -> int:
    address = Address(args.host, args.port)
    token = token_for(address, args.token)

    async def serve() -> None:
        source = await StoredSource.open(args.output, args.frontier, args.crawl_id)
        try:
            async with serving(source, address, token) as url:
                sys.stderr.write(f"crawlpool: dashboard at {url} (Ctrl-C stops it)\n")
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                await stop.wait()
        finally:
            await source.aclose()

    asyncio.run(serve())
    return EXIT_OK


def _run_status(args: argparse.Namespace) -> int:
    lines = asyncio.run(crawl_status(args.output, args.frontier, args.crawl_id))
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def _run_failures(args: argparse.Namespace) -> int:
    listed = 0
    for record in failures(args.output, args.code):
        sys.stdout.write(f"{record['url']}\t{record['status']}\t{record['error']}\n")
        listed += 1
    if not listed:  # said on stderr: stdout stays a clean (empty) list for pipes
        what = f"records with error code {args.code}" if args.code else "failed records"
        sys.stderr.write(f"crawlpool: no {what} in {args.output}\n")
    return EXIT_OK


def _run_mirror(args: argparse.Namespace) -> int:
    try:
        report = build_mirror(args.output, args.dest)
    except OSError as exc:
        raise StorageError(f"mirror: cannot write {exc.filename or args.dest}: {exc.strerror}") from None
    sys.stderr.write(
        f"mirrored {report.pages} pages, {report.styles} stylesheets and {report.files} other files "
        f"into {args.dest}; open {args.dest / 'index.html'}\n"
    )
    return EXIT_OK


def _run_crawl(args: argparse.Namespace) -> int:
    voice = _Voice(args.log_format == "json")
    config = _config_from_args(args)
    seeds = load_seeds(args.seeds)
    for warning in seeds.warnings:
        log.warning("%s", warning)
    config, urls = prepare(seeds.urls, config, {})
    if (notice := asyncio.run(finished_notice(config, urls))) is not None:  # joining a finished crawl
        if not args.quiet:
            voice.say(notice, event="finished_already")
        return EXIT_OK

    def show_dashboard(url: str) -> None:
        voice.say(f"dashboard at {url}", event="dashboard", url=url)

    def announce() -> None:
        if is_redis(config.frontier) and not args.quiet:
            where = without_password(config.frontier)
            voice.say(f"joined crawl {config.crawl_id} at {where}", event="joined", crawl_id=config.crawl_id)

    console = Console(stderr=True)
    progress = (
        None
        if args.quiet
        else Progress(
            live=console.is_terminal and not voice.json,
            interval_s=args.progress_interval,
            console=console,
            json_lines=voice.json,
        )
    )
    watch = _CrawlWatch()

    def on_stop() -> None:
        if not args.quiet:
            voice.say(
                f"stopping: requests in flight get up to {config.grace_s:g} s to finish; "
                "press Ctrl-C again to stop at once",
                event="stopping",
            )

    finished = asyncio.run(
        _crawl_until_signalled(urls, config, watch, progress, announce, show_dashboard, on_stop)
    )
    if watch.engine is None:
        return EXIT_OK if finished else EXIT_INTERRUPTED
    stats = watch.engine.stats
    top_hosts = watch.hosts.most_common(5)
    manifest = config.output / MANIFEST_NAME
    if not args.quiet:
        if voice.json:
            voice.say(headline(stats), event="summary", stats=stats_json(stats, top_hosts=top_hosts))
        elif console.is_terminal:
            console.print(render_summary(stats, manifest=manifest, top_hosts=top_hosts))
        else:
            for line in summary_lines(stats, manifest=manifest, top_hosts=top_hosts):
                sys.stderr.write(f"{line}\n")
    if args.stats_json is not None:
        _write_stats_json(args.stats_json, stats_json(stats, top_hosts=top_hosts))
    if not finished:
        return EXIT_INTERRUPTED
    if stats.outcome == "unreachable":
        hosts = ", ".join(f"{host} ({cause})" for host, cause in sorted(stats.unreachable.items()))
        voice.say(
            f"error: nothing was fetched: no host could be reached: {hosts}; check the seed URLs and "
            "the network, then crawl again into a new output directory",
            level="error",
            event="unreachable",
            hosts=stats.unreachable,
        )
        return EXIT_UNREACHABLE
    return EXIT_OK


def _write_stats_json(path: Path, data: dict[str, object]) -> None:
    try:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--stats-json: cannot write {path}: {exc.strerror}") from None


def main(argv: Sequence[str] | None = None) -> int:
    _Parser.argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    setup_logging(verbosity=args.verbose, quiet=args.quiet, fmt=args.log_format)
    voice = _Voice(args.log_format == "json")
    try:
        code: int = args.run(args)
    except BrokenPipeError:  # `crawlpool failures out | head` closed the pipe: not an error
        return EXIT_OK
    except UsageError as exc:
        voice.say(f"error: {exc}", level="error", event="error")
        return EXIT_USAGE
    except (FrontierError, StorageError) as exc:  # a store failed mid-crawl: its state is kept for a rerun
        voice.say(f"stopped: {exc}", level="error", event="error")
        return EXIT_FATAL
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # the CLI's last line of defence: one line, traceback only with -v
        if args.verbose:
            log.exception("fatal error")
        voice.say(
            f"fatal: {type(exc).__name__}: {exc} (-v shows the traceback)", level="error", event="error"
        )
        return EXIT_FATAL
    return code


if __name__ == "__main__":
    sys.exit(main())

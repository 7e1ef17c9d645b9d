"""The crawl's options: one frozen `CrawlConfig`, validated when it is built.

Options come from three places, later ones winning: the defaults below, a TOML file (`-c FILE`, keys
named exactly like the fields, see `config/crawlpool.toml`), then keyword arguments or CLI flags.
Every check happens here, before any request is sent, and fails with a `ConfigError` that names the
option and says what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from aiohttp import ClientMiddlewareType

from crawlpool._version import __version__
from crawlpool.addresses import parse_network
from crawlpool.dashboard.address import parse_address
from crawlpool.errors import ConfigError
from crawlpool.frontier import check_frontier_spec
from crawlpool.robots import user_agent_token

PROJECT_URL = "https://github.com/crawlpool/crawlpool"
DEFAULT_USER_AGENT = f"crawlpool/{__version__} (+{PROJECT_URL})"
MIB = 1024 * 1024
GB = 1000**3

ScopeMode = Literal["host", "domain", "any"]


@dataclass(frozen=True, slots=True)
class CrawlConfig:
    """What to crawl and how politely. Each field has a CLI flag: its name with `-` for `_` and without
    a `_s` unit suffix (`per_host` → `--per-host`, `delay_s` → `--delay`)."""

    output: Path = Path("output")
    concurrency: int = 32
    per_host: int = 2
    delay_s: float = 0.0
    max_pages: int | None = None
    max_depth: int | None = None
    max_bytes: int = 10 * MIB
    scope: ScopeMode = "host"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    timeout_s: float = 30.0
    retries: int = 3
    retry_backoff_s: float = 0.5
    user_agent: str = DEFAULT_USER_AGENT
    robots: bool = True
    sitemaps: bool = False
    max_crawl_delay_s: float = 30.0
    max_url_chars: int = 2083
    max_segments: int = 20
    max_repeats: int = 2
    parser: Literal["bs4", "lxml"] = "bs4"
    parse_workers: int | None = None
    processes: int | Literal["auto"] = "auto"  # crawl processes on this machine (see `process_count`)
    frontier: str = "sqlite"
    crawl_id: str | None = None
    lease_s: float = 60.0
    resume: bool = False
    update: bool = False
    grace_s: float = 10.0
    dashboard: str | None = None  # [HOST:]PORT to serve the live dashboard on while crawling
    dashboard_token: str | None = None  # required by the dashboard (generated off loopback when None)
    # The address guard (addresses.py): connect to private, loopback, ... addresses beyond the seeds'.
    allow_private: bool = False
    allow_address: tuple[str, ...] = ()
    page_requisites: bool = False  # also fetch what stored pages need to render, from any host
    warc: bool = False
    warc_max_size: int = GB
    # aiohttp client middlewares wrapped around every request the crawler sends (API only, not TOML).
    middlewares: tuple[ClientMiddlewareType, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        _check_int(self.concurrency, "concurrency", minimum=1)
        _check_int(self.per_host, "per_host", minimum=1)
        _check_number(self.delay_s, "delay_s", minimum=0.0)
        if self.max_pages is not None:
            _check_int(self.max_pages, "max_pages", minimum=1)
        if self.max_depth is not None:
            _check_int(self.max_depth, "max_depth", minimum=0)
        if isinstance(self.max_bytes, str):  # "10MiB" in TOML, as on the command line
            try:
                object.__setattr__(self, "max_bytes", parse_size(self.max_bytes))
            except ValueError as exc:
                raise ConfigError(f"max_bytes: {exc}") from None
        _check_int(self.max_bytes, "max_bytes", minimum=1)
        _check_number(self.timeout_s, "timeout_s", minimum=0.001)
        _check_int(self.retries, "retries", minimum=0)
        _check_number(self.retry_backoff_s, "retry_backoff_s", minimum=0.0)
        if self.scope not in get_args(ScopeMode):
            raise ConfigError(f"scope: {self.scope!r} is not one of host, domain, any")
        for name in ("include", "exclude"):
            patterns = getattr(self, name)
            if isinstance(patterns, str) or not isinstance(patterns, Sequence):
                raise ConfigError(f"{name}: expected a list of regular expressions")
            object.__setattr__(self, name, tuple(patterns))
            for pattern in patterns:
                _check_regex(pattern, name)
        if not isinstance(self.user_agent, str) or not self.user_agent.strip():
            raise ConfigError("user_agent: must be a non-empty string")
        if any(ch in self.user_agent for ch in "\r\n\0"):
            raise ConfigError("user_agent: must not contain line breaks or NUL")
        try:
            user_agent_token(self.user_agent)
        except ValueError:
            raise ConfigError(
                f"user_agent: {self.user_agent!r} must start with a product token such as 'mybot/1.0', "
                "which robots.txt groups are matched against"
            ) from None
        _check_number(self.max_crawl_delay_s, "max_crawl_delay_s", minimum=0.0)
        _check_int(self.max_url_chars, "max_url_chars", minimum=16)
        _check_int(self.max_segments, "max_segments", minimum=1)
        _check_int(self.max_repeats, "max_repeats", minimum=1)
        if not isinstance(self.robots, bool):
            raise ConfigError("robots: expected true or false")
        if not isinstance(self.sitemaps, bool):
            raise ConfigError("sitemaps: expected true or false")
        if self.parser not in ("bs4", "lxml"):
            raise ConfigError(f"parser: {self.parser!r} is not one of bs4, lxml")
        if self.parse_workers is not None:
            _check_int(self.parse_workers, "parse_workers", minimum=0)
        _check_processes(self)
        if not isinstance(self.frontier, str):
            raise ConfigError("frontier: expected a string such as sqlite or redis://localhost:6379/0")
        check_frontier_spec(self.frontier)
        if self.crawl_id is not None and (
            not isinstance(self.crawl_id, str) or not self.crawl_id or any(c in self.crawl_id for c in "{} ")
        ):
            raise ConfigError(
                f"crawl_id: {self.crawl_id!r} must be a non-empty name without spaces or braces"
            )
        _check_number(self.lease_s, "lease_s", minimum=0.1)
        if not isinstance(self.resume, bool):
            raise ConfigError("resume: expected true or false")
        if self.resume and self.frontier == "memory":
            raise ConfigError("resume: a memory frontier keeps no state to resume; use sqlite (the default)")
        if not isinstance(self.update, bool):
            raise ConfigError("update: expected true or false")
        if self.update and self.frontier.startswith(("redis://", "rediss://")):
            raise ConfigError("update: --update needs a SQLite (or memory) frontier, not redis")
        _check_number(self.grace_s, "grace_s", minimum=0.0)
        if self.dashboard is not None:
            if not isinstance(self.dashboard, (str, int)) or isinstance(self.dashboard, bool):
                raise ConfigError("dashboard: expected [HOST:]PORT such as 8080 or 127.0.0.1:8080")
            object.__setattr__(self, "dashboard", str(self.dashboard))
            parse_address(self.dashboard)
        if self.dashboard_token is not None and (
            not isinstance(self.dashboard_token, str) or not self.dashboard_token.strip()
        ):
            raise ConfigError("dashboard_token: must be a non-empty string")
        if not isinstance(self.page_requisites, bool):
            raise ConfigError("page_requisites: expected true or false")
        if not isinstance(self.warc, bool):
            raise ConfigError("warc: expected true or false")
        _check_int(self.warc_max_size, "warc_max_size", minimum=1)
        if not isinstance(self.output, (str, Path)) or not str(self.output):
            raise ConfigError("output: expected a directory path")
        object.__setattr__(self, "output", Path(self.output))
        object.__setattr__(self, "middlewares", tuple(self.middlewares))
        _check_addresses(self)

    @property
    def parse_processes(self) -> int:
        """Link-extraction processes: `parse_workers`, or by default one per CPU beyond the first two,
        at most 4; 0 parses inline on the event loop. The event loop needs a core and the sites, the OS
        and the disk want another: on a 2-core machine the benchmark measured the pool's IPC costing
        more than it saved (0.90x with bs4, 0.72x with lxml), so there the default is inline."""
        if self.parse_workers is not None:
            return self.parse_workers
        return max(0, min(4, (os.cpu_count() or 1) - 2))

    @property
    def process_count(self) -> int:
        """Crawl processes: `processes`, or with `auto` one per core this process may run on, except
        where the crawl must stay in one process (`single_process_reason`)."""
        if self.processes != "auto":
            return self.processes
        if single_process_reason(self) is not None:
            return 1
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
        return max(1, min(cores, self.concurrency))

    def replace(self, **changes: Any) -> CrawlConfig:
        """A copy with `changes` applied (and validated); unknown names raise ConfigError."""
        return dataclasses.replace(self, **_known_options(changes, source="option"))


def single_process_reason(cfg: CrawlConfig) -> str | None:
    """Why this crawl runs in one process whatever `processes` says, or None."""
    if cfg.frontier.startswith(("redis://", "rediss://")):
        return (
            "a Redis crawl grows by starting more `crawlpool crawl --frontier redis://...` processes, "
            "each its own worker"
        )
    if cfg.update:
        return "--update runs in one process"
    if cfg.middlewares:
        return "middlewares are Python callables of this process"
    return None


def _check_processes(cfg: CrawlConfig) -> None:
    if cfg.processes == "auto":
        return
    if isinstance(cfg.processes, str) and cfg.processes.isdigit():  # "4" on the command line
        object.__setattr__(cfg, "processes", int(cfg.processes))
    if isinstance(cfg.processes, (str, bool)) or not isinstance(cfg.processes, int):
        got = str(cfg.processes).lower() if isinstance(cfg.processes, bool) else repr(cfg.processes)
        raise ConfigError(f"processes: expected a number of processes or auto, got {got}")
    _check_int(cfg.processes, "processes", minimum=1)
    if cfg.processes > cfg.concurrency:
        raise ConfigError(
            f"processes: {cfg.processes} processes need a concurrency of at least {cfg.processes}, "
            f"got {cfg.concurrency}"
        )
    if cfg.processes > 1 and (reason := single_process_reason(cfg)) is not None:
        raise ConfigError(f"processes: {reason}; use --processes 1 (or auto) with it")


TOML_KEYS = frozenset(f.name for f in dataclasses.fields(CrawlConfig)) - {"middlewares"}


def load_toml(path: Path) -> dict[str, Any]:
    """The options in a TOML config file, checked for unknown keys; values are checked by CrawlConfig."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return _known_options(data, source=str(path), allowed=TOML_KEYS)


def build_config(*layers: Mapping[str, Any]) -> CrawlConfig:
    """A validated config from option layers applied in order (defaults < file < flags)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(_known_options(layer, source="option"))
    try:
        return CrawlConfig(**merged)
    except TypeError as exc:  # a value of the wrong type deep inside a check
        raise ConfigError(str(exc)) from None


def _known_options(
    options: Mapping[str, Any], *, source: str, allowed: frozenset[str] | None = None
) -> dict[str, Any]:
    known = allowed if allowed is not None else TOML_KEYS | {"middlewares"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}{_key_hint(unknown[0], known)}")
    return dict(options)


def _key_hint(key: str, known: frozenset[str]) -> str:
    """` (did you mean 'delay_s'?)` for a flag's name or a near miss, else the list of known keys."""
    spelled = key.replace("-", "_").lstrip("_")
    for candidate in (spelled, f"{spelled}_s"):
        if candidate in known:
            return f" (did you mean {candidate!r}?)"
    close = difflib.get_close_matches(spelled, sorted(known), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known keys: {', '.join(sorted(known))})"


_SIZE = re.compile(r"\s*(\d+)\s*([kmg]i?b?|b)?\s*", re.IGNORECASE)
_SIZE_UNITS: dict[str, int] = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3}


def parse_size(text: str) -> int:
    """Bytes from `10485760`, `512k`, `10MiB`, `1GB` (k, M, G: powers of 1000; KiB, MiB, GiB: of 1024).
    Raises ValueError saying what is expected."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"expected a size like 10MiB or 500000, got {text!r}")
    number, unit = int(match[1]), (match[2] or "").lower()
    factor: int = 1024 ** ("kmg".index(unit[0]) + 1) if "i" in unit else _SIZE_UNITS[unit[:1]]
    if number * factor < 1:
        raise ValueError("must be at least 1 byte")
    return number * factor


def _check_int(value: object, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}: expected a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")


def _check_number(value: object, name: str, *, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if not value >= minimum:  # also refuses NaN
        raise ConfigError(f"{name}: must be at least {minimum:g}, got {value}")


def _check_addresses(cfg: CrawlConfig) -> None:
    if not isinstance(cfg.allow_private, bool):
        raise ConfigError("allow_private: expected true or false")
    if isinstance(cfg.allow_address, str) or not isinstance(cfg.allow_address, Sequence):
        raise ConfigError("allow_address: expected a list of networks such as ['10.0.0.0/8']")
    object.__setattr__(cfg, "allow_address", tuple(cfg.allow_address))
    for text in cfg.allow_address:
        if not isinstance(text, str):
            raise ConfigError(f"allow_address: expected a network such as 10.0.0.0/8, got {text!r}")
        try:
            parse_network(text)
        except ValueError as exc:
            raise ConfigError(f"allow_address: {exc}") from None


def _check_regex(pattern: object, name: str) -> None:
    if not isinstance(pattern, str):
        raise ConfigError(f"{name}: expected a regular expression string, got {pattern!r}")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{name}: bad regular expression {pattern!r}: {exc}") from None

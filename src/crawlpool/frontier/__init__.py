"""Frontier backends behind one protocol; `open_frontier` picks one from the `--frontier` value.

memory              in this process only (tests, throwaway crawls)
sqlite              OUTPUT/.crawlpool/frontier.db (the default: resumable)
sqlite:///PATH      that file instead
redis://HOST:PORT/DB, rediss://...   one crawl shared by many processes (needs crawlpool[redis])
redis+cluster://HOST:PORT            the same over a Redis Cluster (any node; rediss+cluster:// for TLS)

Code outside this package reaches a backend only through the `Frontier` protocol and the functions
here: `open_frontier` to work on a crawl, `read_status` to look at one without joining it.

An output directory records where its crawl's state lives in `OUTPUT/.crawlpool/frontier.json`
(`FrontierLocation`: the `--frontier` value without any password, the crawl id and the worker id), so
that `crawlpool status OUTPUT` finds a `sqlite:///PATH` or Redis crawl by itself, and a Redis worker
resumed in the same directory keeps its worker id, under which its records are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from crawlpool.errors import ConfigError, FrontierError
from crawlpool.frontier.base import (
    ConfirmsRecords,
    CrawlState,
    Frontier,
    FrontierCounts,
    FrontierStatus,
    HostRow,
    Lease,
    LeaseBatch,
    PacesOnAck,
    Politeness,
    Request,
    RobotsState,
    WorkerStatus,
)
from crawlpool.frontier.memory import MemoryFrontier
from crawlpool.frontier.sqlite import SqliteFrontier, read_host_rows_at, read_status_at

__all__ = [
    "ConfirmsRecords",
    "CrawlState",
    "Frontier",
    "FrontierCounts",
    "FrontierLocation",
    "FrontierStatus",
    "HostRow",
    "Lease",
    "LeaseBatch",
    "MemoryFrontier",
    "PacesOnAck",
    "Politeness",
    "Request",
    "RobotsState",
    "SqliteFrontier",
    "WorkerStatus",
    "check_frontier_spec",
    "default_crawl_id",
    "is_redis",
    "list_redis_crawls",
    "new_worker_id",
    "open_frontier",
    "read_host_rows",
    "read_location",
    "read_status",
    "sqlite_path",
    "without_password",
    "write_location",
]

STATE_FILE = Path(".crawlpool") / "frontier.db"
LOCATION_FILE = Path(".crawlpool") / "frontier.json"
HIDDEN_PASSWORD = "***"


def is_redis(spec: str) -> bool:
    return spec.startswith(("redis://", "rediss://", "redis+cluster://", "rediss+cluster://"))


def sqlite_path(spec: str, output: Path) -> Path | None:
    """The SQLite file a `--frontier` value names, or None when it is not a SQLite frontier."""
    if spec == "sqlite":
        return output / STATE_FILE
    if spec.startswith("sqlite://"):
        return Path(spec.removeprefix("sqlite://"))
    return None


def without_password(spec: str) -> str:
    """The `--frontier` value with a Redis URL's password replaced by `***`, for files and messages."""
    if not is_redis(spec):
        return spec
    parts = urlsplit(spec)
    if parts.password is None:
        return spec
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:{HIDDEN_PASSWORD}@{host}").geturl()


def new_worker_id() -> str:
    """A worker id for a new output directory: host name, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class FrontierLocation:
    """Where the crawl of an output directory keeps its state (OUTPUT/.crawlpool/frontier.json).

    `frontier` is the `--frontier` value with no password (a relative sqlite:// path made absolute);
    `worker_id` is the one this directory's process crawls under."""

    frontier: str
    crawl_id: str | None = None
    worker_id: str | None = None


def write_location(output: Path, spec: str, crawl_id: str | None, worker_id: str | None) -> None:
    """Record in OUTPUT where its crawl's state lives (replacing the file whole, never half-written)."""
    if spec.startswith("sqlite://"):
        spec = f"sqlite://{Path(spec.removeprefix('sqlite://')).resolve()}"
    location = FrontierLocation(without_password(spec), crawl_id, worker_id)
    path = output / LOCATION_FILE
    tmp = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(asdict(location), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"output: cannot write {path}: {exc.strerror or exc}") from None


def read_location(output: Path) -> FrontierLocation | None:
    """What OUTPUT recorded of its crawl's state, or None when it recorded nothing (a crawl made before
    crawlpool wrote the file, or no crawl at all). Raises ConfigError when the file is unreadable."""
    path = output / LOCATION_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("frontier"), str):
        raise ConfigError(f"{path}: not a crawlpool frontier location")
    return FrontierLocation(data["frontier"], data.get("crawl_id"), data.get("worker_id"))


def check_frontier_spec(spec: str) -> None:
    """Raise ConfigError unless `spec` is a `--frontier` value crawlpool understands."""
    if spec in ("memory", "sqlite") or is_redis(spec):
        return
    if spec.startswith("sqlite://"):
        if not spec.removeprefix("sqlite://"):
            raise ConfigError("frontier: sqlite:// needs a path, as in sqlite:///var/crawls/state.db")
        return
    raise ConfigError(
        f"frontier: {spec!r} is not one of memory, sqlite, sqlite:///PATH, redis://HOST:PORT/DB, "
        "redis+cluster://HOST:PORT"
    )


def default_crawl_id(seeds: Sequence[str]) -> str:
    """A crawl id derived from the seeds, so the same command on every machine joins the same crawl."""
    digest = hashlib.sha256("\n".join(sorted(seeds)).encode()).hexdigest()
    return f"crawl-{digest[:12]}"


async def open_frontier(
    spec: str,
    politeness: Politeness,
    *,
    output: Path,
    crawl_id: str | None = None,
    lease_s: float = 60.0,
    observe: bool = False,
    worker_id: str | None = None,
) -> Frontier:
    """The frontier named by a `--frontier` value. Raises ConfigError (a usage error: nothing was
    crawled yet) when its store cannot be opened: Redis unreachable, the state locked or corrupt.
    `worker_id` names this process among a shared crawl's workers (Redis; others ignore it)."""
    try:
        return await _open(spec, politeness, output, crawl_id, lease_s, observe, worker_id)
    except FrontierError as exc:
        raise ConfigError(f"frontier: {exc}") from None


async def read_status(spec: str, *, output: Path | None, crawl_id: str | None) -> FrontierStatus | None:
    """The status of the crawl a `--frontier` value names, read without joining or changing it: a
    SQLite state is read even while another process holds it (then only `state` and `holder` are
    known), a Redis crawl is observed (no crawl is created, no worker appears). None: the frontier
    keeps no state (memory), or its SQLite file does not exist. Raises ConfigError when the state
    cannot be reached or read."""
    path = sqlite_path(spec, output or Path("."))
    try:
        if path is not None:
            if output is None and spec == "sqlite":
                raise ConfigError("status: name the crawl's OUTPUT directory")
            return read_status_at(path) if path.exists() else None
        if is_redis(spec):
            if HIDDEN_PASSWORD in spec:
                raise ConfigError(
                    f"status: the crawl's Redis at {spec} needs its password: give the URL with --frontier"
                )
            if crawl_id is None:
                raise ConfigError(
                    "status: a redis frontier needs --crawl-id (printed when the crawl started)"
                )
            frontier = await _open(spec, Politeness(), Path("."), crawl_id, 60.0, True, None)
            try:
                return await frontier.status()
            finally:
                await frontier.aclose()
    except FrontierError as exc:
        raise ConfigError(f"status: {exc}") from None
    check_frontier_spec(spec)
    return None


async def list_redis_crawls(spec: str) -> list[FrontierStatus]:
    """The status of every crawl at the Redis a `--frontier` value names, by crawl id, read without
    changing anything. Raises ConfigError when Redis cannot be reached or read."""
    if HIDDEN_PASSWORD in spec:
        raise ConfigError(f"status: the Redis at {spec} needs its password: give the URL with --frontier")
    try:
        from crawlpool.frontier.redis_crawls import list_crawls
    except ImportError:
        raise ConfigError(
            "frontier: the redis frontier needs the redis client: pip install 'crawlpool[redis]'"
        ) from None
    try:
        return await list_crawls(spec)
    except FrontierError as exc:
        raise ConfigError(f"status: {exc}") from None


def read_host_rows(spec: str, *, output: Path, limit: int) -> list[HostRow]:
    """The busiest hosts of a stopped SQLite crawl, read-only (empty for other backends, a missing
    file, or a crawl another process holds). Raises ConfigError when the state cannot be read."""
    path = sqlite_path(spec, output)
    if path is None or not path.exists():
        return []
    try:
        return read_host_rows_at(path, limit)
    except FrontierError as exc:
        raise ConfigError(f"dashboard: {exc}") from None


async def _open(
    spec: str,
    politeness: Politeness,
    output: Path,
    crawl_id: str | None,
    lease_s: float,
    observe: bool,
    worker_id: str | None,
) -> Frontier:
    path = sqlite_path(spec, output)
    if path is not None:
        return await SqliteFrontier.open(path, politeness)
    if is_redis(spec):
        try:
            from crawlpool.frontier.redis import RedisFrontier
        except ImportError:
            raise ConfigError(
                "frontier: the redis frontier needs the redis client: pip install 'crawlpool[redis]'"
            ) from None
        if crawl_id is None:
            raise ConfigError("frontier: a redis frontier needs a crawl id")
        return await RedisFrontier.open(
            spec, crawl_id, politeness, lease_ms=round(lease_s * 1000), observe=observe, worker_id=worker_id
        )
    if spec == "memory":
        return MemoryFrontier(politeness)
    check_frontier_spec(spec)
    raise AssertionError(spec)

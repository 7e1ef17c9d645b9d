"""The SQLite frontier: the default backend, whose state outlives the process so a crawl can resume.

Theory of operation. The frontier keeps the memory backend's semantics exactly (see `base.py` and
`memory.py`); what differs is where the state lives. URLs live on disk, one row each, so memory stays flat
however large the frontier grows. Per-host scheduling state (queued and leased counts, pacing, the ready
heap of `memory.py`) lives in memory too, rebuilt from the tables at open: hosts are few next to URLs.

Schema (WAL journal, `synchronous=NORMAL`: a commit is a WAL append without fsync, so a power cut may
lose the last commits but never corrupts the file, and a killed process loses nothing committed):

    meta(key PRIMARY KEY, value)          schema_version, opens (lease-token epoch), the engine's keys
    hosts(id INTEGER PRIMARY KEY, host UNIQUE, last_start, delay_s, blocked_until, pace)
                                          pacing; NULL is "never" / "the politeness default"; `pace`
                                          is the host's `HostPace` as JSON, `delay_s` its delay
    urls(id INTEGER PRIMARY KEY, fp, url, host → hosts.id, depth, referrer, attempts, state, seq, due,
         hops, self_redirects, kind, lastmod)
                                          kind NULL is a page; lastmod is a sitemap's, as written
        unique index (fp)                        the seen-set
        index (host, seq) WHERE state = QUEUED   "the next queued URL of host H"
        index (due, seq)  WHERE state = WAITING  "retries that are due"
        index (seq)       WHERE state = LEASED   "leases left by a dead process" (a handful of rows)
    records(seq INTEGER PRIMARY KEY, fp, page)   one JSON Page per done URL, in commit order

`urls` is keyed by insertion order, not by fingerprint: new rows then fill the table's last page, and
the seen-set is a narrow index that stays in cache, where a random 64-bit key would scatter every insert
and every lookup over the whole wide table.

A URL's row moves through these states; each arrow is one transaction, together with the in-memory
host bookkeeping that mirrors it:

    (absent) ──add──▶ QUEUED ──lease──▶ LEASED ──ack──▶ DONE       (+ its records row, same transaction)
                        ▲ ▲                │ │
                        │ └────release─────┘ │         seq = front: first of its host, no attempt charged
                        │                    ▼
                        └─lease, once due── WAITING    retry: attempts + 1, due = now + delay_s

`seq` orders a host's queue. `add` takes ever-increasing numbers; putting a URL back in front (release,
a retry coming due, a lease reclaimed at open) takes ever-decreasing negative ones, so it sorts before
everything queued, and the latest one put back comes first, as `deque.appendleft` does in `memory.py`.
Rows are never deleted: a DONE row is what keeps its fingerprint "seen".

Resume after kill -9 is exact. Every step above is one transaction, so the file always holds a state the
frontier passed through; the only state that belongs to the dead process is its leases (rows LEASED).
No lease can outlive its process, so `open` returns every LEASED row to the front of its host's queue,
in its original order, without charging an attempt: a kill is rarely the URL's fault (Ctrl-C, OOM, a
reboot), and the engine does not consult `attempts` before a fetch, so charging one would only spend the
URL's retries for transient errors. Because `ack` commits the record and retires the URL together, a URL
is either DONE with exactly one record, or will be leased again: never lost, never recorded twice. The
open also takes an exclusive `flock` on `<db>.lock`, so two processes never share the state.

The clock defaults to wall time (`time.time`) because pacing instants (`last_start`, `blocked_until`)
and retry due times are stored and must keep their meaning across a restart; a monotonic clock restarts
with each boot. A `last_start` in the future at open (the wall clock stepped back) is capped at now, so a
clock step never stalls a host. Lease tokens are `opens << 32 | n`, unique across reopenings of the file.

All calls run synchronously on the event-loop thread: each is one short local transaction, cheaper
than a hop to an executor. The connection keeps SQLite's lock for its whole life (locking_mode
EXCLUSIVE), which the flock makes safe and which spares a file lock per transaction. A `sqlite3.Error`
becomes a `FrontierError`; after one, the in-memory state may no longer match the file, so the frontier
refuses further work: reopen it to resume from the last commit.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crawlpool.errors import FrontierError
from crawlpool.frontier.base import (
    ROBOTS_FAILURES_KEPT_S,
    CrawlState,
    FrontierCounts,
    FrontierStatus,
    HostRow,
    Lease,
    LeaseBatch,
    Politeness,
    Request,
    RobotsState,
    backoff_rows,
)
from crawlpool.frontier.schedule import NEVER, HostPacing, ReadyHosts, host_rows
from crawlpool.policy.pacing import HostEvent, HostPace
from crawlpool.records import Page

SCHEMA_VERSION = 3
# Version 1 lacked the host's pacing state and the self-redirect count, version 2 a URL's kind and its
# sitemap lastmod; opening an older crawl adds what it lacks.
_UPGRADE_FROM_1 = (
    "ALTER TABLE hosts ADD COLUMN pace TEXT",
    "ALTER TABLE urls ADD COLUMN self_redirects INTEGER NOT NULL DEFAULT 0",
)
_UPGRADE_FROM_2 = (
    "ALTER TABLE urls ADD COLUMN kind TEXT",
    "ALTER TABLE urls ADD COLUMN lastmod TEXT",
)

# URL states, as stored in urls.state.
QUEUED, LEASED, WAITING, DONE = 0, 1, 2, 3

# robots.txt state per host (`set_robots`): created by `_load` on a crawl that predates it, so no new
# schema version is needed; `until` is on the frontier's (wall) clock.
_ROBOTS_TABLE = """CREATE TABLE IF NOT EXISTS robots(
    host TEXT PRIMARY KEY, body TEXT, reason TEXT, failures INTEGER, until REAL
)"""

_SCHEMA = f"""
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE hosts(
    id INTEGER PRIMARY KEY, host TEXT NOT NULL UNIQUE,
    last_start REAL, delay_s REAL, blocked_until REAL, pace TEXT
);
CREATE TABLE urls(
    id INTEGER PRIMARY KEY, fp INTEGER NOT NULL, url TEXT NOT NULL, host INTEGER NOT NULL,
    depth INTEGER NOT NULL, referrer TEXT, attempts INTEGER NOT NULL, state INTEGER NOT NULL,
    seq INTEGER NOT NULL, due REAL, hops INTEGER NOT NULL DEFAULT 0,
    self_redirects INTEGER NOT NULL DEFAULT 0, kind TEXT, lastmod TEXT
);
CREATE UNIQUE INDEX urls_fp ON urls(fp);
CREATE INDEX urls_queued ON urls(host, seq) WHERE state = {QUEUED};
CREATE INDEX urls_waiting ON urls(due, seq) WHERE state = {WAITING};
CREATE INDEX urls_leased ON urls(seq) WHERE state = {LEASED};
CREATE TABLE records(seq INTEGER PRIMARY KEY, fp INTEGER NOT NULL, page TEXT NOT NULL);
{_ROBOTS_TABLE};
INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'), ('opens', '0');
"""

# "Which of these fingerprints are known?", for lists padded to a power of two from 8 to 256, so that a
# handful of statements serve every batch size and stay prepared in sqlite3's statement cache.
_SEEN = {1 << k: "SELECT fp FROM urls WHERE fp IN ({})".format(",".join("?" * (1 << k))) for k in range(3, 9)}
_SEEN_MAX = 256
_ADD = (
    "INSERT INTO urls(fp, url, host, depth, referrer, attempts, state, seq, hops, self_redirects, kind, "
    f"lastmod) VALUES (?, ?, ?, ?, ?, ?, {QUEUED}, ?, ?, ?, ?, ?)"
)
_TAKE_NEXT = (
    f"UPDATE urls SET state = {LEASED} WHERE fp = "
    f"(SELECT fp FROM urls WHERE state = {QUEUED} AND host = ? ORDER BY seq LIMIT 1) "
    "RETURNING fp, url, depth, referrer, attempts, hops, self_redirects, kind, lastmod"
)
_FINISH = f"UPDATE urls SET state = {DONE} WHERE fp = ? AND state = {LEASED}"
_TO_FRONT = f"UPDATE urls SET state = {QUEUED}, seq = ? WHERE fp = ?"

# The code of a record's error, as `Page.error_code` computes it, in SQL.
_ERROR_CODE = "CASE WHEN instr(e, ':') > 0 THEN substr(e, 1, instr(e, ':') - 1) ELSE e END"

_PAGE_BATCH = 500
_PACE_SAVE_EVERY = 64  # answers between two writes of a host's pacing that changed no delay

_REASONS = {
    "SQLITE_FULL": "the disk is full",
    "SQLITE_CORRUPT": "the database file is corrupt",
    "SQLITE_NOTADB": "the file is not a SQLite database",
    "SQLITE_READONLY": "the database file is read-only",
    "SQLITE_IOERR": "a disk I/O error",
    "SQLITE_CANTOPEN": "the database file cannot be opened",
    "SQLITE_BUSY": "the database is locked by another program",
    "SQLITE_LOCKED": "the database is locked by another program",
    "SQLITE_PERM": "permission denied",
}


@dataclass(slots=True)
class _Host(HostPacing):
    id: int = 0
    queued: int = 0  # URLs of the host in state QUEUED (not WAITING)


class SqliteFrontier:
    """A Frontier stored in one SQLite file; build it with `await SqliteFrontier.open(...)`."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        lock_fd: int,
        politeness: Politeness,
        clock: Callable[[], float],
    ) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = conn
        self._lock_fd: int | None = lock_fd
        self._politeness = politeness
        self._clock = clock
        self._failure: str | None = None
        self._hosts: dict[str, _Host] = {}
        self._host_ids = 0
        self._ready = ReadyHosts(politeness.per_host)
        self._retry_due: float | None = None  # earliest due time of a WAITING row
        self._leases: dict[int, Lease] = {}
        self._token = 0
        self._front = 0  # last seq given to a URL put back in front; decreasing
        self._back = 0  # last seq given to a URL added at the back; increasing
        self._seen = self._queued = self._done = 0

    @classmethod
    async def open(
        cls, path: Path, politeness: Politeness, clock: Callable[[], float] = time.time
    ) -> SqliteFrontier:
        """Open the crawl state at `path`, creating it (and its parent directories) if absent.

        Leases left by a previous process are returned to the front of their hosts' queues. Raises
        FrontierError when another process holds the state, or the file is not a usable crawl state."""
        lock_fd = _take_lock(path)
        try:
            conn = _connect(path)
        except BaseException:
            os.close(lock_fd)
            raise
        frontier = cls(path, conn, lock_fd, politeness, clock)
        try:
            frontier._load()
        except BaseException:
            await frontier.aclose()
            raise
        return frontier

    # -- the Frontier protocol ------------------------------------------------------------------------

    async def add(self, requests: Sequence[Request]) -> int:
        if not requests:
            return 0
        with self._transaction() as conn:
            # Most links of a page were seen before: one statement finds those, and only the rest
            # cost a Python row and an insert.
            seen = _seen(conn, [r.fp for r in requests])
            fresh: dict[int, Request] = {}
            for request in requests:
                if request.fp not in seen:
                    fresh.setdefault(request.fp, request)
            if not fresh:
                return 0
            seq = self._back
            rows = []
            for r in fresh.values():
                host = self._hosts.get(r.host) or self._new_host(conn, r.host)
                host.queued += 1
                seq += 1
                kind = None if r.kind == "page" else r.kind
                rows.append(
                    (
                        *(r.fp, r.url, host.id, r.depth, r.referrer, r.attempts, seq),
                        *(r.hops, r.self_redirects, kind, r.lastmod),
                    )
                )
            conn.executemany(_ADD, rows)
        self._back = seq
        for r in fresh.values():
            self._schedule(r.host, self._hosts[r.host])
        added = len(fresh)
        self._seen += added
        self._queued += added
        return added

    async def lease(self, limit: int) -> LeaseBatch:
        now = self._clock()
        leases: list[Lease] = []
        retries_due = self._retry_due is not None and self._retry_due <= now
        next_due = self._ready.next_due(self._hosts)
        if retries_due or (limit > 0 and next_due is not None and next_due <= now):
            with self._transaction() as conn:
                if retries_due:
                    self._promote_due_retries(conn, now)
                started: list[tuple[float, int]] = []
                while len(leases) < limit and (name := self._ready.pop_due(now, self._hosts)) is not None:
                    host = self._hosts[name]
                    row = conn.execute(_TAKE_NEXT, (host.id,)).fetchall()
                    if not row:
                        raise FrontierError(f"crawl state {self._path}: host {name} has no queued URL")
                    fp, url, depth, referrer, attempts, hops, self_redirects, kind, lastmod = row[0]
                    host.queued -= 1
                    host.in_flight += 1
                    host.last_start = now
                    started.append((now, host.id))
                    self._token += 1
                    request = Request(
                        url,
                        fp,
                        name,
                        depth,
                        referrer,
                        attempts,
                        hops,
                        self_redirects,
                        kind or "page",
                        lastmod,
                    )
                    lease = Lease(request, self._token)
                    self._leases[lease.token] = lease
                    leases.append(lease)
                    self._schedule(name, host)
                conn.executemany("UPDATE hosts SET last_start = ? WHERE id = ?", started)
        self._queued -= len(leases)
        return LeaseBatch(leases, self._wait_s(now))

    async def ack(self, lease: Lease, page: Page) -> bool:
        current = self._leases.get(lease.token)
        if current is None:
            return False
        fp = current.request.fp
        with self._transaction() as conn:
            if conn.execute(_FINISH, (fp,)).rowcount != 1:
                raise FrontierError(f"crawl state {self._path}: {current.request.url} was not leased")
            conn.execute("INSERT INTO records(fp, page) VALUES (?, ?)", (fp, page.to_json()))
        self._end(current)
        self._done += 1
        return True

    async def retry(self, lease: Lease, delay_s: float, *, self_redirect: bool = False) -> bool:
        current = self._leases.get(lease.token)
        if current is None:
            return False
        due = self._clock() + delay_s
        counter = "self_redirects" if self_redirect else "attempts"
        with self._transaction() as conn:
            conn.execute(
                f"UPDATE urls SET state = {WAITING}, {counter} = {counter} + 1, due = ?, seq = ? "
                "WHERE fp = ?",
                (due, self._back + 1, current.request.fp),
            )
        self._back += 1
        self._end(current)
        self._queued += 1
        if self._retry_due is None or due < self._retry_due:
            self._retry_due = due
        return True

    async def release(self, lease: Lease) -> bool:
        current = self._leases.get(lease.token)
        if current is None:
            return False
        with self._transaction() as conn:
            conn.execute(_TO_FRONT, (self._front - 1, current.request.fp))
        self._front -= 1
        self._hosts[current.request.host].queued += 1
        self._queued += 1
        self._end(current)
        return True

    def is_current(self, lease: Lease) -> bool:
        return lease.token in self._leases

    async def settle(self, request: Request, page: Page) -> bool:
        with self._transaction() as conn:
            if _seen(conn, [request.fp]):
                return False
            host = self._hosts.get(request.host) or self._new_host(conn, request.host)
            self._back += 1
            conn.execute(
                "INSERT INTO urls(fp, url, host, depth, referrer, attempts, state, seq, hops) "
                f"VALUES (?, ?, ?, ?, ?, ?, {DONE}, ?, ?)",
                (
                    request.fp,
                    request.url,
                    host.id,
                    request.depth,
                    request.referrer,
                    0,
                    self._back,
                    request.hops,
                ),
            )
            conn.execute("INSERT INTO records(fp, page) VALUES (?, ?)", (request.fp, page.to_json()))
        self._seen += 1
        self._done += 1
        return True

    async def observe(self, host: str, event: HostEvent) -> HostPace:
        state = self._hosts.get(host)
        if state is None:
            with self._transaction() as conn:
                state = self._new_host(conn, host)
        before = (state.pace.delay_s, state.blocked_until)
        due = state.due()
        state.observe(event, self._clock())
        pace = state.pace
        if state.due() != due:  # a new delay, a block, or a request that went out after its lease
            self._ready.repace(host, state, state.queued > 0)
        if (pace.delay_s, state.blocked_until) == before and pace.answers % _PACE_SAVE_EVERY:
            # The latency baseline moves with every answer, but only what schedules the host must
            # survive a kill at once (the last start is saved at each lease): a resumed crawl
            # relearns the rest within a few answers.
            return pace
        with self._transaction() as conn:
            conn.execute(
                "UPDATE hosts SET pace = ?, delay_s = ?, blocked_until = ? WHERE id = ?",
                (json.dumps(pace.to_json()), pace.delay_s, _stored(state.blocked_until), state.id),
            )
        return pace

    async def robots(self, host: str) -> RobotsState | None:
        row = self._query_one("SELECT body, reason, failures, until FROM robots WHERE host = ?", (host,))
        if row is None:
            return None
        body, reason, failures, until = row
        left = float(until) - self._clock()
        if left <= (0 if reason is None else -ROBOTS_FAILURES_KEPT_S):
            return None
        return RobotsState(body, reason, int(failures), max(0.0, left))

    async def set_robots(self, host: str, state: RobotsState) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO robots(host, body, reason, failures, until) VALUES (?, ?, ?, ?, ?)",
                (host, state.body, state.reason, state.failures, self._clock() + state.valid_for_s),
            )

    async def counts(self) -> FrontierCounts:
        return FrontierCounts(seen=self._seen, queued=self._queued, leased=len(self._leases), done=self._done)

    async def host_rows(self, limit: int) -> list[HostRow]:
        return host_rows(self._hosts, lambda host: host.queued, self._clock(), limit)

    async def hosts_waiting(self) -> int:
        return self._ready.waiting(self._clock(), self._hosts)

    async def aclose(self) -> None:
        """Close the file and release the lock; leases still held come back at the next open."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._failure = self._failure or "closed"
            try:
                conn.close()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            finally:
                if self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None

    # -- beyond the protocol: records, meta and status ------------------------------------------------

    async def committed_pages(self, start: int = 0) -> AsyncIterator[Page]:
        """The records committed by `ack`, in commit order, skipping the first `start` of them.

        At resume, the records committed after the last line the manifest got are the tail of this."""
        conn = self._connection()
        after = -1
        try:
            if start > 0:
                row = conn.execute("SELECT seq FROM records ORDER BY seq LIMIT 1 OFFSET ?", (start - 1,))
                first = row.fetchone()
                if first is None:
                    return
                after = first[0]
            while True:
                # Pages of a bounded size, so no read statement stays open across the caller's awaits.
                rows = conn.execute(
                    "SELECT seq, page FROM records WHERE seq > ? ORDER BY seq LIMIT ?", (after, _PAGE_BATCH)
                ).fetchall()
                for _, text in rows:
                    yield Page.from_dict(json.loads(text))
                if len(rows) < _PAGE_BATCH:
                    return
                after = rows[-1][0]
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    async def committed_count(self) -> int:
        """How many records `ack` has committed (the number of done URLs)."""
        row = self._query_one("SELECT count(*) FROM records", ())
        return 0 if row is None else int(row[0])

    async def get_meta(self, key: str) -> str | None:
        """The value stored under `key`, or None if it was never set."""
        row = self._query_one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    async def claim_meta(self, key: str, value: str) -> str | None:
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (key, value))
        return None if row is None else str(row[0])

    async def status(self) -> FrontierStatus:
        """URLs by state (`queued` includes `retrying`), failures by code, pages stored, hosts, and the
        `started` / `updated` meta values. This process holds the crawl: running until finished."""
        try:
            return _status(self._connection(), "running", self._clock())
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    # -- internals ------------------------------------------------------------------------------------

    def _load(self) -> None:
        """Create or check the schema, reclaim dead leases and rebuild the per-host state."""
        with self._transaction() as conn:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            elif not {"meta", "hosts", "urls", "records"} <= tables:
                raise FrontierError(f"crawl state {self._path} is not a crawlpool database")
            version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if version is None:
                raise FrontierError(f"crawl state {self._path} is not a crawlpool database")
            if version[0] in ("1", "2"):
                upgrades = (_UPGRADE_FROM_1 if version[0] == "1" else ()) + _UPGRADE_FROM_2
                for statement in upgrades:
                    conn.execute(statement)
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            elif version[0] != str(SCHEMA_VERSION):
                raise FrontierError(
                    f"crawl state {self._path} has schema version {version[0]}; this crawlpool reads "
                    f"version {SCHEMA_VERSION}"
                )
            conn.execute(_ROBOTS_TABLE)
            opens = int(conn.execute("SELECT value FROM meta WHERE key = 'opens'").fetchone()[0]) + 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'opens'", (str(opens),))
            self._token = opens << 32

            counts: dict[int, int] = {}
            low = high = 0
            for state, n, first, last in conn.execute(
                "SELECT state, count(*), min(seq), max(seq) FROM urls GROUP BY state"
            ):
                counts[state] = n
                low, high = min(low, first), max(high, last)
            self._front, self._back = low, high
            # Reclaim from the last to the first, each in front of the previous: original order kept.
            orphans = conn.execute(f"SELECT fp FROM urls WHERE state = {LEASED} ORDER BY seq DESC").fetchall()
            moves = [(self._front - i, fp) for i, (fp,) in enumerate(orphans, start=1)]
            conn.executemany(_TO_FRONT, moves)
            self._front -= len(moves)

            self._seen = sum(counts.values())
            self._done = counts.get(DONE, 0)
            self._queued = self._seen - self._done
            now = self._clock()
            # The --delay of the run that stored the paces: a floor no higher than it came from it,
            # not from a Crawl-delay, and gives way to this run's --delay, lower or higher.
            row = conn.execute("SELECT value FROM meta WHERE key = 'delay_s'").fetchone()
            stored_delay_s = float(row[0]) if row is not None else None
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('delay_s', ?)",
                (repr(self._politeness.delay_s),),
            )
            for host_id, name, last_start, pace, blocked_until in conn.execute(
                "SELECT id, host, last_start, pace, blocked_until FROM hosts"
            ).fetchall():
                self._hosts[name] = _Host(
                    id=host_id,
                    pace=self._stored_pace(pace, stored_delay_s),
                    last_start=NEVER if last_start is None else min(last_start, now),
                    blocked_until=NEVER if blocked_until is None else blocked_until,
                )
                self._host_ids = max(self._host_ids, host_id)
            by_id = {host.id: (name, host) for name, host in self._hosts.items()}
            for host_id, n in conn.execute(
                f"SELECT host, count(*) FROM urls WHERE state = {QUEUED} GROUP BY host"
            ):
                name, host = by_id[host_id]
                host.queued = n
                self._schedule(name, host)
            self._retry_due = conn.execute(f"SELECT min(due) FROM urls WHERE state = {WAITING}").fetchone()[0]

    def _stored_pace(self, stored: str | None, stored_delay_s: float | None) -> HostPace:
        """A host's pacing as stored, under this run's `--delay`: a floor the stored run's --delay set
        becomes this run's; a higher one (a Crawl-delay) stays, raised to this run's --delay if that
        is higher. (Without the stored run's --delay, from an older state, the floor is only raised.)"""
        floor_s = self._politeness.delay_s
        if stored is None:
            return HostPace(floor_s=floor_s)
        pace = HostPace.from_json(json.loads(stored))
        if stored_delay_s is not None and pace.floor_s <= stored_delay_s:
            return replace(pace, floor_s=floor_s)
        return replace(pace, floor_s=max(pace.floor_s, floor_s))

    def _new_host(self, conn: sqlite3.Connection, name: str) -> _Host:
        self._host_ids += 1
        conn.execute("INSERT INTO hosts(id, host) VALUES (?, ?)", (self._host_ids, name))
        host = self._hosts[name] = _Host(id=self._host_ids, pace=HostPace(floor_s=self._politeness.delay_s))
        return host

    def _schedule(self, name: str, host: _Host) -> None:
        self._ready.offer(name, host, host.queued > 0)

    def _end(self, lease: Lease) -> None:
        del self._leases[lease.token]
        name = lease.request.host
        host = self._hosts[name]
        host.in_flight -= 1
        self._schedule(name, host)

    def _promote_due_retries(self, conn: sqlite3.Connection, now: float) -> None:
        """Move WAITING rows that are due to the front of their hosts' queues, in due order (the last
        promoted comes first, as in memory.py)."""
        due = conn.execute(
            f"SELECT urls.fp, hosts.host FROM urls JOIN hosts ON hosts.id = urls.host "
            f"WHERE urls.state = {WAITING} AND urls.due <= ? ORDER BY urls.due, urls.seq",
            (now,),
        ).fetchall()
        moves = []
        for fp, name in due:
            self._front -= 1
            moves.append((self._front, fp))
            host = self._hosts[name]
            host.queued += 1
            self._schedule(name, host)
        conn.executemany(_TO_FRONT, moves)
        self._retry_due = conn.execute(f"SELECT min(due) FROM urls WHERE state = {WAITING}").fetchone()[0]

    def _wait_s(self, now: float) -> float | None:
        due = [t for t in (self._ready.next_due(self._hosts), self._retry_due) if t is not None]
        return max(0.0, min(due) - now) if due else None

    def _connection(self) -> sqlite3.Connection:
        if self._failure is not None or self._conn is None:
            raise FrontierError(f"crawl state {self._path} is {self._failure}; reopen it to continue")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        try:
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            # The in-memory state may have moved ahead of the rolled-back file: refuse further work.
            self._failure = "unusable after an error"
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the original error is the one worth reporting
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            raise

    def _query_one(self, sql: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = self._connection().execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        return row

    def _error(self, exc: sqlite3.Error) -> FrontierError:
        return _frontier_error(self._path, exc)


def _seen(conn: sqlite3.Connection, fps: list[int]) -> set[int]:
    """The fingerprints in `fps` that are already rows of `urls`."""
    seen: set[int] = set()
    for start in range(0, len(fps), _SEEN_MAX):
        chunk = fps[start : start + _SEEN_MAX]
        size = max(8, 1 << (len(chunk) - 1).bit_length())
        chunk += chunk[:1] * (size - len(chunk))  # padding repeats a member: IN ignores repeats
        seen.update(fp for (fp,) in conn.execute(_SEEN[size], chunk))
    return seen


def _stored(instant: float) -> float | None:
    return None if instant == NEVER else instant


def _frontier_error(path: Path, exc: sqlite3.Error) -> FrontierError:
    name = getattr(exc, "sqlite_errorname", "") or ""
    reason = _REASONS.get("_".join(name.split("_")[:2]), "a database error")
    detail = " ".join(str(exc).split())  # one line, whatever SQLite said
    return FrontierError(f"crawl state {path}: {reason} ({detail})")


def _take_lock(path: Path) -> int:
    """Hold an exclusive flock on `<path>.lock` for as long as the returned descriptor is open; the
    kernel drops it when the process dies, so a kill -9 never leaves the state locked."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise FrontierError(f"crawl state {path}: cannot create it ({exc.strerror or exc})") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise FrontierError(
            f"crawl state {path} is in use by another crawlpool process (pid {holder})"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise FrontierError(f"crawl state {path}: cannot lock {lock_path} ({exc.strerror or exc})") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _connect(path: Path) -> sqlite3.Connection:
    try:
        # isolation_level=None: transactions are the explicit BEGIN/COMMIT of each call, nothing implicit.
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise _frontier_error(path, exc) from exc
    try:
        # Exclusive: the flock already keeps every other process out, so SQLite need not lock the file
        # for each transaction, and WAL's index lives in heap memory rather than a -shm file.
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        conn.close()
        raise _frontier_error(path, exc) from exc
    return conn


def _status(conn: sqlite3.Connection, unfinished: CrawlState, now: float) -> FrontierStatus:
    """The status in `conn`; `now` is on the clock the pacing instants were stored on (wall time)."""
    by_state = dict(conn.execute("SELECT state, count(*) FROM urls GROUP BY state").fetchall())
    outcomes = conn.execute(
        f"SELECT {_ERROR_CODE} AS code, count(*), total(stored) FROM "
        "(SELECT json_extract(page, '$.error') AS e,"
        " json_extract(page, '$.path') IS NOT NULL AS stored FROM records)"
        " GROUP BY code ORDER BY code"
    ).fetchall()
    meta = dict(
        conn.execute("SELECT key, value FROM meta WHERE key IN ('started', 'updated', 'ended')").fetchall()
    )
    (hosts,) = conn.execute("SELECT count(*) FROM hosts").fetchone()
    paced = conn.execute("SELECT host, pace, blocked_until FROM hosts WHERE pace IS NOT NULL").fetchall()
    queued, leased = by_state.get(QUEUED, 0) + by_state.get(WAITING, 0), by_state.get(LEASED, 0)
    return FrontierStatus(
        state="finished" if queued == 0 and leased == 0 else unfinished,
        done=by_state.get(DONE, 0),
        seen=sum(by_state.values()),
        queued=queued,
        retrying=by_state.get(WAITING, 0),
        in_flight=leased,
        pages_stored=int(sum(stored for _, _, stored in outcomes)),
        failures={code: n for code, n, _ in outcomes if code is not None},
        hosts=hosts,
        started=meta.get("started"),
        updated=meta.get("updated"),
        ended=meta.get("ended"),
        backoff=backoff_rows(
            (host, HostPace.from_json(json.loads(pace)), (blocked or now) - now)
            for host, pace, blocked in paced
        ),
    )


def _last_write(path: Path) -> str | None:
    """When the state at `path` was last written (its WAL takes every commit; the file itself only
    checkpoints), as an ISO time in UTC like the `updated` meta value; None when neither exists.

    An empty WAL does not count: a reader (`status`, the dashboard) may touch it without writing."""
    mtimes = []
    for file in (path, path.with_name(path.name + "-wal")):
        try:
            stat = file.stat()
        except OSError:
            continue
        if stat.st_size or file == path:
            mtimes.append(stat.st_mtime)
    if not mtimes:
        return None
    return datetime.fromtimestamp(max(mtimes), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def running_pid(path: Path) -> str | None:
    """The pid of the process holding the crawl state at `path`, or None when no process holds it."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        return None
    finally:
        os.close(fd)


def read_status_at(path: Path) -> FrontierStatus:
    """The status of the crawl state at `path`, read without taking its lock or changing it.

    While another process holds the state (its exclusive lock keeps the file unreadable), only that:
    state running, `holder` its pid, no numbers. Otherwise the file is opened read-only: URLs a killed
    process had leased still count as in flight (a resume reclaims them), and an unfinished crawl is
    stopped. `updated` is the later of the crawl's own and the last write to the file, so a crawl
    that was killed (and one still running) has one. Raises FrontierError when the file cannot be
    read as a crawl state."""
    written = _last_write(path)
    pid = running_pid(path)
    if pid is not None:
        return FrontierStatus(state="running", holder=pid, updated=written)
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise _frontier_error(path, exc) from exc
    try:
        status = _status(conn, "stopped", time.time())
        return replace(status, updated=max(filter(None, (status.updated, written)), default=None))
    except sqlite3.Error as exc:
        raise _frontier_error(path, exc) from exc
    finally:
        conn.close()


def read_host_rows_at(path: Path, limit: int) -> list[HostRow]:
    """The `limit` busiest hosts of the crawl state at `path`, read-only (empty while another process
    holds it). One scan of the URLs: for the dashboard of a stopped crawl, which caches it."""
    if running_pid(path) is not None:
        return []
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise _frontier_error(path, exc) from exc
    now = time.time()
    try:
        rows = conn.execute(
            f"SELECT h.host, sum(u.state IN ({QUEUED}, {WAITING})) AS queued, sum(u.state = {LEASED}),"
            " h.pace, h.blocked_until FROM urls u JOIN hosts h ON u.host = h.id"
            f" WHERE u.state != {DONE} GROUP BY h.id ORDER BY queued DESC, h.host LIMIT ?",
            (limit,),
        ).fetchall()
    except sqlite3.Error as exc:
        raise _frontier_error(path, exc) from exc
    finally:
        conn.close()
    return [
        HostRow(
            host,
            int(queued),
            int(leased),
            HostPace.from_json(json.loads(pace)) if pace else HostPace(),
            max(0.0, (blocked or now) - now),
        )
        for host, queued, leased, pace, blocked in rows
    ]

"""The crawl's first process, serving its worker processes: it starts them once the crawl has proved
large, answers their frontier calls against the one frontier it holds, writes the records they commit,
and gives back the leases of one that dies.

    first process:     engine ──▶ frontier (SQLite/memory), manifest, progress, summary
                         ▲ calls over a socket pair (wire.py)
    worker × (N - 1):  engine ──▶ RemoteFrontier: fetch, robots.txt, parse, store pages

Both kinds of engine crawl, each with its share of the request slots.

Every guarantee of one process holds because every decision still happens in one place: the frontier
hands out leases (per-host limits and delays are exact, as with one process), the first process acks
each record and appends its manifest line in that order (exactly once, and `--resume` repairs the
manifest from the committed records as before), and `max_pages` caps the leases of all processes
together (`Engine.pages_left`). A worker that dies (kill -9, a crash) loses only its leases, which go
back to the queue untried; another worker takes its place, up to N - 1 times. If the first process dies,
its workers see their socket close and end at once; the frontier reclaims their leases on `--resume`.

A worker that asks for leases while it holds none and none is due waits here, not in a poll: its call is
answered when a lease ends or URLs arrive anywhere, or when the next host is due. The crawl is over
when the first process's engine says so; then every waiting call is answered empty, with `over`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import Any

from crawlpool.config import CrawlConfig
from crawlpool.engine import FOREIGN_LEASE_POLL_S, Engine
from crawlpool.errors import FrontierError
from crawlpool.frontier import Frontier, Lease, LeaseBatch
from crawlpool.multiproc.wire import BEAT_S, Channel, ChannelClosed
from crawlpool.stats import CrawlStats
from crawlpool.store import clear_temp_files
from crawlpool.warc import WarcWriter
from crawlpool.warc_index import WARC_DIR, repair_some_warc_files, warc_files

log = logging.getLogger(__name__)

START_AFTER_PAGES = 200  # a worker takes a second or so to start: a small crawl does without
# A crawl this far along, with more queued than in flight, may well grow large: its worker processes are
# launched then, and import crawlpool (0.3 s of a core) while this process crawls, so that they crawl as
# soon as they are started.
PREPARE_AFTER_PAGES = 50
START_CHECK_S = 0.25
BUSY_WINDOW_S = 0.5  # the crawl runs in one process while it fills; still long enough to tell a burst
BUSY_SHARE = 0.6  # of one core, over BUSY_WINDOW_S
EXIT_WAIT_S = 5.0  # after "over", a worker has nothing in flight: it ends at once
STOP_MARGIN_S = 5.0  # past grace_s, a worker that has not ended at a stop is ended
SILENT_S = 30.0  # a worker heard from less often than this (it beats every second) is hung: ended


@dataclass(eq=False)
class _Worker:
    process: asyncio.subprocess.Process
    channel: Channel
    leases: dict[int, Lease] = field(default_factory=dict)  # by token
    said_bye: bool = False
    joined: bool = False  # it made its first call: started, and crawling
    served: asyncio.Task[None] | None = None
    heard: float = 0.0  # loop time of its last message
    counters: dict[str, int] = field(default_factory=dict)  # its counters as it last reported them
    hung: bool = False  # ended by the watchdog
    pidfd: int | None = None  # the process itself, whatever happens to its pid

    def kill(self) -> None:
        """SIGKILL the worker if it still runs. Not `process.kill()`: Popen polls first, and so reaps
        a worker that has just died before asyncio's child watcher does, which then reports exit code
        255 (a killed worker was said to have exited with 255). A pidfd names this process even once
        it is reaped, where a bare pid could name another by then."""
        _kill(self.process, self.pidfd)

    def close_pidfd(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


class WorkerProcesses:
    """`count` crawl processes: `engine` (the first process's) and `count - 1` worker processes sharing
    its frontier. Until the crawl has proved large the first process crawls alone; as workers start
    crawling it hands each its share of the request slots and keeps one share for itself."""

    def __init__(
        self,
        engine: Engine,
        frontier: Frontier,
        cfg: CrawlConfig,
        seeds: list[str],
        count: int,
        *,
        archive: WarcWriter | None = None,
    ):
        self._engine = engine
        self._frontier = frontier
        self._cfg = cfg
        self._seeds = seeds
        self._extra = count - 1
        self._restarts_left = count - 1
        self._workers: list[_Worker] = []
        self._prepared: list[_Worker] = []  # launched, not yet told to crawl (see PREPARE_AFTER_PAGES)
        self._ending = False
        self._event = asyncio.Event()
        self.in_flight = 0
        self.hosts: Counter[str] = Counter()
        self.committed = 0  # records committed for worker processes
        # --warc: each worker writes its own files; what they committed, to cut what they did not
        # (a killed worker's last exchanges) once they have ended.
        self._archive = archive
        self._archived: dict[str, int] = {}
        self._warc_before = self._warc_names()

    # Elsewhere, as the engine counts it
    def changed(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def run(self, seeds: list[str]) -> CrawlStats:
        engine = self._engine
        engine.elsewhere = self
        crawl = asyncio.create_task(engine.run(seeds), name="crawlpool crawl")
        grow = asyncio.create_task(self._start_when_large(), name="crawlpool worker start")
        grow.add_done_callback(_said_if_failed)
        watchdog = asyncio.create_task(self._watch(), name="crawlpool worker watchdog")
        try:
            try:
                await asyncio.wait([crawl])
            except asyncio.CancelledError:
                await self._stop(crawl)
                raise
            self._end()
            await self._wait_for_exits(EXIT_WAIT_S)
            await self._repair_worker_archives()
            stats = crawl.result()
            if self._workers:
                log.info("worker processes committed %d of the %d records", self.committed, stats.records)
            return stats
        finally:
            grow.cancel()
            watchdog.cancel()
            try:
                await asyncio.gather(grow, return_exceptions=True)  # a launch under way ends first
                await self._discard_prepared()
            finally:  # cancelled meanwhile too: no worker outlives the crawl
                self._kill_all()
                for worker in self._workers:
                    if worker.served is not None:
                        worker.served.cancel()
                served = (w.served for w in self._workers if w.served)
                await asyncio.gather(grow, watchdog, *served, return_exceptions=True)
                for worker in self._workers:
                    worker.close_pidfd()

    async def _stop(self, crawl: asyncio.Task[CrawlStats]) -> None:
        """Stop every process gracefully: the engines give back what they did not start and let what is
        in flight finish (up to grace_s; a worker not ended STOP_MARGIN_S later is ended, its leases
        given back); a second cancellation ends them at once."""
        crawl.cancel()
        self._ending = True
        self.changed()
        for worker in self._workers:
            with contextlib.suppress(ChannelClosed):
                worker.channel.send(("stop",))
        try:
            _, late = await asyncio.wait([crawl, *self._exits()], timeout=self._cfg.grace_s + STOP_MARGIN_S)
            if late:
                self._kill_all()
                await asyncio.wait(late)
        except asyncio.CancelledError:
            crawl.cancel()
            self._kill_all()
            await asyncio.wait([crawl])
            raise
        with contextlib.suppress(FrontierError):  # what the workers gave back is queued again
            self._engine.stats.queued = (await self._frontier.counts()).queued
        await self._repair_worker_archives()

    async def _watch(self) -> None:
        """End a worker that stopped answering (hung, or paused with SIGSTOP): its leases would hold
        their hosts and the crawl forever. A worker beats every BEAT_S, whatever its pages do."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(BEAT_S)
            for worker in self._workers:
                alive = worker.process.returncode is None and not worker.said_bye and not worker.hung
                if alive and worker.joined and loop.time() - worker.heard > SILENT_S:
                    worker.hung = True
                    worker.kill()

    def _warc_names(self) -> set[str]:
        if self._archive is None:
            return set()
        return {f"{WARC_DIR}/{path.name}" for _, path in warc_files(self._cfg.output / WARC_DIR)}

    async def _repair_worker_archives(self) -> None:
        """Once every worker has ended, cut from the files they wrote the exchanges whose records did
        not commit (a killed worker's last ones: their URLs were fetched again elsewhere)."""
        if self._archive is None or any(w.process.returncode is None for w in self._workers):
            return  # without --warc, or a worker still writes (a resume repairs every file)
        theirs = self._warc_names() - self._warc_before - set(self._archive.files)
        paths = [self._cfg.output / name for name in sorted(theirs)]
        dropped = await asyncio.to_thread(repair_some_warc_files, paths, self._archived)
        if dropped:
            log.info("%d WARC records of worker processes without a committed record were dropped", dropped)

    def _end(self) -> None:
        self._ending = True
        self.changed()

    def _exits(self) -> list[asyncio.Task[Any]]:
        return [w.served for w in self._workers if w.served is not None and not w.served.done()]

    async def _wait_for_exits(self, timeout_s: float) -> None:
        exits = self._exits()
        if exits:
            await asyncio.wait(exits, timeout=timeout_s)

    def _kill_all(self) -> None:
        for worker in self._workers:
            worker.kill()

    async def _start_when_large(self) -> None:
        """Start the workers once `worth_starting` says so, asking every START_CHECK_S; launch them
        before, once `worth_preparing` says so (and let them go if a whole window then finds this process
        not busy enough, with `processes` auto)."""
        samples: deque[tuple[float, float]] = deque(maxlen=round(BUSY_WINDOW_S / START_CHECK_S) + 1)
        cfg = self._cfg
        discarded = False
        while True:
            if self._ending:
                return  # a stop, or the crawl's end: no more workers
            samples.append((time.monotonic(), time.process_time()))
            stored = self._engine.stats.pages
            if stored >= PREPARE_AFTER_PAGES:
                (wall0, cpu0), (wall1, cpu1) = samples[0], samples[-1]
                busy_so_far = (cpu1 - cpu0) / (wall1 - wall0) if wall1 > wall0 else None
                # Not known before a whole window: only a number asked for starts then.
                busy = busy_so_far if len(samples) == samples.maxlen else None
                queued = (await self._frontier.counts()).queued
                if worth_starting(stored, queued, cfg.concurrency, busy, cfg.processes):
                    break
                if not self._prepared:
                    # Once let go, never launched ahead again: a crawl whose load hovers near
                    # BUSY_SHARE would launch and end them over and over.
                    if not discarded and worth_preparing(
                        stored, queued, cfg.concurrency, busy_so_far, cfg.processes
                    ):
                        for _ in range(self._extra):
                            self._prepared.append(await self._launch())
                elif cfg.processes == "auto" and busy is not None and busy < BUSY_SHARE:
                    await self._discard_prepared()  # the crawl waits on its sites: they would idle
                    discarded = True
            await asyncio.sleep(START_CHECK_S)
        plural = "es" if self._extra > 1 else ""
        log.info(
            "crawling in %d processes: this one and %d worker process%s", self._extra + 1, self._extra, plural
        )
        for _ in range(self._extra):
            if self._ending:
                return
            await self._start_one()

    def _share_slots(self) -> None:
        """The first process gives each worker that crawls its share of the request slots and crawls with
        the slots left: one share once every worker crawls (it parses one page per turn of its loop, so
        it still answers the workers between pages), all of them while none does. (Serving N workers
        without crawling cost more CPU a page and a process's memory, and was no faster.)"""
        working = sum(w.joined and w.process.returncode is None and not w.said_bye for w in self._workers)
        share = self._worker_config().concurrency
        self._engine.slots = max(1, self._cfg.concurrency - working * share)

    def _worker_config(self) -> CrawlConfig:
        share = max(1, self._cfg.concurrency // (self._extra + 1))
        return replace(
            self._cfg, concurrency=share, processes=1, max_pages=None, parse_workers=0, dashboard=None
        )

    async def _start_one(self) -> None:
        """Tell a launched worker process to crawl (one launched before, if any)."""
        worker = self._prepared.pop() if self._prepared else await self._launch()
        level = logging.getLogger("crawlpool").getEffectiveLevel()
        worker.channel.send(("init", self._worker_config(), self._cfg, self._seeds, level))
        worker.served = asyncio.create_task(
            self._serve(worker), name=f"crawlpool worker {worker.process.pid}"
        )
        self._workers.append(worker)

    async def _discard_prepared(self) -> None:
        """End the worker processes launched and never told to crawl. They hold nothing yet (no lease, no
        file), so they are killed: one still loading crawlpool would see its socket close only once
        loaded, and the crawl's end would wait for that."""
        prepared, self._prepared = self._prepared, []
        try:
            for worker in prepared:
                worker.channel.close()
                worker.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EXIT_WAIT_S):
                    for worker in prepared:
                        await worker.process.wait()  # reaped
        finally:
            for worker in prepared:
                worker.kill()  # cancelled before the first kill reached it
                worker.close_pidfd()

    async def _launch(self) -> _Worker:
        """A worker process, started and connected, waiting for its "init" message."""
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "crawlpool.multiproc.worker",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                # The modules this process imported, wherever they came from (a notebook's sys.path too).
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
                start_new_session=True,  # Ctrl-C reaches the first process only, which stops the rest
            )
        finally:
            theirs.close()
        pidfd = _pidfd(process.pid)  # before any await: until asyncio reaps it, the pid is this process
        try:
            return _Worker(process, await Channel.over(ours), pidfd=pidfd)
        except BaseException:  # cancelled (the crawl ended) before it was ours to end
            _kill(process, pidfd)
            ours.close()
            if pidfd is not None:
                os.close(pidfd)
            raise

    async def _serve(self, worker: _Worker) -> None:
        held: set[asyncio.Task[None]] = set()
        try:
            loop = asyncio.get_running_loop()
            while True:
                message = await worker.channel.receive()
                worker.heard = loop.time()
                kind = message[0]
                if kind == "call":
                    _, call_id, method, args = message
                    if not worker.joined:
                        worker.joined = True
                        log.info("worker process %d is crawling", worker.process.pid)
                        self._share_slots()
                    if method == "lease":
                        task = asyncio.create_task(self._answer_lease(worker, call_id, args[0]))
                        held.add(task)
                        task.add_done_callback(held.discard)
                    else:
                        await self._answer(worker, call_id, method, args)
                elif kind == "log":
                    _, level, name, text, extra = message
                    logging.getLogger(name).log(level, "%s", text, extra=extra)
                elif kind in ("beat", "bye"):
                    worker.said_bye = kind == "bye"
                    self._count(worker, message[1])
        except ChannelClosed:
            pass
        finally:
            for task in held:
                task.cancel()
            worker.channel.close()
        await self._gone(worker)

    def _count(self, worker: _Worker, counters: dict[str, int]) -> None:
        """Add what a worker counted since its last report (requests, retries) to the crawl's stats."""
        stats = self._engine.stats
        for name, value in counters.items():
            setattr(stats, name, getattr(stats, name) + value - worker.counters.get(name, 0))
        worker.counters = counters

    async def _gone(self, worker: _Worker) -> None:
        """A worker's socket closed: what it still held goes back to the queue untried."""
        if not worker.said_bye:
            worker.kill()
        code = await worker.process.wait()
        worker.close_pidfd()
        if not worker.said_bye:  # a page it was writing when it died (reaped: no process has its pid)
            await asyncio.to_thread(clear_temp_files, self._cfg.output, worker.process.pid)
        leases = list(worker.leases.values())
        worker.leases.clear()
        for lease in leases:
            self._ended(lease)
            with contextlib.suppress(FrontierError):
                await self._frontier.release(lease)
        self._engine.wake()
        self.changed()
        self._share_slots()
        if worker.said_bye or self._ending:
            return
        if worker.hung:
            how = f"stopped answering for {SILENT_S:.0f} s and was ended"
        else:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        said = f"worker process {worker.process.pid} {how}; its {len(leases)} URLs in flight go back to "
        said += "the queue"
        if self._restarts_left > 0:
            self._restarts_left -= 1
            log.warning("%s; starting another", said)
            await self._start_one()
        elif any(w.process.returncode is None and not w.said_bye for w in self._workers):
            log.warning("%s; the crawl goes on with the worker processes left", said)
        else:
            log.warning("%s; no worker process is left: this process crawls on alone", said)

    def _ended(self, lease: Lease) -> None:
        self.in_flight -= 1
        host = lease.request.host
        self.hosts[host] -= 1
        if not self.hosts[host]:
            del self.hosts[host]

    async def _answer_lease(self, worker: _Worker, call_id: int, limit: int) -> None:
        try:
            batch = await self._lease(worker, limit)
        except FrontierError as exc:
            worker.channel.send(("reply", call_id, False, str(exc)))
            return
        with contextlib.suppress(ChannelClosed):
            worker.channel.send(("reply", call_id, True, batch))
            return
        for lease in batch.leases:  # the worker is gone: these were never sent
            worker.leases.pop(lease.token, None)
            self._ended(lease)
            await self._frontier.release(lease)

    async def _lease(self, worker: _Worker, limit: int) -> LeaseBatch:
        while not self._ending:
            allowed = min(limit, self._engine.pages_left())
            batch = await self._frontier.lease(allowed) if allowed > 0 else LeaseBatch([], None)
            if batch.leases:
                for lease in batch.leases:
                    worker.leases[lease.token] = lease
                    self.in_flight += 1
                    self.hosts[lease.request.host] += 1
                return batch
            if worker.leases:  # its own leases ending will make it ask again
                return LeaseBatch([], batch.wait_s if batch.wait_s is not None else FOREIGN_LEASE_POLL_S)
            event = self._event
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(batch.wait_s):
                    await event.wait()
        return LeaseBatch([], None)

    async def _answer(self, worker: _Worker, call_id: int, method: str, args: tuple[Any, ...]) -> None:
        try:
            value = await self._call(worker, method, args)
        except FrontierError as exc:
            # A cast's failure has no call to answer: every later call of the worker fails instead.
            worker.channel.send(("reply", call_id, False, str(exc)) if call_id >= 0 else ("lost", str(exc)))
            return
        if call_id >= 0:
            worker.channel.send(("reply", call_id, True, value))

    async def _call(self, worker: _Worker, method: str, args: tuple[Any, ...]) -> Any:
        frontier = self._frontier
        if method in ("ack", "retry", "release"):
            lease: Lease = args[0]
            if worker.leases.pop(lease.token, None) is not None:
                self._ended(lease)
            if method == "ack":
                page = args[1]
                self._count(worker, args[2])
                done = await self._engine.commit(lease, page)
                self.committed += done
                if not done and not self._ending:  # it takes back only a dead worker's leases
                    log.warning("worker process %d: its ack of %s was refused", worker.process.pid, page.url)
                if done and page.warc_file is not None and page.warc_offset is not None:
                    self._archived[page.warc_file] = max(
                        self._archived.get(page.warc_file, -1), page.warc_offset
                    )
            elif method == "retry":
                done = await frontier.retry(lease, args[1], self_redirect=args[2])
            else:
                done = await frontier.release(lease)
            self._engine.wake()
            self.changed()
            return done
        if method == "add":
            # A worker knows only the links it found itself: without this, every URL of a crawl in two
            # processes reached the frontier twice (each process adding it once), and a link found here
            # after a worker added it still went to the frontier too.
            fresh = self._engine.unknown(args[0])
            added = await frontier.add(fresh) if fresh else 0
            if added:
                self._engine.wake()
                self.changed()
            return added
        if method == "settle":
            settled = await self._engine.settle(args[0], args[1])
            self.committed += settled
            return settled
        if method == "counts":
            return await frontier.counts(), self._ending
        return await getattr(frontier, method)(*args)


def _said_if_failed(grow: asyncio.Task[None]) -> None:
    """Workers that could not start leave the crawl to this process: say so, and why."""
    if not grow.cancelled() and (exc := grow.exception()) is not None:
        log.error(
            "worker processes could not start (%s: %s); this process crawls alone", type(exc).__name__, exc
        )


def _kill(process: asyncio.subprocess.Process, pidfd: int | None) -> None:
    """SIGKILL `process` if it still runs, through its pidfd where there is one (see `_Worker.kill`)."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        else:
            os.kill(process.pid, signal.SIGKILL)


def _pidfd(pid: int) -> int | None:
    """A pidfd for our child `pid`, not yet reaped (asyncio reaps it only after telling its exit), or
    None where the system has none (Linux before 5.3, other systems)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def worth_preparing(
    stored: int, queued: int, concurrency: int, busy: float | None, processes: int | str
) -> bool:
    """Whether to launch the workers now, to start them later (`worth_starting`): the crawl may grow
    large (it stored PREPARE_AFTER_PAGES pages and has more queued than it may have in flight) and, with
    `processes` auto, this process has been busy so far (`busy`: over what it measured of its window)."""
    likely = stored >= PREPARE_AFTER_PAGES and queued > concurrency
    return likely and (processes != "auto" or (busy is not None and busy >= BUSY_SHARE))


def worth_starting(
    stored: int, queued: int, concurrency: int, busy: float | None, processes: int | str
) -> bool:
    """Whether to start the workers now: the crawl is large (it stored START_AFTER_PAGES pages and has
    more queued than it may have in flight) and, with `processes` auto, this process is what holds it
    back (it kept `busy` share of a core busy over the last BUSY_WINDOW_S; None before a whole window
    has passed): a crawl held back by its sites' speed or its per-host limits would only pay the
    workers' start-up and messages. A number of processes the user asked for is started on size alone,
    without waiting for a window: every second of one process is a core left idle."""
    large = stored >= START_AFTER_PAGES and queued > concurrency
    return large and (processes != "auto" or (busy is not None and busy >= BUSY_SHARE))

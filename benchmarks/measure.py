"""Run one variant in a fresh child process and account for it: wall time, CPU, peak RSS, its result.

CPU is the user + sys time of the child and all its descendants: the growth of this process's
RUSAGE_CHILDREN over the run (this process adopts the descendants that outlive the child, see
`become_subreaper`, so none is lost). Peak RSS is the larger of the child's own ru_maxrss (from
`os.wait4`) and the peak of its process tree's summed PSS, sampled every SAMPLE_S from /proc (PSS:
pages a fork shares with its parent are split between them, not counted twice), so a variant that
uses several processes is charged for all of them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.childresult import ChildResult

SAMPLE_S = 0.05
REAP_TIMEOUT_S = 30.0
PR_SET_CHILD_SUBREAPER = 36
STDERR_TAIL = 2000


@dataclass(frozen=True, slots=True)
class Measurement:
    returncode: int  # negative: killed by that signal
    timed_out: bool
    process_wall_s: float  # the whole child, interpreter start-up included
    cpu_s: float  # user + sys
    peak_rss_mb: float
    processes: int  # most processes seen at once in the child's tree
    result: ChildResult | None  # None: the child wrote none (or was not asked to)
    stderr_tail: str


class TreeSampler(threading.Thread):
    """Keeps the peak of the summed PSS of a process and its descendants, read from /proc."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self.most_processes = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_S):
            pids = _tree(self.pid)
            self.peak_kib = max(self.peak_kib, sum(_pss_kib(pid) for pid in pids))
            self.most_processes = max(self.most_processes, len(pids))


def tmpfs_scratch(needed_bytes: int) -> Path | None:
    """/dev/shm when it is there with room for `needed_bytes` (a container's is often 64 MB), else None:
    the system's temp dir then."""
    shm = Path("/dev/shm")
    try:
        return shm if shutil.disk_usage(shm).free >= needed_bytes else None
    except OSError:
        return None


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (Linux prctl PR_SET_CHILD_SUBREAPER), so the CPU
    of a variant's helper processes that outlive it (a multiprocessing forkserver and the workers it
    forked) is reaped here and counted. False where that is not possible."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def measure(
    command: Sequence[str],
    result_path: Path | None,
    *,
    timeout_s: float,
    cwd: Path,
    env: dict[str, str],
) -> Measurement:
    """Run `command` (which writes a ChildResult to `result_path`, unless that is None: the caller reads
    what the child wrote itself) and measure it. A child still running after `timeout_s` is killed with
    its whole process group.

    CPU is the growth of this process's RUSAGE_CHILDREN over the run: the child, and every descendant
    reaped by it or (see `become_subreaper`) by `_reap_group` here once the child has exited."""
    with tempfile.TemporaryFile() as stderr:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,  # its own process group, which its descendants inherit
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group start_new_session made for this child

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            sampler.stopped.set()
        process_wall_s = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        _reap_group(proc.pid)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        sampler.join()
        stderr.seek(0)
        tail = stderr.read().decode("utf-8", "replace")[-STDERR_TAIL:]
    return Measurement(
        returncode=proc.returncode,
        timed_out=timed_out.is_set(),
        process_wall_s=process_wall_s,
        cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        peak_rss_mb=max(usage.ru_maxrss, sampler.peak_kib) / 1024,
        processes=max(1, sampler.most_processes),
        result=ChildResult.read(result_path) if result_path is not None else None,
        stderr_tail=tail,
    )


def _reap_group(pgid: int) -> None:
    """Wait for what is left of process group `pgid` (the child's helpers), reaping those that have become
    this process's children; after REAP_TIMEOUT_S, kill the group."""
    deadline = time.monotonic() + REAP_TIMEOUT_S
    while members := _group_members(pgid):
        for pid in members:
            with contextlib.suppress(ChildProcessError):  # not (yet) this process's child
                os.waitpid(pid, os.WNOHANG)
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        time.sleep(0.01)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, ...
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def _tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    todo.extend(int(child) for child in fh.read().split())
        except OSError:
            continue  # it exited meanwhile
    return pids


def _pss_kib(pid: int) -> int:
    """The process's proportional set size (shared pages split among their sharers), else its RSS."""
    for path, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            with open(path) as fh:
                for line in fh:
                    if line.startswith(key):
                        return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return 0

"""A private Redis Cluster for the tests: 3 masters on free 127.0.0.1 ports, one per test session.

`cluster_url()` returns `redis+cluster://127.0.0.1:<port of the first node>`, starting the cluster on
first use: three `redis-server --cluster-enabled yes` (no persistence, one temp dir), joined by
`redis-cli --cluster create ... --cluster-replicas 0`, ready once every node reports
`cluster_state:ok`; the servers are stopped by pid when the session ends. Without redis-server or
redis-cli the calling test is skipped, or fails when `CRAWLPOOL_REQUIRE_REDIS=1` (as redis_server.py).
"""

from __future__ import annotations

import atexit
import importlib.util
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.redis_server import _unavailable

MASTERS = 3
SKIP_REASON = "needs redis-server and redis-cli on PATH for a local Redis Cluster"
_START_TIMEOUT_S = 20.0

_cluster_url: str | None = None
ports: list[int] = []  # the masters' ports, once started


def cluster_url() -> str:
    """The URL of the session's cluster, started on first call (see module doc)."""
    global _cluster_url
    if importlib.util.find_spec("redis") is None:
        _unavailable("needs the redis package (pip install 'crawlpool[redis]')")
    if _cluster_url is None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            _unavailable(SKIP_REASON)
        _cluster_url = _start(server, cli)
    return _cluster_url


def _free_pair() -> int:
    """A free port whose cluster bus port (+10000) is free too: below 55536, so no ephemeral `bind 0`."""
    for _ in range(200):
        port = random.randrange(20_000, 55_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
            return port
        except OSError:
            continue
    pytest.fail("no free pair of loopback ports for a cluster node")


def _cluster_state(port: int) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"CLUSTER INFO\r\n")
            return sock.recv(4096).decode(errors="replace")
    except OSError:
        return ""


def _start(server: str, cli: str) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="crawlpool-cluster-"))
    processes: list[subprocess.Popen[bytes]] = []

    def stop() -> None:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    for i in range(MASTERS):
        port = _free_pair()
        node_dir = workdir / f"node{i}"
        node_dir.mkdir()
        args = [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
        args += ["--cluster-config-file", str(node_dir / "nodes.conf"), "--dir", str(node_dir)]
        args += ["--save", "", "--appendonly", "no"]
        with (node_dir / "redis.log").open("wb") as log:
            processes.append(
                subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            )
        ports.append(port)
    deadline = time.monotonic() + _START_TIMEOUT_S

    def wait_until(ready: object, what: str) -> None:
        while not ready():  # type: ignore[operator]
            for process in processes:
                if process.poll() is not None:
                    output = "".join(
                        (workdir / f"node{i}" / "redis.log").read_text(errors="replace")[-1000:]
                        for i in range(MASTERS)
                    )
                    stop()
                    pytest.fail(f"a cluster node exited with {process.returncode} while {what}:\n{output}")
            if time.monotonic() > deadline:
                stop()
                pytest.fail(f"the test Redis Cluster timed out while {what}")
            # Waits on a node's process: returns at once if it died, else after 20 ms.
            try:
                processes[0].wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                pass

    wait_until(lambda: all(_cluster_state(port) for port in ports), "starting its nodes")
    nodes = [f"127.0.0.1:{port}" for port in ports]
    created = subprocess.run(
        [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
        capture_output=True,
        timeout=_START_TIMEOUT_S,
        check=False,
    )
    if created.returncode != 0:
        stop()
        pytest.fail(
            f"redis-cli --cluster create failed: {created.stdout[-2000:]!r} {created.stderr[-2000:]!r}"
        )
    wait_until(lambda: all("cluster_state:ok" in _cluster_state(port) for port in ports), "forming")
    atexit.register(stop)
    return f"redis+cluster://127.0.0.1:{ports[0]}"


async def evalsha_calls(port: int) -> int:
    """EVALSHA calls the node at `port` has run so far (INFO commandstats)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

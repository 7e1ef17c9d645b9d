"""What one page costs Redis: the Redis frontier driven at full speed by N simulated workers.

    python -m benchmarks.redis_frontier [--pages 20000] [--hosts 400] [--workers 1,2,4] [--cluster]
    python -m benchmarks.redis_frontier --memory 1000000     # bytes per seen and per queued URL

No HTTP: each worker is a separate process that runs the frontier calls the engine makes for a page
(engine.py: `lease` for free slots, then per URL `add` of the links its per-process known-links cache
has not handed over yet and `ack_answered`, the ack that carries the host's answer for its pacing; a
`--compare` tree from before it sends `observe` of the answer first, then `ack`), with a fake fetch
that returns at once.
The site is a deterministic graph of `--pages` pages over `--hosts` hosts of Zipf-like sizes (the biggest
host has a few thousand pages, most have tens), seeded with each host's page 0; every page has 50 links:
40 to its own host (one of them its successor, so every page is reachable), 8 to the first pages of
other hosts (navigation) and 2 to random pages anywhere, so that most links were seen before.

A private redis-server is started on a free 127.0.0.1 port (no persistence) and stopped at the end. For
each worker count the crawl runs from scratch and the table reports, per committed page:

| column | how |
|---|---|
| Redis CPU µs/page | `used_cpu_sys + used_cpu_user` of `INFO cpu`, after minus before, ÷ pages |
| commands/page | every call counted by `INFO commandstats` (after `CONFIG RESETSTAT`), commands run inside |
|  | scripts included, the benchmark's own INFO calls excluded, ÷ pages |
| round trips/page | writes to the socket by the workers' Redis clients (`send_packed_command`: one per call |
|  | or per pipeline), heartbeat and reaper included, ÷ pages |
| pages/s | pages ÷ wall time of the slowest worker (bounded here by the workers' own CPU: 2 cores) |
| in empty calls | Redis CPU per page ÷ Redis CPU per empty script call (`EVALSHA` of `return 1`, 10,000 |
|  | pipelined, measured on the same server right after the run): the same figure in a unit of |
|  | this server and this moment, so that machines (and a shared machine's drifting speed) compare |
| k instructions/page | with `--callgrind`: the instructions redis-server ran while the workers |
|  | crawled (valgrind's callgrind, zeroed before and dumped after), ÷ pages. Unlike CPU time, the |
|  | same on a busy or quiet machine, so a change of a few percent shows; the server runs some 50 |
|  | times slower, so use fewer `--pages` (5,000 take about a minute a row) |

With `--cluster`, the server is a local Redis Cluster of 3 masters (loopback ports, no persistence,
created with `redis-cli --cluster create`) and the crawl's keys are in its default 16 host buckets: CPU
and commands are summed over the masters, and a last column gives each master's share of the commands.

Each run checks completion and exactly-once: the crawl's `done` equals `--pages`, and the workers acked
`--pages` pages in all, each URL once. Each worker confirms its records as a crawl's worker does after
its manifest's fsync (here a no-op), every lease / 3 (10 s): `records left` is what the records
streams hold at the end, what trimming left of `--pages` records, and `bytes/record` their MEMORY
USAGE per entry.

`--memory N` adds N URLs over N / 100 hosts to a fresh crawl whose seen set has
max(8, ceil(log2(N / 256))) bucket bits (what redis_keys.py advises; `--seen-bits` to choose), one `add`
of 500 at a time, and reports `used_memory` growth, the MEMORY USAGE of the seen buckets and of the host
queues per URL, and Redis CPU per URL added (`--intset-entries K` sets Redis' set-max-intset-entries).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

LINKS_SAME_HOST = 40
LINKS_NAV = 8
LINKS_RANDOM = 2
NAV_PAGES = 10  # the first pages of a host: what navigation links point at
FETCH_S = 0.0  # how long the fake fetch takes (--fetch-ms)


@dataclass(frozen=True)
class Site:
    """Host h has sizes[h] pages `http://h<h>.invalid/p/<i>`; links are a pure function of the page."""

    sizes: tuple[int, ...]

    @classmethod
    def make(cls, pages: int, hosts: int) -> Site:
        weights = [1 / (h + 1) ** 0.9 for h in range(hosts)]
        total = sum(weights)
        sizes = [max(1, int(pages * w / total)) for w in weights]
        sizes[0] += pages - sum(sizes)  # the remainder goes to the biggest host
        return cls(tuple(sizes))

    @staticmethod
    def url(h: int, i: int) -> str:
        return f"http://h{h}.invalid/p/{i}"

    @staticmethod
    def parse(url: str) -> tuple[int, int]:
        host, _, page = url[len("http://h") :].partition(".invalid/p/")
        return int(host), int(page)

    def links(self, h: int, i: int) -> list[str]:
        rng = random.Random(h * 1_000_003 + i)
        size = self.sizes[h]
        out = [self.url(h, (i + 1) % size)]
        out += [self.url(h, rng.randrange(size)) for _ in range(LINKS_SAME_HOST - 1)]
        n = len(self.sizes)
        for _ in range(LINKS_NAV):
            other = rng.randrange(n)
            out.append(self.url(other, rng.randrange(min(NAV_PAGES, self.sizes[other]))))
        for _ in range(LINKS_RANDOM):
            other = rng.randrange(n)
            out.append(self.url(other, rng.randrange(self.sizes[other])))
        return out


# -- the worker process ------------------------------------------------------------------------------


def count_round_trips() -> list[int]:
    """Count every write of a request (one call, or one pipeline) on any redis.asyncio connection."""
    from redis.asyncio.connection import AbstractConnection

    counter = [0]
    send = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, command: object, check_health: bool = True) -> None:
        counter[0] += 1
        await send(self, command, check_health)  # type: ignore[arg-type]

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    return counter


async def run_worker(url: str, crawl_id: str, site: Site, index: int, concurrency: int) -> dict[str, object]:
    from crawlpool.frontier.base import Lease, Politeness
    from crawlpool.frontier.redis import RedisFrontier
    from crawlpool.policy.pacing import Answered
    from crawlpool.policy.rules import make_request
    from crawlpool.records import Page

    trips = count_round_trips()
    frontier = await RedisFrontier.open(
        url, crawl_id, Politeness(per_host=2, delay_s=0.0), worker_id=f"bench-w{index}", lease_ms=30_000
    )
    confirm_with = getattr(frontier, "confirm_with", None)  # absent from a --compare tree before it
    if confirm_with is not None:

        async def manifest_synced() -> None:
            return None

        confirm_with(manifest_synced)
    ack_answered = getattr(frontier, "ack_answered", None)  # the answer goes with the ack (engine.py)
    known: set[int] = set()
    acked: list[str] = []
    active = 0
    changed = asyncio.Event()

    async def page(lease: Lease) -> None:
        nonlocal active
        request = lease.request
        h, i = site.parse(request.url)
        await asyncio.sleep(FETCH_S)  # the fetch
        answer = Answered(200, 5, None)
        if ack_answered is None:  # a --compare tree before PacesOnAck: the engine observes first
            await frontier.observe(request.host, answer)
        follow = []
        for link in site.links(h, i):
            request_link = make_request(link, request.depth + 1, request.url)
            if request_link.fp in known:
                continue  # engine.py's known-links cache
            known.add(request_link.fp)
            follow.append(request_link)
        if follow:
            await frontier.add(follow)
        record = Page(
            url=request.url,
            final_url=request.url,
            status=200,
            content_type="text/html",
            depth=request.depth,
            referrer=request.referrer,
            path=f"h{h}.invalid/p/{i}.html",
            bytes=30_000,
            sha256="0" * 64,
            fetched_at="2026-01-01T00:00:00.000Z",
            elapsed_ms=5,
            error=None,
            links=len(site.links(h, i)),
        )
        acked_now = await (
            frontier.ack(lease, record) if ack_answered is None else ack_answered(lease, record, answer)
        )
        if acked_now:
            acked.append(request.url)
        active -= 1
        changed.set()

    tasks: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    try:
        while True:
            changed.clear()
            wait_s: float | None = None
            free = concurrency - active
            if free > 0:
                batch = await frontier.lease(free)
                for lease in batch.leases:
                    active += 1
                    task = asyncio.create_task(page(lease))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if batch.leases:
                    continue
                wait_s = batch.wait_s
            if active == 0:
                counts = await frontier.counts()
                if counts.queued == 0 and counts.leased == 0:
                    break
            try:
                async with asyncio.timeout(wait_s if wait_s is not None else 1.0):
                    await changed.wait()
            except TimeoutError:
                pass
        elapsed = time.monotonic() - started
    finally:
        await frontier.aclose()
    return {"acked": acked, "round_trips": trips[0], "elapsed_s": elapsed}


# -- the driver --------------------------------------------------------------------------------------


def start_redis(tmp: str, callgrind: bool = False) -> tuple[subprocess.Popen[bytes], int]:
    """A private redis-server; with `callgrind`, run under valgrind's callgrind (CALLGRIND_OUT in tmp)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("benchmarks.redis_frontier: needs redis-server on PATH (apt-get install redis-server)")
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    if callgrind:
        if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
            sys.exit("benchmarks.redis_frontier: --callgrind needs valgrind (apt-get install valgrind)")
        out = os.path.join(tmp, CALLGRIND_OUT)
        args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *args]
    proc = subprocess.Popen([*args, "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + (60 if callgrind else 5)
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)  # waiting for the server to listen
    proc.kill()
    sys.exit("benchmarks.redis_frontier: redis-server did not start")


async def server_figures(client: object) -> tuple[float, int, dict[str, int]]:
    """(CPU seconds, commands, calls by command) of the server so far."""
    cpu = await client.info("cpu")  # type: ignore[attr-defined]
    stats = await client.info("commandstats")  # type: ignore[attr-defined]
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    usec = {name.removeprefix("cmdstat_"): int(v["usec"]) for name, v in stats.items()}
    calls["usec_in_commands"] = sum(usec.values()) - usec.get("evalsha", 0)
    calls["usec_in_evalsha"] = usec.get("evalsha", 0)
    cpu_s = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
    calls["usec_sys_total"] = round(float(cpu["used_cpu_sys"]) * 1e6)
    return cpu_s, sum(v for k, v in calls.items() if not k.startswith("usec")), calls


async def seed(url: str, crawl_id: str, site: Site) -> None:
    from crawlpool.frontier.base import Politeness
    from crawlpool.frontier.redis import RedisFrontier
    from crawlpool.policy.rules import make_request

    seeder = await RedisFrontier.open(url, crawl_id, Politeness(per_host=2, delay_s=0.0), lease_ms=30_000)
    await seeder.add([make_request(site.url(h, 0), 0, None) for h in range(len(site.sizes))])
    await seeder.aclose()


async def child(mode: str, spec: str, site: Site, src: str | None) -> bytes:
    """Run this module as `--<mode> <spec>` in a new process, crawlpool imported from `src` if given."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    size = [
        "--pages",
        str(sum(site.sizes)),
        "--hosts",
        str(len(site.sizes)),
        "--fetch-ms",
        str(FETCH_S * 1000),
    ]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.redis_frontier",
        f"--{mode}",
        spec,
        *size,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        # Below Redis' priority: in a fleet Redis has a machine of its own; here four workers at full
        # speed on two cores would otherwise preempt it mid-script and inflate its CPU per page.
        preexec_fn=lambda: os.nice(10),
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"benchmarks.redis_frontier: a {mode} process failed ({proc.returncode})")
    return out


def start_cluster(tmp: str, masters: int = 3) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    """`masters` cluster-enabled redis-servers on loopback ports (each with its bus port +10000 free),
    joined into one cluster; returns once every node says cluster_state:ok."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        sys.exit("benchmarks.redis_frontier: --cluster needs redis-server and redis-cli on PATH")
    procs: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    rng = random.Random()
    while len(ports) < masters:
        port = rng.randrange(20_000, 55_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
        except OSError:
            continue
        node = os.path.join(tmp, f"node{port}")
        os.mkdir(node)
        args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", os.path.join(node, "nodes.conf")]
        procs.append(subprocess.Popen([*args, "--dir", node], stdout=subprocess.DEVNULL))
        ports.append(port)
    for port in ports:
        wait_for(lambda port=port: subprocess.run([cli, "-p", str(port), "ping"], capture_output=True).stdout)
    nodes = [f"127.0.0.1:{port}" for port in ports]
    subprocess.run(
        [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for port in ports:
        wait_for(
            lambda port=port: (
                b"cluster_state:ok"
                in subprocess.run([cli, "-p", str(port), "cluster", "info"], capture_output=True).stdout
            )
        )
    return procs, ports


CALLGRIND_OUT = "callgrind.out"


def callgrind(pid: int, command: str) -> None:
    """`callgrind_control --zero` or `--dump` of the redis-server that valgrind runs as `pid`."""
    subprocess.run(["callgrind_control", f"--{command}", str(pid)], capture_output=True, check=True)


def dumped_instructions(tmp: str) -> int:
    """The instructions counted in callgrind's newest dump (`<out>.<n>`, n counting up)."""
    dumps = sorted(glob.glob(os.path.join(tmp, CALLGRIND_OUT + ".*")), key=lambda f: int(f.rsplit(".", 1)[1]))
    with open(dumps[-1], encoding="utf-8") as dump:
        return next(int(line.split()[1]) for line in dump if line.startswith("totals:"))


def wait_for(ready: Any) -> None:
    deadline = time.monotonic() + 20
    while not ready():
        if time.monotonic() > deadline:
            sys.exit("benchmarks.redis_frontier: the cluster did not come up")
        time.sleep(0.05)  # polling a server that is starting


async def measure(
    ports: list[int],
    site: Site,
    workers: int,
    concurrency: int,
    src: str | None,
    traced: tuple[int, str] | None = None,
) -> dict[str, object]:
    """One crawl of the site by `workers` processes, crawlpool imported from `src` (None: this one);
    `ports`: one redis-server, or a cluster's masters; `traced`: (pid, dir) of a server under callgrind."""
    import redis.asyncio as aioredis

    cluster = len(ports) > 1
    url = f"redis+cluster://127.0.0.1:{ports[0]}" if cluster else f"redis://127.0.0.1:{ports[0]}/0"
    crawl_id = f"bench-{uuid.uuid4().hex[:8]}"
    await child("seed", f"{url} {crawl_id}", site, src)
    clients = [aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True) for port in ports]
    for node in clients:
        await node.config_resetstat()
    before = [await server_figures(node) for node in clients]
    if traced:
        callgrind(traced[0], "zero")
    started = time.monotonic()
    runs = [child("worker", f"{url} {crawl_id} {w} {concurrency}", site, src) for w in range(workers)]
    outputs = [json.loads(out) for out in await asyncio.gather(*runs)]
    wall = time.monotonic() - started
    instructions = None
    if traced:
        callgrind(traced[0], "dump")
        instructions = dumped_instructions(traced[1])
    after = [await server_figures(node) for node in clients]
    cpu0, cpu1 = sum(b[0] for b in before), sum(a[0] for a in after)
    # this function's own INFO calls after the reset (the reset itself is not counted)
    per_node = [a[1] - 2 for a in after]
    commands = sum(per_node)
    calls: dict[str, int] = {}
    for (_, _, node_calls), (_, _, node_calls0) in zip(after, before, strict=True):
        node_calls["info"] = node_calls.get("info", 0) - 2
        node_calls["usec_sys_total"] -= node_calls0["usec_sys_total"]
        for name, n in node_calls.items():
            calls[name] = calls.get(name, 0) + n
    done = await crawl_done(url, crawl_id)
    left, held = 0, 0
    for node in clients:  # every records stream: per worker and bucket (an older tree: one per bucket)
        async for key in node.scan_iter(match=f"crawlpool:*{crawl_id}*:records*", count=1000):
            left += int(await node.xlen(key))
            held += int(await node.memory_usage(key, samples=0) or 0)
    record_bytes = held / max(1, left)
    used_mb = sum([int((await node.info("memory"))["used_memory"]) for node in clients]) / 2**20
    empty_call_us = await empty_call_cost(clients[0])
    for node in clients:
        await node.flushall()  # the next run starts from an empty server
        await node.aclose()
    acked = [u for out in outputs for u in out["acked"]]
    pages = len(acked)
    expected = sum(site.sizes)
    problems = []
    if pages != expected or done != expected:
        problems.append(f"incomplete: {pages} acked, done={done}, expected {expected}")
    if len(set(acked)) != pages:
        problems.append(f"{pages - len(set(acked))} URL(s) acked twice")
    return {
        "workers": workers,
        "pages": pages,
        "cpu_us_per_page": (cpu1 - cpu0) * 1e6 / pages,
        "empty_call_us": empty_call_us,
        "instructions_per_page": instructions / pages if instructions is not None else None,
        "commands_per_page": commands / pages,
        "round_trips_per_page": sum(int(out["round_trips"]) for out in outputs) / pages,
        "pages_per_s": pages / wall,
        "bytes_per_record": round(record_bytes),  # the records streams' MEMORY USAGE ÷ their entries
        "records_left": left,  # entries the streams still hold after the crawl
        "used_memory_mb": round(used_mb, 1),  # the whole server (every master) after the crawl
        "commands_by_node": per_node,
        "top_commands": {k: round(v / pages, 2) for k, v in sorted(calls.items(), key=lambda c: -c[1])[:30]},
        "problems": problems,
    }


async def crawl_done(url: str, crawl_id: str) -> int:
    """The crawl's done count, as this checkout reads it (seen - queued - leased, on any tree's crawl)."""
    from crawlpool.frontier.base import Politeness
    from crawlpool.frontier.redis import RedisFrontier

    observer = await RedisFrontier.open(url, crawl_id, Politeness(), observe=True)
    try:
        return (await observer.counts()).done
    finally:
        await observer.aclose()


async def empty_call_cost(client: Any) -> float:
    """Redis CPU µs per EVALSHA of `return 1` on this server now: the unit of the 'in empty calls' column."""
    sha = await client.script_load("return 1")
    before = await client.info("cpu")
    calls = 10_000
    for _ in range(calls // 1000):
        pipe = client.pipeline(transaction=False)
        for _ in range(1000):
            pipe.evalsha(sha, 0)
        await pipe.execute()
    after = await client.info("cpu")
    used = sum(float(after[k]) - float(before[k]) for k in ("used_cpu_sys", "used_cpu_user"))
    return used * 1e6 / calls


def row(r: dict[str, Any]) -> str:
    unit = r.get("empty_call_us")
    line = (
        f"| {r['workers']} | {r['pages']:,} | {r['cpu_us_per_page']:.0f} "
        f"| {r['cpu_us_per_page'] / unit if unit else 0:.0f} | {r['commands_per_page']:.1f} "
        f"| {r['round_trips_per_page']:.2f} | {r['pages_per_s']:,.0f} "
        f"| {r.get('records_left', '')} | {r.get('bytes_per_record', '')} |"
    )
    by_node = r["commands_by_node"]
    if len(by_node) > 1:
        total = sum(by_node)
        line += " " + " / ".join(f"{n / total:.0%}" for n in by_node) + " |"
    if r.get("instructions_per_page") is not None:
        line += f" {r['instructions_per_page'] / 1000:,.0f} |"
    return line


async def memory(port: int, n: int, bits: int | None, intset_entries: int | None) -> None:
    """Bytes per seen and per queued URL in a crawl of `n` URLs (see the module docstring)."""
    import redis.asyncio as aioredis

    from crawlpool.frontier.base import Politeness
    from crawlpool.frontier.redis import RedisFrontier
    from crawlpool.policy.rules import make_request

    url = f"redis://127.0.0.1:{port}/0"
    if bits is None:
        bits = max(8, math.ceil(math.log2(max(1, n) / 256)))
    client = aioredis.from_url(url, decode_responses=True)
    if intset_entries is not None:
        await client.config_set("set-max-intset-entries", intset_entries)
    before = int((await client.info("memory"))["used_memory"])
    frontier = await RedisFrontier.open(
        url, "mem", Politeness(per_host=2, delay_s=0.0), seen_bucket_bits=bits, lease_ms=30_000
    )
    hosts = max(1, n // 100)
    batch = []
    cpu0 = await client.info("cpu")
    for i in range(n):
        batch.append(make_request(f"http://h{i % hosts}.invalid/p/{i // hosts}", 1, None))
        if len(batch) == 500 or i == n - 1:
            await frontier.add(batch)
            batch = []
    cpu = await client.info("cpu")
    redis_us = sum(float(cpu[k]) - float(cpu0[k]) for k in ("used_cpu_sys", "used_cpu_user")) * 1e6
    await frontier.aclose()
    grown = int((await client.info("memory"))["used_memory"]) - before
    sizes: dict[str, int] = {}
    async for key in client.scan_iter(match="crawlpool:{mem}:*", count=1000):
        kind = key.split(":", 2)[2].split(":")[0]
        sizes[kind] = sizes.get(kind, 0) + int(await client.memory_usage(key, samples=0) or 0)
    sample = range(0, 2**bits, 97)
    encodings = {await client.object("encoding", f"crawlpool:{{mem}}:seen:{b}") for b in sample}
    limit = (await client.config_get("set-max-intset-entries"))["set-max-intset-entries"]
    await client.flushall()
    await client.aclose()
    print(f"{n:,} URLs over {hosts:,} hosts, seen set in 2^{bits} buckets ({', '.join(sorted(encodings))}),")
    print(f"set-max-intset-entries {limit}; Redis CPU {redis_us / n:.1f} µs per URL added\n")
    print("| what | MB | bytes per URL |")
    print("|---|--:|--:|")
    print(f"| used_memory growth | {grown / 2**20:,.1f} | {grown / n:.1f} |")
    for kind, label in (("seen", "seen buckets (seen:*)"), ("q", "host queues (q:*)"), ("host", "host:*")):
        print(f"| {label} | {sizes.get(kind, 0) / 2**20:,.1f} | {sizes.get(kind, 0) / n:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--hosts", type=int, default=400)
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure, comma-separated")
    parser.add_argument("--concurrency", type=int, default=32, help="pages in flight per worker")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per row; the row is the median by CPU in empty calls"
    )
    parser.add_argument(
        "--compare", metavar="SRC", help="also measure the crawlpool in SRC (a src/ dir), runs interleaved"
    )
    parser.add_argument("--json", action="store_true", help="also print each row's raw figures as JSON")
    parser.add_argument(
        "--cluster", action="store_true", help="on a local 3-master Redis Cluster (crawl in 16 key buckets)"
    )
    parser.add_argument(
        "--fetch-ms", type=float, default=0.0, help="time each fake fetch takes (0: full speed, CPU-bound)"
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="run redis-server under valgrind's callgrind: adds its instructions per page (same on any load)",
    )
    parser.add_argument("--memory", type=int, metavar="N", help="measure memory per seen URL over N URLs")
    parser.add_argument("--seen-bits", type=int, help="--memory: the seen set's bucket bits")
    parser.add_argument("--intset-entries", type=int, help="--memory: Redis' set-max-intset-entries")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: 'url crawl_id index concurrency'
    parser.add_argument("--seed", help=argparse.SUPPRESS)  # internal: 'url crawl_id'
    args = parser.parse_args()
    global FETCH_S
    FETCH_S = args.fetch_ms / 1000
    site = Site.make(args.pages, args.hosts)
    if args.seed:
        url, crawl_id = args.seed.split()
        asyncio.run(seed(url, crawl_id, site))
        return
    if args.worker:
        url, crawl_id, index, concurrency = args.worker.split()
        result = asyncio.run(run_worker(url, crawl_id, site, int(index), int(concurrency)))
        print(json.dumps(result))
        return
    if args.memory:
        with tempfile.TemporaryDirectory() as tmp:
            proc, port = start_redis(tmp)
            try:
                asyncio.run(memory(port, args.memory, args.seen_bits, args.intset_entries))
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        return
    largest = site.sizes[0]
    print(f"{sum(site.sizes):,} pages over {len(site.sizes)} hosts (largest {largest:,}), 50 links each")
    sources: list[str | None] = [None] if args.compare is None else [args.compare, None]
    counts = [int(w) for w in args.workers.split(",")]
    results: dict[tuple[str | None, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        traced = None
        if args.cluster:
            if args.callgrind:
                sys.exit("benchmarks.redis_frontier: --callgrind measures one redis-server, not --cluster")
            procs, ports = start_cluster(tmp)
        else:
            proc, port = start_redis(tmp, callgrind=args.callgrind)
            procs, ports = [proc], [port]
            traced = (proc.pid, tmp) if args.callgrind else None
        try:
            for _ in range(args.repeat):
                for n in counts:
                    for src in sources:  # interleaved, so that a busy machine weighs on both alike
                        results.setdefault((src, n), []).append(
                            asyncio.run(measure(ports, site, n, args.concurrency, src, traced))
                        )
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
    for src in sources:
        print(
            f"\ncrawlpool from {src or 'this checkout'}"
            + (", 3-master cluster" if args.cluster else "")
            + ":\n"
        )
        head = "| workers | pages | Redis CPU µs/page | in empty calls | commands/page | round trips/page "
        head += "| pages/s | records left | bytes/record |"
        rule = "|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
        if args.cluster:
            head, rule = head + " commands per master |", rule + "--:|"
        if args.callgrind:
            head, rule = head + " k instructions/page |", rule + "--:|"
        print(head)
        print(rule)
        for n in counts:
            runs = sorted(
                results[src, n], key=lambda r: float(r["cpu_us_per_page"]) / float(r["empty_call_us"])
            )
            median = runs[(len(runs) - 1) // 2]
            print(row(median))
            for r in runs:
                for problem in r["problems"]:
                    print(f"  PROBLEM ({n} workers): {problem}")
            if args.json:
                print(json.dumps(median))


if __name__ == "__main__":
    main()

"""Serve the benchmark site on 127.0.0.1: nginx when it is installed, else `benchmarks/serve.py`.

Either server runs in its own process (one worker), started here and stopped by its pid, and is checked
to answer before anything is measured. nginx gets a minimal config in a temp directory: one worker, no
access log, sendfile, long keep-alive, the site as its root.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 15.0
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
error_log {tmp}/error.log;
pid {tmp}/nginx.pid;
events {{}}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    types {{ text/html html; }}
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


@dataclass(frozen=True, slots=True)
class Server:
    base: str  # http://127.0.0.1:PORT, no trailing slash
    name: str  # what serves it, for the report
    pid: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_site(root: Path, max_requests: int, prefer_nginx: bool = True) -> Iterator[Server]:
    """Serve `root` until the block ends. `max_requests` bounds the aiohttp fallback (nginx is bounded by
    the block: it is stopped when the block ends)."""
    nginx = shutil.which("nginx") if prefer_nginx else None
    with tempfile.TemporaryDirectory(prefix="crawlpool-bench-server-") as tmp:
        if nginx is not None:
            port = free_port()
            conf = Path(tmp) / "nginx.conf"
            conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, root=root.resolve()))
            command = [nginx, "-p", tmp, "-c", str(conf), "-e", f"{tmp}/error.log"]
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            name = f"nginx ({_nginx_version(nginx)}, 1 worker)"
        else:
            command = [
                sys.executable,
                "-m",
                "benchmarks.serve",
                str(root),
                "--max-requests",
                str(max_requests),
            ]
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT
            )
            assert proc.stdout is not None
            port = int(proc.stdout.readline() or 0)
            name = "aiohttp (benchmarks/serve.py, 1 process)"
        try:
            server = Server(f"http://127.0.0.1:{port}", name, proc.pid)
            _wait_until_ready(server, proc)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _nginx_version(nginx: str) -> str:
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10, check=False)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ") or "nginx"


def _wait_until_ready(server: Server, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last_error = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            errors = proc.stderr.read() if proc.stderr is not None else ""
            raise RuntimeError(f"{server.name} exited with {proc.returncode} before serving: {errors!r}")
        try:
            with _DIRECT.open(server.base + "/", timeout=2) as resp:
                ctype = resp.headers.get("Content-Type", "")
                if resp.status == 200 and ctype.startswith("text/html"):
                    return
                last_error = f"GET / gave {resp.status} {ctype}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise RuntimeError(
        f"{server.name} did not serve {server.base}/ within {READY_TIMEOUT_S:.0f} s: {last_error}"
    )

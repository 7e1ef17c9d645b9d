"""Serve the benchmark site on 127.0.0.1: nginx when it is installed, else `benchmarks/serve.py`.

Either server runs in its own process (one worker), started here and stopped by its pid, and is checked
to answer before anything is measured. nginx gets a minimal config in a temp directory: one worker, no
access log, sendfile, long keep-alive, the site as its root (`start_nginx`, which benchmarks/doc_sites.py
also uses, with an access log and the system's MIME types).
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

MIME_TYPES = Path("/etc/nginx/mime.types")  # Debian's nginx-common
NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
error_log {tmp}/error.log;
pid {tmp}/nginx.pid;
events {{}}
http {{
{logging}
    sendfile on;
    keepalive_requests 100000;
{types}
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
            proc, port, name = start_nginx(nginx, root, Path(tmp))
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
            wait_until_ready(server, proc)
            yield server
        finally:
            stop(proc)


def start_nginx(
    nginx: str, root: Path, tmp: Path, *, access_log: Path | None = None, system_types: bool = False
) -> tuple[subprocess.Popen[str], int, str]:
    """Start nginx in the foreground (`daemon off;`, one process) serving `root` on a free 127.0.0.1 port,
    its config and temp files in `tmp`. `access_log`: one line a request (`STATUS "REQUEST LINE"`), else
    none. `system_types`: the system's MIME types (when installed) instead of html alone.
    Returns the process, its port and a name for reports."""
    port = free_port()
    logging = (
        f"    log_format requests '$status \"$request\"';\n    access_log {access_log} requests;"
        if access_log is not None
        else "    access_log off;"
    )
    types = (
        f"    include {MIME_TYPES};"
        if system_types and MIME_TYPES.is_file()
        else "    types { text/html html; }"
    )
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, root=root.resolve(), logging=logging, types=types))
    command = [nginx, "-p", str(tmp), "-c", str(conf), "-e", f"{tmp}/error.log"]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, port, f"nginx ({_nginx_version(nginx)}, 1 worker)"


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop a server started here, by its pid: SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _nginx_version(nginx: str) -> str:
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10, check=False)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ") or "nginx"


def wait_until_ready(server: Server, proc: subprocess.Popen[str]) -> None:
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

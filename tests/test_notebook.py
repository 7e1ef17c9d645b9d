"""examples/notebook.ipynb runs for real: a Jupyter kernel on this interpreter executes it as shipped (it
serves its own demo site), again (a second run is a new crawl), and against the local test site, which
this test's loop keeps serving while nbclient drives the kernel."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.site import EXPECTED

ROOT = Path(__file__).parents[1]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"
KERNEL = "crawlpool-test"
CELL_TIMEOUT_S = 120

_MISSING = [
    name
    for name in ("nbclient", "nbformat", "ipykernel", "pandas", "matplotlib")
    if importlib.util.find_spec(name) is None
]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(_MISSING),
        reason=f"the notebook test needs {', '.join(_MISSING)}: pip install -e '.[test,notebook]'",
    ),
]


def _install_kernel(jupyter_path: Path) -> None:
    """A kernel spec for this very interpreter, found through JUPYTER_PATH, so the notebook runs on the
    venv under test whatever `python3` kernel the machine has."""
    spec = jupyter_path / "kernels" / KERNEL
    spec.mkdir(parents=True)
    pythonpath = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "crawlpool tests",
        "language": "python",
        # The checkout under test, and figures as PNG outputs whatever MPLBACKEND the shell has.
        "env": {"PYTHONPATH": pythonpath, "MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    }
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")


def _cell(nb: Any, cell_id: str) -> Any:
    return next(cell for cell in nb.cells if cell.get("id") == cell_id)


def _stdout(cell: Any) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


async def test_the_notebook_crawls_its_demo_site_twice_then_a_given_site_and_plots(
    site: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Everything Jupyter and IPython write goes under tmp_path; JUPYTER_PLATFORM_DIRS=1 also opts in to
    # the platformdirs paths that older jupyter_core versions warn about (a DeprecationWarning, an error
    # here) when it is unset.
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    _install_kernel(tmp_path / "jupyter")
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code_cells), "saved with outputs"
    parameters = code_cells[0]
    assert "parameters" in parameters.metadata.get("tags", [])
    shipped = parameters.source
    assert re.search(r"^SITE = None\b", shipped, re.MULTILINE), "the notebook does not run offline as shipped"
    assert re.search(r'^OUTPUT_ROOT = "output"', shipped, re.MULTILINE)
    runs = tmp_path / "runs"  # OUTPUT_ROOT, in place of the notebook's own examples/output
    parameters.source = shipped.replace('OUTPUT_ROOT = "output"', f"OUTPUT_ROOT = {str(runs)!r}")

    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # One kernel, all cells run three times over, as "Run All" again does. Same loop as the test site's
    # server: the kernel's requests are served while this awaits. The client owns its kernel manager, so
    # the kernel is shut down when the block ends or raises.
    async with client.async_setup_kernel():
        # As shipped: the notebook serves its demo site and crawls it, offline.
        first = await _run_all(client, runs)
        _assert_demo_crawl(nb, first)
        # Again, unchanged: a new crawl in a new directory, not "already holds a crawl".
        second = await _run_all(client, runs)
        assert second != first
        _assert_demo_crawl(nb, second)
        # Pointed at a site of one's own.
        assert site.port is not None
        parameters.source += f'\nSITE = "http://127.0.0.1:{site.port}/"\n'
        _assert_test_site_crawl(nb, await _run_all(client, runs), site.port)
    assert client.km is None, "the kernel was not shut down"


def test_the_notebooks_default_output_is_ignored_by_git() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    probe = "examples/output/notebook-20270101-000000-000000/manifest.jsonl"
    ignored = subprocess.run(["git", "check-ignore", "-q", probe], cwd=ROOT, check=False)
    assert ignored.returncode == 0, f"{probe} is not git-ignored"


async def _run_all(client: Any, runs: Path) -> Path:
    """Execute every cell in the client's kernel; the output directory this run made."""
    before = _dirs(runs)
    for index, cell in enumerate(client.nb.cells):
        await client.async_execute_cell(cell, index)
    (output,) = _dirs(runs) - before
    assert _stdout(_cell(client.nb, "site")).strip().endswith(f"into {output}")
    return output


def _dirs(root: Path) -> set[Path]:
    return set(root.iterdir()) if root.exists() else set()


def _assert_demo_crawl(nb: Any, output: Path) -> None:
    from crawlpool.demo import PAGES

    records = [
        json.loads(line) for line in (output / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    failed = {
        record["url"].split("/", 3)[3]: record["error"].split(":")[0] for record in records if record["error"]
    }
    assert failed == {"missing.html": "http_4xx", "private/notes.html": "robots"}
    assert len(records) == len(PAGES) + 2  # every page, /data.csv and /missing.html
    assert f"RangeIndex: {len(records)} entries" in _stdout(_cell(nb, "dataframe"))
    plots = _cell(nb, "plots").outputs
    assert any(o.output_type == "display_data" and "image/png" in o.data for o in plots), plots
    assert str(output) in _cell(nb, "cleanup").outputs[0].data["text/plain"]


def _assert_test_site_crawl(nb: Any, output: Path, port: int) -> None:
    manifest = (output / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(manifest) == len(EXPECTED)
    # Without the token header the private page is refused, so it is not stored.
    stored = sum(1 for path, (_, _, kept) in EXPECTED.items() if kept and path != "/private")
    info = _stdout(_cell(nb, "dataframe"))  # df.info(): one row per record, `path` set if stored
    assert f"RangeIndex: {len(EXPECTED)} entries" in info, info
    assert re.search(rf"\bpath\s+{stored} non-null\b", info), info
    assert re.search(rf"\bfetched_at\s+{len(EXPECTED)} non-null\s+datetime64\[\w+, UTC\]", info), info
    failed = [path for path, (_, code, _) in EXPECTED.items() if code is not None] + ["/private"]
    failures = _cell(nb, "failures").outputs[0].data["text/plain"]
    assert all(f"127.0.0.1:{port}{path}" in failures for path in failed), failures
    assert f"127.0.0.1:{port}/a.html" not in failures, failures
    plots = _cell(nb, "plots").outputs
    assert any(o.output_type == "display_data" and "image/png" in o.data for o in plots), plots

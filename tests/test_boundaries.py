"""The Frontier protocol is the only way to a backend: no module of the package outside
`crawlpool/frontier/` names a backend class or imports a backend module."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "crawlpool"
BACKEND_NAMES = re.compile(
    r"\b(?:Sqlite|Redis|Memory)Frontier\b|crawlpool\.frontier\.(?:sqlite|redis|memory)\b"
)


def test_no_module_outside_frontier_names_a_backend() -> None:
    modules = [path for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] != "frontier"]
    assert len(modules) > 10, f"no modules found under {PACKAGE}"
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in modules
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if BACKEND_NAMES.search(line)
    ]
    assert offenders == [], "backends reached past the Frontier protocol:\n" + "\n".join(offenders)

"""One module per Frontier backend under test; the contract suite runs against every module here.

Each module defines `open_backend(politeness, clock, tmp_path) -> AsyncContextManager[Frontier]`
(it may call pytest.skip when the backend's service is not available) and a `NAME`.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def backend_modules() -> list[ModuleType]:
    return [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)
    ]

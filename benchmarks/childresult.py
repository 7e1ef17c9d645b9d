"""What a variant's child process reports to the harness: one JSON object in a file the harness names.

Every child (crawlpool, the bare loop, Scrapy) checks its own coverage against the site's known URL list,
so a variant that misses pages, or stores something else, is flagged in the table.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.sitegen import page_urls


@dataclass(frozen=True, slots=True)
class ChildResult:
    pages: int  # distinct site pages stored with status 200
    expected: int  # the site's page count
    missing: int  # site pages not stored
    extra: int  # URLs stored that are not site pages
    errors: int  # requests that failed or gave a status other than 200
    wall_s: float  # the crawl itself, measured inside the child (no interpreter start-up)
    requests: int = 0  # requests sent, when the variant knows (repeats of a URL included)

    @classmethod
    def check(
        cls, stored: Iterable[str], base: str, n: int, *, errors: int, wall_s: float, requests: int = 0
    ) -> ChildResult:
        """Compare the URLs a variant stored with the site's N page URLs."""
        got, expected = set(stored), set(page_urls(base, n))
        return cls(
            pages=len(got & expected),
            expected=n,
            missing=len(expected - got),
            extra=len(got - expected),
            errors=errors,
            wall_s=wall_s,
            requests=requests,
        )

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> ChildResult | None:
        """The result a child wrote, or None if it wrote none (it crashed or was killed)."""
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return cls(**data)


def child_parser(doc: str | None) -> argparse.ArgumentParser:
    """The arguments every measured child process takes: the site, where to write, where to report."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True)
    parser.add_argument("--pages", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    return parser

"""The variants one benchmark run measures, and which of them the installed crawlpool can run.

crawlpool is measured for every frontier in FRONTIERS and extractor in EXTRACTORS, and, when
`CrawlConfig` has a `parse_workers` field, with 0 workers and with its default. Options are found by
asking the installed `CrawlConfig` (its fields, and whether it accepts a value), never assumed, so a
frontier, a `parser` or `parse_workers` that lands later is measured without a change here; until
then its row says "n/a (not built)". The ceilings are the bare aiohttp loop, without parsing and with
each extractor inline; Scrapy runs from its own virtualenv when one is there.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawlpool import CrawlConfig, UsageError, links

FRONTIERS = ("memory", "sqlite")
EXTRACTORS = ("bs4", "lxml")
DEFAULT_SCRAPY_PYTHON = Path("/tmp/scrapy-venv/bin/python")
NOT_BUILT = "n/a (not built)"


@dataclass(frozen=True, slots=True)
class Variant:
    key: str  # stable id, also in latest.json: "crawlpool/sqlite/bs4/default", "bare/lxml", "scrapy"
    kind: str  # crawlpool | bare | scrapy | wget
    python: str  # the interpreter its child runs under
    module: str  # the child's module, run with -m
    args: tuple[str, ...] = ()  # the child's own options (the harness adds site, output and concurrency)
    frontier: str = ""
    extractor: str = ""  # bs4, lxml, or "" for none
    workers: str = ""  # parse workers: "default", "default (N)", "0", or "" when there is no such option
    processes: str = ""  # crawl processes: "auto", "1", or "" when there is no such option
    unavailable: str | None = None  # why it cannot run here, shown in its row
    ceiling: str | None = None  # key of the bare loop it is compared with
    baseline: str | None = None  # key of the memory-frontier twin of a sqlite variant

    @property
    def label(self) -> str:
        return {"crawlpool": "crawlpool", "bare": "bare aiohttp loop", "scrapy": "Scrapy", "wget": "wget -r"}[
            self.kind
        ]


def all_variants(scrapy_python: Path = DEFAULT_SCRAPY_PYTHON) -> list[Variant]:
    """Every variant, in the order a round runs them: ceilings, crawlpool, Scrapy."""
    return [*bare_variants(), *crawlpool_variants(), scrapy_variant(scrapy_python), wget_variant()]


def bare_variants() -> list[Variant]:
    found = []
    for extractor in ("", *EXTRACTORS):
        name = "extract_links" if extractor == "bs4" else f"extract_links_{extractor}"
        missing = extractor and not hasattr(links, name)
        found.append(
            Variant(
                key=f"bare/{extractor or 'none'}",
                kind="bare",
                python=sys.executable,
                module="benchmarks.bare_loop",
                args=("--extract", extractor) if extractor else (),
                extractor=extractor,
                unavailable=f"{NOT_BUILT}: no crawlpool.links.{name}" if missing else None,
            )
        )
    return found


def crawlpool_variants() -> list[Variant]:
    fields = {f.name: f for f in dataclasses.fields(CrawlConfig)}
    common = {k: v for k, v in {"robots": False, "retries": 0}.items() if k in fields}
    found = []
    for frontier in FRONTIERS:
        for extractor in EXTRACTORS:
            for (workers, workers_options), (processes, process_options) in _choices(fields, frontier):
                options: dict[str, Any] | None = None
                parser_options, unavailable = _parser_options(extractor, fields)
                if parser_options is not None:
                    options = {
                        **common,
                        "frontier": frontier,
                        **parser_options,
                        **workers_options,
                        **process_options,
                    }
                    unavailable = refused(options)
                suffix = ("/0" if workers == "0" else "/default") + ("/p1" if processes == "1" else "")
                found.append(
                    Variant(
                        key=f"crawlpool/{frontier}/{extractor}{suffix}",
                        kind="crawlpool",
                        python=sys.executable,
                        module="benchmarks.crawlpool_run",
                        args=("--options", json.dumps(options)) if options is not None else (),
                        frontier=frontier,
                        extractor=extractor,
                        workers=workers,
                        processes=processes,
                        unavailable=unavailable,
                        ceiling=f"bare/{extractor}",
                        baseline=f"crawlpool/memory/{extractor}{suffix}" if frontier != "memory" else None,
                    )
                )
    return found


def scrapy_variant(python: Path) -> Variant:
    unavailable = None
    if not python.exists():
        unavailable = f"not installed ({python} missing)"
    else:
        check = subprocess.run(
            [str(python), "-c", "import scrapy"], capture_output=True, timeout=60, check=False
        )
        if check.returncode != 0:
            unavailable = f"cannot import scrapy with {python}"
    return Variant(
        key="scrapy",
        kind="scrapy",
        python=str(python),
        module="benchmarks.scrapy_run",
        extractor="Scrapy's own",
        unavailable=unavailable,
    )


def wget_variant() -> Variant:
    """GNU wget, the one-request-at-a-time C baseline issue 14 measures crawlpool against."""
    return Variant(
        key="wget",
        kind="wget",
        python=sys.executable,
        module="benchmarks.wget_run",
        extractor="wget's own",
        unavailable=None if shutil.which("wget") else "not installed (Debian: apt-get install wget)",
    )


def _choices(
    fields: dict[str, dataclasses.Field[Any]], frontier: str
) -> list[tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]]]:
    """Each (parse workers, processes) setting measured: every parse_workers choice with the default
    processes, and, with a `processes` field, the default parse workers in one process too (SQLite)."""
    workers = _worker_choices(fields)
    default_processes = ("auto", {}) if "processes" in fields else ("", {})
    found = [(w, default_processes) for w in workers]
    if "processes" in fields and frontier == "sqlite":
        found.append((workers[0], ("1", {"processes": 1})))
    return found


def _worker_choices(fields: dict[str, dataclasses.Field[Any]]) -> list[tuple[str, dict[str, Any]]]:
    """("label", options) for each parse_workers setting measured: the default, and 0 if that differs."""
    field = fields.get("parse_workers")
    if field is None:
        return [("", {})]
    default = field.default
    if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    if default == 0:
        return [("default (0)", {})]
    label = "default" if default is None else f"default ({default})"  # None: the config picks a number
    return [(label, {}), ("0", {"parse_workers": 0})]


def _parser_options(
    extractor: str, fields: dict[str, dataclasses.Field[Any]]
) -> tuple[dict[str, Any] | None, str | None]:
    """The options choosing `extractor`, or (None, why not)."""
    field = fields.get("parser")
    if field is None:
        return ({}, None) if extractor == "bs4" else (None, f"{NOT_BUILT}: CrawlConfig has no `parser`")
    why = refused({"parser": extractor})
    if why is None:
        return {"parser": extractor}, None
    if extractor == "bs4" and field.default != "lxml":
        return {}, None  # the default parser is Beautiful Soup under another name
    return None, why


def refused(options: dict[str, Any], config: type[Any] = CrawlConfig) -> str | None:
    """None if the installed CrawlConfig (or `config`) accepts `options`, else why not."""
    try:
        config(**options)
    except (UsageError, TypeError, ValueError) as exc:
        return f"{NOT_BUILT}: {exc}"
    return None

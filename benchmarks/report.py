"""Turn measurements into the results table, the issue's target checks, `latest.md` and `latest.json`.

Each variant's figures come from one of its runs: the median run by pages/s (the lower middle one for
an even number of rounds), so all of a row's numbers belong to the same run. Ratios compare pages/s.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.measure import Measurement
from benchmarks.variants import Variant

# The figure for Scrapy on this kind of site, shown when Scrapy cannot be measured here.
SCRAPY_PUBLISHED = {"pages_per_s": 125.0, "cpu_ms_per_page": 8.0}
DEFAULT = "crawlpool/sqlite/bs4/default"  # the default config: sqlite frontier, bs4, default workers
MEMORY = "crawlpool/memory/bs4/default"
LXML = "crawlpool/sqlite/lxml/default"
ONE_PROCESS = DEFAULT + "/p1"  # --processes 1
RSS_TARGET_PAGES = 20_000
RSS_TARGET_MB = 200  # all processes together (issue 14)
RSS_ONE_PROCESS_MB = 120  # one process (issue 6)
LXML_CPU_TARGET_MS = 0.8
# What the targets compare: `--small` runs only these (Scrapy's published figure stands in for Scrapy).
TARGET_KEYS = frozenset({"bare/bs4", "bare/lxml", DEFAULT, MEMORY, LXML, "wget"})


@dataclass(slots=True)
class Row:
    variant: Variant
    runs: list[Measurement]
    status: str = "ok"  # ok, n/a (...), FAILED ..., MISSING ...
    pages: int | None = None
    wall_s: float | None = None
    pages_per_s: float | None = None
    cpu_ms_per_page: float | None = None
    peak_rss_mb: float | None = None
    vs_ceiling: float | None = None
    vs_memory: float | None = None
    published: bool = False  # figures are the issue's, not measured here

    @property
    def measured(self) -> bool:
        return self.pages_per_s is not None and not self.published


@dataclass(frozen=True, slots=True)
class Target:
    text: str
    status: str  # met, NOT met, n/a
    detail: str


@dataclass(slots=True)
class Report:
    meta: dict[str, Any]
    rows: list[Row]
    targets: list[Target] = field(default_factory=list)


def build_report(meta: dict[str, Any], variants: list[Variant], runs: dict[str, list[Measurement]]) -> Report:
    rows = [_row(v, runs.get(v.key, [])) for v in variants]
    by_key = {row.variant.key: row for row in rows}
    for row in rows:
        if row.variant.ceiling is not None:
            row.vs_ceiling = _ratio(row, by_key.get(row.variant.ceiling))
        if row.variant.baseline is not None:
            row.vs_memory = _ratio(row, by_key.get(row.variant.baseline))
    return Report(meta, rows, _targets(by_key, int(meta["pages"])))


def _pages_per_s(m: Measurement) -> float:
    return m.result.pages / m.result.wall_s if m.result is not None and m.result.wall_s > 0 else 0.0


def _row(variant: Variant, runs: list[Measurement]) -> Row:
    row = Row(variant, runs)
    if variant.unavailable is not None and variant.kind == "scrapy":
        row.status = f"published, not measured: {variant.unavailable}"
        row.pages_per_s = SCRAPY_PUBLISHED["pages_per_s"]
        row.cpu_ms_per_page = SCRAPY_PUBLISHED["cpu_ms_per_page"]
        row.published = True
        return row
    if variant.unavailable is not None or not runs:
        row.status = variant.unavailable or "not run"
        return row
    chosen = sorted(runs, key=_pages_per_s)[(len(runs) - 1) // 2]
    result = chosen.result
    failed = [m for m in runs if m.result is None or m.returncode != 0]
    if result is None:
        reason = "timed out" if chosen.timed_out else f"exit {chosen.returncode}"
        last_line = (chosen.stderr_tail.strip().splitlines() or ["no output"])[-1]
        row.status = f"FAILED ({reason}): {last_line}"
        return row
    row.pages, row.wall_s = result.pages, result.wall_s
    row.pages_per_s = _pages_per_s(chosen)
    row.cpu_ms_per_page = chosen.cpu_s * 1000 / result.pages if result.pages else None
    row.peak_rss_mb = chosen.peak_rss_mb
    problems = []
    if result.missing:
        problems.append(f"MISSING {result.missing} of {result.expected}")
    if result.extra:
        problems.append(f"{result.extra} unexpected URLs")
    if failed:
        problems.append(f"{len(failed)} of {len(runs)} runs failed")
    row.status = "; ".join(problems) or "ok"
    return row


def _ratio(row: Row, other: Row | None) -> float | None:
    """row's pages/s over other's (a published figure counts for `other`)."""
    if other is None or not row.measured or not other.pages_per_s:
        return None
    assert row.pages_per_s is not None
    return row.pages_per_s / other.pages_per_s


def _targets(rows: dict[str, Row], pages: int) -> list[Target]:
    return [
        _ratio_target(
            rows, "default config (sqlite, bs4) ≥ 0.8× the bare loop with bs4", DEFAULT, "bare/bs4", 0.8
        ),
        _ratio_target(rows, "default config ≥ 3× Scrapy's pages/s", DEFAULT, "scrapy", 3.0),
        _ratio_target(rows, "--parser lxml (all processes) ≥ wget's pages/s", LXML, "wget", 1.0),
        _cpu_target(rows, LXML, LXML_CPU_TARGET_MS),
        _ratio_target(
            rows, "--parser lxml with parse workers ≥ 0.7× the bare loop with lxml", LXML, "bare/lxml", 0.7
        ),
        _ratio_target(rows, "sqlite frontier ≥ 0.9× memory (bs4)", DEFAULT, MEMORY, 0.9),
        _rss_target(rows, pages, DEFAULT, RSS_TARGET_MB, "all processes together"),
        _rss_target(rows, pages, ONE_PROCESS, RSS_ONE_PROCESS_MB, "--processes 1"),
    ]


def _cpu_target(rows: dict[str, Row], key: str, limit_ms: float) -> Target:
    text = f"--parser lxml ≤ {limit_ms} CPU ms/page (all processes together)"
    row = rows.get(key)
    if row is None or row.cpu_ms_per_page is None:
        return Target(text, "n/a", f"{key}: {row.status if row else 'absent'}")
    return Target(
        text, "met" if row.cpu_ms_per_page <= limit_ms else "NOT met", f"{row.cpu_ms_per_page:.2f} ms"
    )


def _ratio_target(rows: dict[str, Row], text: str, key: str, reference: str, threshold: float) -> Target:
    row, ref = rows.get(key), rows.get(reference)
    ratio = _ratio(row, ref) if row is not None else None
    if row is None or ref is None or ratio is None:
        why = [
            f"{k}: {r.status if r else 'absent'}"
            for k, r in ((key, row), (reference, ref))
            if not (r and r.pages_per_s)
        ]
        return Target(text, "n/a", "; ".join(why) + _fallback(rows, key, reference, threshold))
    assert row.pages_per_s is not None and ref.pages_per_s is not None
    detail = f"{ratio:.2f}× ({row.pages_per_s:.0f} vs {ref.pages_per_s:.0f} pages/s"
    detail += ", Scrapy's published figure)" if ref.published else ")"
    if row.status != "ok" or (ref.status != "ok" and not ref.published):
        detail += "; see the rows' status"
    return Target(text, "met" if ratio >= threshold else "NOT met", detail)


def _fallback(rows: dict[str, Row], key: str, reference: str, threshold: float) -> str:
    """For a target on the sqlite frontier before it exists: what the memory frontier gives."""
    alt = rows.get(key.replace("/sqlite/", "/memory/"))
    ref = rows.get(reference)
    if alt is None or alt.variant.key == key or alt.variant.key == reference or ref is None:
        return ""
    ratio = _ratio(alt, ref)
    return (
        ""
        if ratio is None
        else f" (memory frontier instead: {ratio:.2f}×, {'≥' if ratio >= threshold else '<'})"
    )


def _rss_target(rows: dict[str, Row], pages: int, key: str, limit_mb: int, which: str) -> Target:
    text = f"peak RSS < {limit_mb} MB for the {RSS_TARGET_PAGES:,}-page crawl (default config, {which})"
    row, memory = rows.get(key), rows.get(MEMORY)
    if row is None or row.peak_rss_mb is None:
        why = f"{key}: {row.status if row else 'absent'}"
        if memory is not None and memory.peak_rss_mb is not None:
            why += f" (memory frontier instead: {memory.peak_rss_mb:.0f} MB at {pages:,} pages)"
        return Target(text, "n/a", why)
    detail = f"{row.peak_rss_mb:.0f} MB"
    if pages != RSS_TARGET_PAGES:
        return Target(text, "n/a", f"{detail} at {pages:,} pages; the target is for {RSS_TARGET_PAGES:,}")
    return Target(text, "met" if row.peak_rss_mb < limit_mb else "NOT met", detail)


def _fmt(value: float | int | None, spec: str, suffix: str = "") -> str:
    return "" if value is None else f"{value:{spec}}{suffix}"


def markdown(report: Report) -> str:
    meta = report.meta
    lines = [
        "# crawlpool benchmark",
        "",
        f"{meta['pages']:,} pages (~{meta['page_kb']} KB, ~{meta['links']} links each) served by "
        f"{meta['server']} on 127.0.0.1; concurrency {meta['concurrency']} (per host {meta['concurrency']}); "
        f"outputs in {meta.get('outputs', 'a temp dir')}; "
        f"{meta['rounds']} round(s), variants interleaved, each in a fresh process; each row is its median "
        f"run by pages/s. crawlpool {meta['crawlpool']} at {meta['commit']}; Python {meta['python']}; "
        f"{meta['cpus']} CPUs; {meta['date']}.",
        "",
        "| variant | frontier | extractor | parse workers | processes | pages | status | wall s | pages/s "
        "| CPU ms/page | peak RSS MB | vs ceiling | sqlite/memory |",
        "|---|---|---|---|---|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    for row in report.rows:
        v = row.variant
        lines.append(
            "| "
            + " | ".join(
                [
                    v.label,
                    v.frontier,
                    v.extractor or ("none" if v.kind == "bare" else ""),
                    v.workers,
                    v.processes,
                    _fmt(row.pages, ","),
                    row.status.split(":")[0],
                    _fmt(row.wall_s, ".1f"),
                    _fmt(row.pages_per_s, ".0f"),
                    _fmt(row.cpu_ms_per_page, ".2f"),
                    _fmt(row.peak_rss_mb, ".0f"),
                    _fmt(row.vs_ceiling, ".2f", "×"),
                    _fmt(row.vs_memory, ".2f", "×"),
                ]
            )
            + " |"
        )
    notes = [f"- {row.variant.key}: {row.status}" for row in report.rows if ":" in row.status]
    lines += ["", *notes] if notes else []
    lines += [
        "",
        "wall s: the crawl inside its process (start-up excluded); CPU ms/page: user+sys of the variant's "
        "processes (start-up included) per page; peak RSS: its processes' summed PSS or its own RSS, the "
        "larger; vs ceiling: pages/s over the bare loop with the same extractor.",
        "",
        "## Targets",
        "",
    ]
    lines += [f"- **{t.status}**: {t.text}: {t.detail}" for t in report.targets]
    return "\n".join(lines) + "\n"


def write(report: Report, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    md, js = directory / "latest.md", directory / "latest.json"
    md.write_text(markdown(report), encoding="utf-8")
    data = {
        "meta": report.meta,
        "rows": [
            {
                "variant": asdict(row.variant),
                **{k: v for k, v in asdict(row).items() if k not in ("variant", "runs")},
                "runs": [asdict(m) for m in row.runs],
            }
            for row in report.rows
        ],
        "targets": [asdict(t) for t in report.targets],
    }
    js.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return md, js

"""The end-of-crawl summary: a rich panel for a terminal, plain lines for a log, a dict for `--stats-json`.

All three come from the same numbers (`CrawlStats` plus the top hosts), and the panel and the plain
lines from the same rows (`_rows`), so they never disagree.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from crawlpool.outcome import ended_text
from crawlpool.progress import format_bytes, format_count, format_duration
from crawlpool.records import Page
from crawlpool.stats import CrawlStats
from crawlpool.urls import url_host

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "none")


def status_classes(by_status: Mapping[str, int]) -> dict[str, int]:
    """Records per status class, `2xx` to `5xx` and `none` (no response) always present, in that order;
    a rarer class (`1xx`) is added after them when it occurs."""
    classes = dict.fromkeys(STATUS_CLASSES, 0)
    for status, n in sorted(by_status.items()):
        key = status if status == "none" else f"{status[:1]}xx"
        classes[key] = classes.get(key, 0) + n
    return classes


def count_top_hosts(pages: Iterable[Page], limit: int = 5) -> list[tuple[str, int]]:
    """The `limit` hosts with the most stored pages, as (host, pages), most first (ties by name)."""
    counts = Counter(url_host(page.url) for page in pages if page.path is not None)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]


def _counts_text(counts: Iterable[tuple[str, int]]) -> str:
    # The separator `crawlpool status` and the progress lines use too.
    return ", ".join(f"{name} {format_count(n)}" for name, n in counts)


def headline(stats: CrawlStats) -> str:
    """`crawl finished`, `crawl stopped at --max-pages with 228 URLs queued; continue it with --resume`:
    the words `crawlpool status` uses for the same crawl (`outcome.ended_text`)."""
    text = ended_text(stats.outcome, stats.queued)
    return f"crawl {text} in {format_duration(stats.elapsed_s)}" if text == "finished" else f"crawl {text}"


def _errors_text(stats: CrawlStats) -> str:
    """`2: robots 2 (dns 2), http_4xx 1`: each code with the causes it names, most frequent first."""
    parts = []
    for code, n in sorted(stats.by_error.items(), key=lambda item: (-item[1], item[0])):
        causes = stats.by_cause.get(code)
        because = f" ({_counts_text(causes.most_common())})" if causes else ""
        parts.append(f"{code} {format_count(n)}{because}")
    return f"{format_count(stats.errors)}: {', '.join(parts)}"


def _unreachable_text(unreachable: Mapping[str, str], limit: int = 3) -> str:
    """`2 hosts: a.example (dns), b.example (connect)`, the first few by name."""
    names = sorted(unreachable)
    shown = ", ".join(f"{host} ({unreachable[host]})" for host in names[:limit])
    more = f", and {len(names) - limit} more" if len(names) > limit else ""
    noun = "host" if len(names) == 1 else "hosts"
    return f"{len(names)} {noun} could not be reached: {shown}{more}"


def _rows(stats: CrawlStats, manifest: Path, top_hosts: Sequence[tuple[str, int]]) -> list[tuple[str, str]]:
    """(label, value) rows of the summary, in order; the hint to list failures only when some failed."""
    rows = [
        ("pages stored", format_count(stats.pages)),
        ("URLs tried", f"{format_count(stats.records)} ({format_count(stats.requests)} page requests)"),
        ("status", _counts_text(status_classes(stats.by_status).items())),
        ("errors", _errors_text(stats) if stats.errors else "none"),
        ("retries", format_count(stats.retries)),
        ("robots-blocked", format_count(stats.robots_blocked)),
        ("traps skipped", format_count(stats.traps)),
        ("bytes stored", format_bytes(stats.bytes)),
        ("elapsed", format_duration(stats.elapsed_s)),
        ("speed", f"{stats.pages_per_s:.1f} pages/s"),
    ]
    if stats.crawl_done is not None:
        whole = (
            f"{format_count(stats.crawl_done)} URLs done of {format_count(stats.crawl_seen or 0)} discovered"
        )
        rows.insert(0, ("whole crawl", f"{whole}; the rest of this summary counts this run"))
    if stats.unreachable:
        rows.insert(
            5 if stats.crawl_done is not None else 4, ("unreachable", _unreachable_text(stats.unreachable))
        )
    if stats.by_change:  # an update run (--update): what it found, as changes.json counts it
        order = ("unchanged", "changed", "new", "gone")
        rows.insert(2, ("changes", _counts_text((name, stats.by_change[name]) for name in order)))
    if top_hosts:
        rows.append(("top hosts", _counts_text(top_hosts)))
    rows.append(("manifest", str(manifest)))
    if stats.errors:
        # Quoted so that the command can be pasted as is, whatever the output directory is called.
        output, lines = shlex.quote(str(manifest.parent)), shlex.quote(str(manifest))
        # Two rows, not one long one, so that a narrow terminal does not wrap a command mid-word.
        rows.append(("failures", f"crawlpool failures {output}"))
        rows.append(("", f"or: jq -c 'select(.error) | {{url, error}}' {lines}"))
    return rows


def summary_lines(
    stats: CrawlStats,
    *,
    manifest: Path,
    top_hosts: Sequence[tuple[str, int]] = (),
) -> list[str]:
    """The summary as plain text lines (no newlines): a headline, then one `label  value` line per row."""
    rows = _rows(stats, manifest, top_hosts)
    width = max(len(label) for label, _ in rows)
    return [f"crawlpool: {headline(stats)}"] + [f"  {label:<{width}}  {value}" for label, value in rows]


def render_summary(
    stats: CrawlStats,
    *,
    manifest: Path,
    top_hosts: Sequence[tuple[str, int]] = (),
) -> RenderableType:
    """The summary as a rich panel, with the same rows as `summary_lines`."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for label, value in _rows(stats, manifest, top_hosts):
        # Text, not str: a path or host must not be read as console markup.
        alarm = label in ("errors", "unreachable") and stats.errors
        grid.add_row(label, Text(value, style="red" if alarm else ""))
    # The headline above the panel, not in its border: a border title is cut at the terminal's width,
    # and the headline is where "continue it with --resume" is said.
    title = Text(headline(stats), style="bold green" if stats.outcome == "finished" else "bold yellow")
    return Group(title, Panel(grid, expand=False))


def stats_json(stats: CrawlStats, *, top_hosts: Sequence[tuple[str, int]] = ()) -> dict[str, object]:
    """`CrawlStats.as_dict()` plus `by_status_class` and `top_hosts` (a list of {host, pages}), for
    `--stats-json`; every value is a plain JSON type."""
    data = stats.as_dict()
    data["by_status_class"] = status_classes(stats.by_status)
    data["top_hosts"] = [{"host": host, "pages": pages} for host, pages in top_hosts]
    return data

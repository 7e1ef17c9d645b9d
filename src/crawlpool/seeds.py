"""Seeds from the command line: URLs, seed-list files (one URL a line), or `-` for standard input.

A seed-list line that is blank or starts with `#` is ignored; a line that is not an http(s) URL is
reported as `file:line: reason` and skipped. A seed given directly as a URL must be valid: it is the
user's whole intent, so a bad one is a usage error rather than a warning.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from crawlpool.errors import SeedError
from crawlpool.urls import normalize_url


@dataclass(slots=True)
class Seeds:
    urls: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def looks_like_url(arg: str) -> bool:
    return "://" in arg or arg.lower().startswith(("http:", "https:"))


def load_seeds(args: Sequence[str], stdin: TextIO | None = None) -> Seeds:
    """Normalized, distinct seed URLs from CLI arguments, with a warning per skipped line.

    Raises SeedError for an unreadable file, a bad URL argument, or no valid seed at all."""
    seeds = Seeds()
    for arg in args:
        if arg == "-":
            _read_lines(seeds, "<stdin>", stdin if stdin is not None else sys.stdin)
        elif looks_like_url(arg):
            url = normalize_url(arg)
            if url is None:
                raise SeedError(f"{arg}: {_why_bad(arg)}")
            seeds.urls.append(url)
        else:
            _read_file(seeds, Path(arg))
    seeds.urls = list(dict.fromkeys(seeds.urls))
    if not seeds.urls:
        where = ", ".join(args) if args else "the command line"
        raise SeedError(f"no valid seed URL in {where}")
    return seeds


def check_seed_urls(urls: Iterable[str]) -> list[str]:
    """Normalized, distinct seed URLs for the Python API; raises SeedError naming the first bad one."""
    if isinstance(urls, str):
        raise SeedError("seeds: expected a list of URLs, got a single string")
    out: list[str] = []
    for raw in urls:
        url = normalize_url(raw) if isinstance(raw, str) else None
        if url is None:
            raise SeedError(f"seed {raw!r}: {_why_bad(str(raw))}")
        out.append(url)
    if not out:
        raise SeedError("no seed URL given")
    return list(dict.fromkeys(out))


def _read_file(seeds: Seeds, path: Path) -> None:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            _read_lines(seeds, str(path), fh)
    except FileNotFoundError:
        raise SeedError(f"{path}: seed file not found{_url_hint(str(path))}") from None
    except IsADirectoryError:
        raise SeedError(f"{path}: is a directory, expected a seed-list file") from None
    except OSError as exc:
        raise SeedError(f"{path}: cannot read seed file: {exc.strerror}") from None


def _read_lines(seeds: Seeds, name: str, lines: Iterable[str]) -> None:
    for lineno, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        url = normalize_url(text)
        if url is None:
            seeds.warnings.append(f"{name}:{lineno}: {_why_bad(text)}, skipped")
        else:
            seeds.urls.append(url)


def _why_bad(text: str) -> str:
    scheme, sep, _ = text.partition(":")
    if sep and scheme.isalpha() and scheme.lower() not in ("http", "https"):
        return f"not an http(s) URL (scheme {scheme.lower()}:)"
    if not looks_like_url(text):
        return "not a URL (expected http:// or https://)"
    return "not a valid URL"


def _url_hint(name: str) -> str:
    """A hint for `crawlpool crawl example.com`: a host name taken for a file name."""
    host = name.split("/", 1)[0]
    if "." in host and not name.endswith((".txt", ".lst", ".list", ".csv")) and " " not in name:
        return f" (for a URL, write it with its scheme: https://{name})"
    return ""

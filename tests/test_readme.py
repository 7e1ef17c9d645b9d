"""README must stay true: CI runs exactly its quick-start test command, and its command-line
reference lists exactly the parser's flags and the config keys."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from crawlpool.cli import build_parser
from crawlpool.config import TOML_KEYS

ROOT = Path(__file__).parents[1]


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_has_a_crawl_command_and_a_test_command() -> None:
    crawl_cmd, test_cmd = _quick_start_commands()
    assert "crawlpool crawl config/seeds.txt" in crawl_cmd
    assert "pytest" in test_cmd


def test_ci_runs_readmes_test_command_verbatim() -> None:
    _, test_cmd = _quick_start_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_cmd in ci.splitlines()


# The command-line reference: README's flag tables must list exactly the parser's flags.

_BACKTICKED = re.compile(r"`([^`]+)`")
_FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
_CELL_SEPARATOR = re.compile(r"(?<!\\)\|")  # `a\|b` inside a cell is one cell


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


def _table_rows(heading: str) -> list[list[str]]:
    """The cells of every table row in README's section under `heading` (up to the next heading of
    the same or a higher level)."""
    readme = _readme()
    assert heading in readme.splitlines(), f"README has no section {heading!r}"
    level = heading.split(" ", 1)[0]
    section = readme.split(f"\n{heading}\n", 1)[1]
    end = re.search(rf"^#{{1,{len(level)}}} ", section, re.MULTILINE)
    section = section[: end.start()] if end else section
    return [
        [cell.strip() for cell in _CELL_SEPARATOR.split(line.strip())[1:-1]]
        for line in section.splitlines()
        if line.startswith("|")
    ]


def _flags_in(text: str) -> set[str]:
    """Option strings written in backticks: `-o`, `--output DIR`, `--scope host|domain|any`."""
    return {flag for span in _BACKTICKED.findall(text) for flag in _FLAG.findall(span)}


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_readme_flag_table_matches_the_parser(command: str) -> None:
    rows = _table_rows(f"### `crawlpool {command}`")
    documented = set().union(*(_flags_in(" ".join(row)) for row in rows))
    actions = _subcommands()[command]._actions
    real = {flag for action in actions if action.dest != "help" for flag in action.option_strings}
    assert real - documented == set(), f"flags of `crawlpool {command}` missing from README's table"
    assert documented - real == set(), f"README's table for `crawlpool {command}` names unknown flags"


def test_readme_config_key_column_names_every_config_key() -> None:
    rows = _table_rows("### `crawlpool crawl`")
    keys = {m[1] for row in rows if len(row) > 1 and (m := re.match(r"`(\w+)`", row[1]))}
    assert keys == TOML_KEYS

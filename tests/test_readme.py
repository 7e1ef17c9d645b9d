"""README's quick start must stay true: CI runs exactly its test command."""

from __future__ import annotations

import re
from pathlib import Path

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

"""The CLI's contract on bad input: exit 2, one line on stderr, no traceback, no request sent."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from crawlpool.cli import _config_from_args, build_parser, main
from crawlpool.config import MIB, CrawlConfig
from tests.site import REQUEST_LOG

SRC = str(Path(__file__).parents[1] / "src")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.txt"
    path.write_text("http://127.0.0.1:9/\n")  # never contacted: every case fails before a request
    return path


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


BAD_INPUTS: dict[str, tuple[list[str], str]] = {
    "missing seed file": (["crawl", "{tmp}/nope.txt"], "seed file not found"),
    "seed file is a directory": (["crawl", "{tmp}"], "is a directory"),
    "no valid seed": (["crawl", "{tmp}/junk.txt"], "no valid seed URL"),
    "file: seed": (["crawl", "file:///etc/passwd"], "not an http(s) URL (scheme file:)"),
    "ftp: seed": (["crawl", "ftp://example.com/"], "not an http(s) URL (scheme ftp:)"),
    "output not creatable": (["crawl", "{seeds}", "-o", "{tmp}/afile/out"], "cannot write"),
    "bad toml": (["crawl", "{seeds}", "-c", "{tmp}/bad.toml"], "not valid TOML"),
    "unknown toml key": (["crawl", "{seeds}", "-c", "{tmp}/unknown.toml"], "unknown key 'speed'"),
    "bad toml value": (["crawl", "{seeds}", "-c", "{tmp}/value.toml"], "concurrency: expected"),
    "missing config": (["crawl", "{seeds}", "-c", "{tmp}/none.toml"], "config file not found"),
    "zero concurrency": (["crawl", "{seeds}", "--concurrency", "0"], "must be at least 1"),
    "word concurrency": (["crawl", "{seeds}", "--concurrency", "many"], "expected a whole number"),
    "bad scope": (["crawl", "{seeds}", "--scope", "galaxy"], "invalid choice"),
    "bad size": (["crawl", "{seeds}", "--max-bytes", "lots"], "expected a size"),
    "bad regex": (["crawl", "{seeds}", "--include", "("], "bad regular expression"),
    "negative delay": (["crawl", "{seeds}", "--delay", "-1"], "must be at least 0"),
    "unknown flag": (["crawl", "{seeds}", "--turbo"], "unrecognized arguments"),
    "unknown frontier": (["crawl", "{seeds}", "--frontier", "mongo://x"], "is not one of memory, sqlite"),
    "redis unreachable": (
        ["crawl", "{seeds}", "--frontier", "redis://127.0.0.1:9/0"],
        "redis://127.0.0.1:9/0",
    ),
    "resume nothing": (["crawl", "{seeds}", "-o", "{tmp}/fresh", "--resume"], "no crawl to resume"),
    "resume memory": (["crawl", "{seeds}", "--frontier", "memory", "--resume"], "keeps no state"),
    "output holds a crawl": (["crawl", "{seeds}", "-o", "{tmp}/used"], "add --resume"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(
    case: str, tmp_path: Path, seeds: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "junk.txt").write_text("not a url\nmailto:x@y.z\n# comment\n")
    (tmp_path / "afile").write_text("a file where a directory should be")
    (tmp_path / "bad.toml").write_text("concurrency = = 3\n")
    (tmp_path / "unknown.toml").write_text("speed = 11\n")
    (tmp_path / "value.toml").write_text('concurrency = "lots"\n')
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "manifest.jsonl").write_text("")
    template, expected = BAD_INPUTS[case]
    args = [a.format(tmp=tmp_path, seeds=seeds) for a in template]
    with pytest.raises(SystemExit) if case in _ARGPARSE_CASES else _no_raise() as exit_info:
        code, err = run_main(args, capsys)
    if exit_info is not None:
        code, err = exit_info.value.code, capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert expected in err
    assert "Traceback" not in err


_ARGPARSE_CASES = {"zero concurrency", "word concurrency", "bad scope", "bad size", "negative delay",
                   "unknown flag"}  # fmt: skip


class _no_raise:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


async def test_bad_config_sends_no_request(site: TestServer, tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(f"http://127.0.0.1:{site.port}/\n")
    config = tmp_path / "bad.toml"
    config.write_text("max_depth = -1\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawlpool", "crawl", str(seeds), "-c", str(config),
        "-o", str(tmp_path / "out"),
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 2
    assert err.decode().splitlines() == [f"crawlpool: error: {config}: max_depth: must be at least 0, got -1"]
    assert site.app[REQUEST_LOG] == []


def test_console_script_and_module_agree_on_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "crawlpool", "--version"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, check=True,
    )  # fmt: skip
    from crawlpool import __version__

    assert out.stdout.strip() == f"crawlpool {__version__}"


def test_precedence_is_defaults_then_file_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('concurrency = 5\nper_host = 3\nscope = "domain"\ninclude = ["/docs/"]\n')
    args = build_parser().parse_args(
        ["crawl", "s.txt", "-c", str(config), "--per-host", "4", "--per-host", "6",
         "--max-bytes", "2MiB", "--exclude", "a", "--exclude", "b"]
    )  # fmt: skip
    cfg = _config_from_args(args)
    assert cfg.concurrency == 5  # from the file
    assert cfg.per_host == 6  # the flag, given twice: the last wins
    assert cfg.scope == "domain" and cfg.include == ("/docs/",)
    assert cfg.exclude == ("a", "b")
    assert cfg.max_bytes == 2 * MIB
    assert cfg.timeout_s == CrawlConfig().timeout_s  # default


def test_example_config_lists_every_option_with_its_default() -> None:
    from crawlpool.config import TOML_KEYS, load_toml

    example = Path(__file__).parents[1] / "config" / "crawlpool.toml"
    text = example.read_text()
    for key in TOML_KEYS:
        assert f"# {key} = " in text or f"{key} = " in text, f"{key} missing from {example}"
    load_toml(example)  # and it is valid


def test_failures_lists_failed_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out"
    output.mkdir()
    lines = [
        '{"url": "http://a/1", "status": 200, "error": null}',
        '{"url": "http://a/2", "status": 404, "error": "http_4xx: 404 Not Found"}',
        '{"url": "http://a/3", "status": null, "error": "timeout: no complete response"}',
        '{"url": "http://a/4", "sta',  # cut by a crash
    ]
    (output / "manifest.jsonl").write_text("\n".join(lines))
    assert main(["failures", str(output)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "http://a/2\t404\thttp_4xx: 404 Not Found",
        "http://a/3\tNone\ttimeout: no complete response",
    ]
    assert main(["failures", str(output), "--code", "timeout"]) == 0
    assert capsys.readouterr().out.splitlines() == ["http://a/3\tNone\ttimeout: no complete response"]
    code, err = run_main(["failures", str(tmp_path / "nothing")], capsys)
    assert (
        code == 2
        and err == f"crawlpool: error: {tmp_path / 'nothing'} holds no crawl (manifest.jsonl not found)\n"
    )

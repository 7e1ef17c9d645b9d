"""What crawlpool says is true: unreachable seeds said loudly with their own exit code, a summary and a
`status` that tell one story, JSON logs that are all JSON, messages in the caller's own terms.

Crawls run in a subprocess (the CLI as a user runs it) against local servers on 127.0.0.1; a host that
cannot be reached is a closed port on 127.0.0.1, so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from crawlpool import crawl, crawl_sync
from crawlpool.cli import EXIT_UNREACHABLE, main
from crawlpool.config import MIB, build_config, load_toml
from crawlpool.errors import ConfigError, SeedError
from crawlpool.seeds import load_seeds

SRC = str(Path(__file__).parents[1] / "src")


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawlpool", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": SRC, "COLUMNS": "200"},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then closed): a connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def manifest(output: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (output / "manifest.jsonl").read_text().splitlines()]


async def test_a_crawl_that_reaches_nothing_says_so_and_exits_3(tmp_path: Path) -> None:
    host = f"127.0.0.1:{closed_port()}"
    output = tmp_path / "out"
    code, _, err = await run_cli("crawl", f"http://{host}/", "-o", str(output), "--retries", "0")
    lines = err.splitlines()
    assert code == EXIT_UNREACHABLE == 3, err
    # said while the crawl runs, once, with the cause
    warnings = [line for line in lines if "WARNING" in line]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"crawlpool: WARNING: {host}: robots.txt unreachable (connect:"
    )
    assert "giving up after 1 try" in warnings[0]
    assert (
        lines[lines.index(warnings[0]) + 1]
        == "crawlpool: crawl ended: no seed could be reached (see the failures below)"
    )
    assert f"  unreachable     1 host could not be reached: {host} (connect)" in lines
    assert "  errors          1: robots 1 (connect 1)" in lines
    assert lines[-1].startswith(
        f"crawlpool: error: nothing was fetched: no host could be reached: {host} (connect)"
    )
    assert "Traceback" not in err
    # the record keeps the underlying code, and `failures --code` finds the record by it
    (record,) = manifest(output)
    assert str(record["error"]).startswith("robots: connect: robots.txt unreachable:")
    code, out, _ = await run_cli("failures", str(output), "--code", "connect")
    assert out.startswith(f"http://{host}/\tNone\trobots: connect:")
    # status agrees with the summary
    code, out, _ = await run_cli("status", str(output))
    assert out.splitlines()[0] == (
        f"crawl in {output}: ended: no seed could be reached (see the failures below)"
    )


async def test_without_robots_the_page_itself_is_said_unreachable(tmp_path: Path) -> None:
    host = f"127.0.0.1:{closed_port()}"
    code, _, err = await run_cli(
        "crawl", f"http://{host}/", "-o", str(tmp_path / "o"), "--retries", "0", "--no-robots"
    )
    assert code == 3
    (warning,) = [line for line in err.splitlines() if "WARNING" in line]
    assert warning.startswith(f"crawlpool: WARNING: {host}: cannot be reached (connect:")


async def test_a_crawl_that_fetched_something_exits_0_whatever_failed(
    site: TestServer, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/"
    code, _, err = await run_cli(
        "crawl", f"http://127.0.0.1:{site.port}/", dead, "-o", str(tmp_path / "o"), "--retries", "0"
    )
    assert code == 0, err
    assert "crawlpool: crawl finished in" in err


async def test_max_pages_stop_summary_and_status_use_the_same_words(site: TestServer, tmp_path: Path) -> None:
    output = tmp_path / "out"
    code, _, err = await run_cli(
        "crawl", f"http://127.0.0.1:{site.port}/", "-o", str(output), "--max-pages", "2"
    )
    assert code == 0, err
    (headline,) = [line for line in err.splitlines() if line.startswith("crawlpool: crawl ")]
    assert headline.startswith("crawlpool: crawl stopped at --max-pages with ")
    assert headline.endswith(" URLs queued; continue it with --resume")
    code, out, _ = await run_cli("status", str(output))
    status = out.splitlines()[0]
    assert status == f"crawl in {output}: " + headline.removeprefix("crawlpool: crawl ")


async def test_json_log_format_writes_only_json_lines(site: TestServer, tmp_path: Path) -> None:
    code, _, err = await run_cli(
        "crawl", f"http://127.0.0.1:{site.port}/", f"http://127.0.0.1:{closed_port()}/",
        "-o", str(tmp_path / "o"), "--log-format", "json",
        "-vv", "--progress-interval", "0.01", "--delay", "0.02", "--retries", "0",
    )  # fmt: skip
    assert code == 0, err
    events = [json.loads(line) for line in err.splitlines()]  # fails on any line that is not JSON
    assert all({"time", "level", "logger", "message"} <= event.keys() for event in events)
    assert any(event.get("event") == "progress" and "hosts_waiting" in event for event in events)
    assert any(
        event["level"] == "warning" and "robots.txt unreachable" in event["message"] for event in events
    )
    summary = events[-1]
    assert summary["event"] == "summary" and summary["message"].startswith("crawl finished in")
    assert summary["stats"]["pages"] > 5 and summary["stats"]["outcome"] == "finished"


async def test_json_log_format_errors_are_json_too(tmp_path: Path) -> None:
    code, _, err = await run_cli("crawl", str(tmp_path / "missing.txt"), "--log-format", "json")
    assert code == 2
    (line,) = err.splitlines()
    assert json.loads(line)["level"] == "error" and "seed file not found" in json.loads(line)["message"]


def test_the_api_speaks_in_keyword_arguments(tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text("")
    with pytest.raises(ConfigError, match=r"already holds a crawl; pass resume=True to continue it"):
        crawl_sync(["http://127.0.0.1:9/"], output=tmp_path)


async def test_result_pages_are_this_runs_and_all_pages_the_crawls(site: TestServer, tmp_path: Path) -> None:
    site_url = f"http://127.0.0.1:{site.port}/"
    first = await crawl([site_url], output=tmp_path, max_pages=2, robots=False)
    resumed = await crawl([site_url], output=tmp_path, resume=True, robots=False)
    # `pages` is this run's records; `all_pages()` every record of the crawl
    assert len(resumed.all_pages()) == len(first.pages) + len(resumed.pages)
    assert {p.url for p in resumed.all_pages()} == {p.url for p in first.pages} | {
        p.url for p in resumed.pages
    }


async def test_the_library_writes_nothing_to_stderr_unless_logging_is_configured(tmp_path: Path) -> None:
    script = f"""
import asyncio, contextlib, crawlpool
async def main():
    # a host out of reach makes the engine warn; leaving iter_crawl early stops the crawl
    async with contextlib.aclosing(crawlpool.iter_crawl(
        ["http://127.0.0.1:{closed_port()}/"], output={str(tmp_path / "o")!r}, retries=0
    )) as pages:
        async for page in pages:
            print(page.error_code)
            break
asyncio.run(main())
"""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0
    assert out.decode() == "robots\n" and err.decode() == ""


# -- the small ones ------------------------------------------------------------------------------------


def test_failures_of_an_unknown_code_says_which_codes_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "manifest.jsonl").write_text(
        '{"url": "http://a/", "status": 404, "error": "http_4xx: 404"}\n'
    )
    assert main(["failures", str(tmp_path), "--code", "404"]) == 2
    assert capsys.readouterr().err == (
        "crawlpool: error: failures: unknown error code '404' (HTTP 404 is recorded as http_4xx: "
        "try --code http_4xx)\n"
    )
    assert main(["failures", str(tmp_path), "--code", "timout"]) == 2
    assert "did you mean timeout?" in capsys.readouterr().err


def test_a_host_name_given_as_a_seed_file_gets_a_hint() -> None:
    with pytest.raises(SeedError, match=r"example\.com: seed file not found \(for a URL, write it with its "
                       r"scheme: https://example\.com\)"):  # fmt: skip
        load_seeds(["example.com"])


@pytest.mark.parametrize(
    ("key", "hint"), [("delay", "delay_s"), ("max-pages", "max_pages"), ("concurency", "concurrency")]
)
def test_an_unknown_config_key_suggests_the_right_one(tmp_path: Path, key: str, hint: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'"{key}" = 1\n')
    with pytest.raises(ConfigError, match=rf"{path}: unknown key '{key}' \(did you mean '{hint}'\?\)"):
        load_toml(path)


def test_sizes_in_a_config_file_read_like_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('max_bytes = "10MiB"\n')
    assert build_config(load_toml(path)).max_bytes == 10 * MIB
    path.write_text('max_bytes = "lots"\n')
    assert main(["crawl", "http://127.0.0.1:9/", "-c", str(path), "-o", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        f"crawlpool: error: {path}: max_bytes: expected a size like 10MiB or 500000, got 'lots'\n"
    )


def test_failures_knows_every_code_readme_documents() -> None:
    from crawlpool.records import ERROR_CODES

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("### Error codes", 1)[1].split("\n#", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_0-9]+)` \|", table, re.MULTILINE))
    documented |= set(re.findall(r"`(invalid_url|client)`", table))
    assert documented == ERROR_CODES


def test_a_memory_crawl_output_is_not_sent_to_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "manifest.jsonl").write_text("")
    assert main(["crawl", "http://127.0.0.1:9/", "-o", str(tmp_path), "--frontier", "memory"]) == 2
    assert capsys.readouterr().err == (
        f"crawlpool: error: output: {tmp_path} already holds a crawl; choose another directory or remove it "
        "(a memory-frontier crawl cannot be resumed)\n"
    )


def test_parser_errors_point_at_the_commands_help_and_speak_json_when_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["crawl", "http://127.0.0.1:9/", "--bogus"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "crawlpool crawl: error: unrecognized arguments: --bogus (see crawlpool crawl --help)\n"
    )
    with pytest.raises(SystemExit):
        main(["crawl", "http://127.0.0.1:9/", "--log-format", "json", "--max-pages", "abc"])
    event = json.loads(capsys.readouterr().err)
    assert event["level"] == "error" and event["event"] == "error"
    assert "argument --max-pages: expected a whole number, got 'abc'" in event["message"]


def test_failures_says_when_there_are_none_and_hints_at_status_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "manifest.jsonl").write_text('{"url": "http://a/", "status": 200, "error": null}\n')
    assert main(["failures", str(tmp_path)]) == 0
    assert capsys.readouterr() == ("", f"crawlpool: no failed records in {tmp_path}\n")
    assert main(["failures", str(tmp_path), "--code", "timeout"]) == 0
    assert capsys.readouterr().err == f"crawlpool: no records with error code timeout in {tmp_path}\n"
    assert main(["failures", str(tmp_path), "--code", "5xx"]) == 2
    assert "try --code http_5xx" in capsys.readouterr().err

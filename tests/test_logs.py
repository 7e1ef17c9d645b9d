from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from crawlpool.logs import setup_logging

log = logging.getLogger("crawlpool.engine")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    asyncio_level = logging.getLogger("asyncio").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("asyncio").setLevel(asyncio_level)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_text_format() -> None:
    stream = io.StringIO()
    setup_logging(verbosity=0, quiet=False, fmt="text", stream=stream)
    log.warning("seed %s skipped", "x")
    assert stream.getvalue() == "crawlpool: WARNING: seed x skipped\n"


@pytest.mark.parametrize(
    ("verbosity", "quiet", "shown"),
    [
        (0, False, ["warning", "error"]),
        (1, False, ["info", "warning", "error"]),
        (2, False, ["debug", "info", "warning", "error"]),
        (5, False, ["debug", "info", "warning", "error"]),
        (0, True, ["error"]),
        (2, True, ["error"]),
    ],
)
def test_levels(verbosity: int, quiet: bool, shown: list[str]) -> None:
    stream = io.StringIO()
    setup_logging(verbosity=verbosity, quiet=quiet, fmt="json", stream=stream)
    log.debug("debug")
    log.info("info")
    log.warning("warning")
    log.error("error")
    assert [line["message"] for line in json_lines(stream)] == shown


def test_json_per_url_failure_is_one_line_with_its_fields() -> None:
    stream = io.StringIO()
    setup_logging(verbosity=1, quiet=False, fmt="json", stream=stream)
    url, error = "https://example.com/a", "timeout: no response in\n30 s"
    log.info("%s: %s", url, error, extra={"url": url, "code": "timeout"})
    log.info("retrying", extra={"url": url, "status": 503})
    assert len(stream.getvalue().splitlines()) == 2
    first, second = json_lines(stream)
    assert first == {
        "time": first["time"],
        "level": "info",
        "logger": "crawlpool.engine",
        "message": f"{url}: {error}",
        "url": url,
        "code": "timeout",
    }
    assert isinstance(first["time"], str) and first["time"].endswith("Z") and "T" in first["time"]
    assert second["status"] == 503
    assert "exc" not in first and "exc" not in second


def test_json_exception_carries_the_traceback_on_one_line() -> None:
    stream = io.StringIO()
    setup_logging(verbosity=0, quiet=False, fmt="json", stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("unexpected error while crawling %s", "https://example.com/")
    [record] = json_lines(stream)
    assert record["level"] == "error"
    assert isinstance(record["exc"], str)
    assert record["exc"].startswith("Traceback")
    assert "ValueError: boom" in record["exc"]


def test_text_traceback_only_with_exc_info() -> None:
    stream = io.StringIO()
    setup_logging(verbosity=1, quiet=False, fmt="text", stream=stream)
    log.info("%s: %s", "https://example.com/", "dns: no such host", extra={"url": "u", "code": "dns"})
    assert stream.getvalue() == "crawlpool: INFO: https://example.com/: dns: no such host\n"


def test_a_second_call_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    before = len(root.handlers)
    setup_logging(verbosity=0, quiet=False, fmt="text", stream=first)
    setup_logging(verbosity=0, quiet=False, fmt="json", stream=second)
    assert len(root.handlers) == before + 1
    log.warning("once")
    assert first.getvalue() == ""
    assert [line["message"] for line in json_lines(second)] == ["once"]


def test_asyncio_logger_is_quiet_unless_debugging() -> None:
    setup_logging(verbosity=0, quiet=False, fmt="text", stream=io.StringIO())
    assert logging.getLogger("asyncio").getEffectiveLevel() == logging.WARNING
    setup_logging(verbosity=2, quiet=False, fmt="text", stream=io.StringIO())
    assert logging.getLogger("asyncio").getEffectiveLevel() == logging.DEBUG


def test_default_stream_follows_sys_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    setup_logging(verbosity=0, quiet=False, fmt="text")
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", swapped)  # as rich's Live display does while it runs
    log.warning("above the live display")
    assert swapped.getvalue() == "crawlpool: WARNING: above the live display\n"

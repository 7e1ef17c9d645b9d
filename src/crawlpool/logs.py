"""Logging setup for the CLI; the library itself only logs to `logging.getLogger(__name__)`.

Two formats. `text`: `crawlpool: <LEVEL>: <message>`, a traceback after it when there is exc_info.
`json`: one object per line, `{"time", "level", "logger", "message"}` plus the record's `url`, `code`
and `status` when they were passed with `extra=`, and `exc` (the formatted traceback) only when there is
exc_info. An expected per-URL failure, logged as
`log.info("%s: %s", url, error, extra={"url": url, "code": code})`, is therefore one line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal, TextIO

TEXT_FORMAT = "crawlpool: %(levelname)s: %(message)s"
# The fields a record may carry via `extra=` that the JSON format passes on.
EXTRA_FIELDS = ("url", "code", "status")


def log_level(*, verbosity: int, quiet: bool) -> int:
    """ERROR with quiet (it wins over -v), else WARNING, INFO for -v, DEBUG for -vv or more."""
    if quiet:
        return logging.ERROR
    return (logging.WARNING, logging.INFO, logging.DEBUG)[min(max(verbosity, 0), 2)]


def json_line(
    level: str,
    message: str,
    fields: Mapping[str, object] | None = None,
    *,
    logger: str = "crawlpool",
    created: float | None = None,
) -> str:
    """One JSON object on one line, shaped like a log record of the `json` format: `time`, `level`,
    `logger`, `message`, then `fields` (an `event` name and its data for what is not a log record:
    progress lines, the summary, the CLI's one-line errors)."""
    when = datetime.fromtimestamp(time.time() if created is None else created, UTC)
    data: dict[str, object] = {
        "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "logger": logger,
        "message": message,
        **(fields or {}),
    }
    # default=str: an extra value that JSON cannot hold (a URL object, an enum) is shown, not fatal.
    return json.dumps(data, ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback's newlines are escaped inside `exc`)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            name: record.__dict__[name] for name in EXTRA_FIELDS if name in record.__dict__
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json_line(
            record.levelname.lower(), record.getMessage(), data, logger=record.name, created=record.created
        )


class _CrawlpoolHandler(logging.StreamHandler[TextIO]):
    """The handler `setup_logging` installs. Its class is how a second call finds and replaces it.

    With no stream given it writes to whatever `sys.stderr` is at each record, so that while rich's
    Live display redirects stderr, log lines are printed above the display instead of through it."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self._follow_stderr = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow_stderr:
            self.stream = sys.stderr  # emit runs under the handler's lock, so this swap is safe
        super().emit(record)


def setup_logging(
    *,
    verbosity: int,
    quiet: bool,
    fmt: Literal["text", "json"],
    stream: TextIO | None = None,
) -> None:
    """Send log records of `log_level(...)` and above to `stream` (None: the current sys.stderr at each
    record) in the `fmt` format. Calling it again replaces the handler it installed before, never adds
    a second one. The `asyncio` logger is held at WARNING unless the level is DEBUG (-vv)."""
    level = log_level(verbosity=verbosity, quiet=quiet)
    handler = _CrawlpoolHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CrawlpoolHandler)]:
        root.removeHandler(old)
        old.close()  # drops it from logging's shutdown list; the stream itself stays open
    root.addHandler(handler)
    root.setLevel(level)
    # asyncio's debug chatter (slow callbacks, selector events) only helps when debugging at -vv.
    logging.getLogger("asyncio").setLevel(logging.NOTSET if level <= logging.DEBUG else logging.WARNING)

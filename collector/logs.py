"""structlog setup: human-readable on a terminal, JSON lines otherwise; always to stderr.

stdout is left to the stdout sink, so `collector run | jq` sees only events. URLs in log lines
have their credentials and secret query parameters masked. The libraries' own warnings (uvicorn
on a malformed request, psycopg, nats) are rendered the same way, with a `logger` field, so a
JSON log holds nothing but JSON lines.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from collector.settings import mask_url

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def mask_urls(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask every URL in the line's text, an exception's included: the call sites mask the
    URLs they log, and this catches those that arrive inside another library's message."""
    for key, value in event.items():
        if isinstance(value, str) and "://" in value:
            event[key] = _URL.sub(lambda url: mask_url(url[0]), value)
    return event


def _stderr_logger(*args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


class _LibraryLines(logging.Handler):
    """The standard library's records, written to sys.stderr as it is when they are logged."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


def configure(level: str = "info", fmt: str = "auto") -> None:
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    stamp: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    render: list[structlog.typing.Processor] = [
        structlog.processors.format_exc_info,
        mask_urls,
        renderer,
    ]
    # Libraries log through the standard library: their warnings and errors (their info lines
    # repeat ours) go through the same renderer, instead of Python's bare last-resort lines.
    handler = _LibraryLines(max(_LEVELS[level], logging.WARNING))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *stamp],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _LibraryLines)]:
        root.removeHandler(old)
    root.addHandler(handler)
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *stamp, *render],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        # Look stderr up per logger, not once: it may be replaced (pytest, daemons) later.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

"""structlog setup: human-readable on a terminal, JSON lines otherwise; always to stderr.

stdout is left to the stdout sink, so `collector run | jq` sees only events. URLs in log lines
have their credentials and secret query parameters masked.
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


def configure(level: str = "info", fmt: str = "auto") -> None:
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_urls,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        # Look stderr up per logger, not once: it may be replaced (pytest, daemons) later.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

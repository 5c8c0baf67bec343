"""Connecting to PostgreSQL: what waiting can fix (a server starting or not yet reachable) is
retried until a deadline; what it cannot (a missing database or role, a refused password, a
malformed URL) fails at once, unless the caller is a service that waits for an operator.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import psycopg
import structlog

from collector.errors import DatabaseUnavailable, first_line

log = structlog.get_logger("collector")

ATTEMPT_TIMEOUT_S = 10  # libpq's connect_timeout, per attempt
MAX_DELAY_S = 5.0

# libpq reports a failed connection as text only, without the server's SQLSTATE. These are the
# words of the refusals that waiting does not change, in the server's (English) messages and
# libpq's own. Anything else — refused, reset, timed out, a host not yet in DNS, a server
# starting up, or a refusal in another language — counts as transient: retried, then reported.
_PERMANENT = (
    "does not exist",  # FATAL: database "x" / role "x" does not exist
    "authentication failed",  # FATAL: password / peer / ... authentication failed
    "no pg_hba.conf entry",
    "pg_hba.conf rejects connection",
    "is not permitted to log in",
    "permission denied for database",
    "no password supplied",
    "SSL was required",
    "connection is bad: invalid",  # libpq refused a parameter (port, sslmode, ...)
)


def waiting_helps(exc: psycopg.Error) -> bool:
    """False when trying again cannot succeed until someone changes the server or the URL."""
    if not isinstance(exc, psycopg.OperationalError):
        return False  # a malformed URL or parameter (psycopg.ProgrammingError)
    text = str(exc)
    return not any(words in text for words in _PERMANENT)


async def connect(
    url: str, wait_s: float, *, retry_permanent: bool = False
) -> psycopg.AsyncConnection[Any]:
    """A connection in autocommit. Transient errors are retried for `wait_s` seconds (0: one
    attempt), logged as `database_unavailable`; permanent ones too with `retry_permanent`,
    else they fail at once. DatabaseUnavailable with the last error after that."""
    deadline = time.monotonic() + wait_s
    delay = 0.2
    while True:
        try:
            conn: psycopg.AsyncConnection[Any] = await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=ATTEMPT_TIMEOUT_S
            )
            return conn
        except psycopg.Error as exc:
            error = first_line(exc)
            if isinstance(exc, psycopg.ProgrammingError):
                raise DatabaseUnavailable(f"database: invalid URL: {error}") from None
            if not (retry_permanent or waiting_helps(exc)):
                raise DatabaseUnavailable(f"database: cannot connect: {error}") from None
            if time.monotonic() + delay > deadline:
                waited = f" (waited {wait_s:g} s)" if wait_s > 0 else ""
                raise DatabaseUnavailable(f"database: cannot connect{waited}: {error}") from None
            log.warning("database_unavailable", error=error, retry_in_s=delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)

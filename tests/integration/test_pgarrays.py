"""Arrays built whole in binary form (collector.sinks.pgarrays) read back as psycopg sends them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from collector.sinks import pgarrays
from collector.sinks.pgarrays import text_array, timestamptz_array

Conn = psycopg.Connection[Any]

TEXTS: list[list[str | None]] = [
    [],
    ["a"],
    ["", "é", "日本語 🎉", "x" * 70_000],
    [None],
    ["a", None, "b", None],
    ["same", "same", "other", "same", None, None],
]
TIMES = [
    [],
    [datetime(2000, 1, 1, tzinfo=UTC)],
    [
        datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 11, 23, 16, 17, 1, 68_104, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2026, 11, 23, 16, 17, 1, 68_104, tzinfo=UTC),
        datetime(2026, 11, 23, 16, 17, 1, 68_104, tzinfo=UTC),
    ],
]


@pytest.fixture
def conn(db: Conn) -> Conn:
    pgarrays.register(db.adapters)
    return db


def echo(conn: Conn, value: Any, cast: str) -> Any:
    row = conn.execute(f"SELECT %b::{cast}", [value]).fetchone()
    assert row is not None
    return row[0]


@pytest.mark.parametrize("values", TEXTS)
@pytest.mark.parametrize("repeated", [False, True])
def test_text_arrays_read_back_as_sent(
    conn: Conn, values: list[str | None], repeated: bool
) -> None:
    assert echo(conn, text_array(values, repeated=repeated), "text[]") == values


def test_bytes_are_sent_as_their_utf8_text(conn: Conn) -> None:
    sent = text_array([b'{"a": 1}', "b", "é".encode(), None])
    assert echo(conn, sent, "text[]") == ['{"a": 1}', "b", "é", None]


@pytest.mark.parametrize("values", TIMES)
@pytest.mark.parametrize("repeated", [False, True])
def test_timestamptz_arrays_read_back_as_sent(
    conn: Conn, values: list[datetime], repeated: bool
) -> None:
    assert echo(conn, timestamptz_array(values, repeated=repeated), "timestamptz[]") == values


@pytest.mark.parametrize("value", ["a\x00b", b"a\x00b"])
@pytest.mark.parametrize("repeated", [False, True])
def test_a_nul_character_is_a_data_error_as_psycopg_s(value: str | bytes, repeated: bool) -> None:
    # The postgres sink isolates data errors: it needs psycopg's DataError, as before.
    with pytest.raises(psycopg.DataError, match="NUL"):
        text_array(["fine", value], repeated=repeated)

"""Whole arrays dumped at once in PostgreSQL's binary array format, for `collector.ingest`.

psycopg dumps a list element by element through Python (~0.5 µs per element here); a batch
has 13 arrays of up to thousands of elements. These build each array's bytes in one pass,
encoding a value that repeats (a type, a source) once per array.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, cast

import psycopg
from psycopg.adapt import AdaptersMap, Dumper, PyFormat
from psycopg.pq import Format

TEXT_OID = 25
TEXT_ARRAY_OID = 1009
TIMESTAMPTZ_OID = 1184
TIMESTAMPTZ_ARRAY_OID = 1185

_pack_int = struct.Struct(">i").pack
_header = struct.Struct(">iiiii").pack  # dimensions, has nulls, element type, length, lower bound
_NULL = _pack_int(-1)
_EIGHT = _pack_int(8)
_NUL_MESSAGE = "PostgreSQL text fields cannot contain NUL (0x00) bytes"


class BinaryArray:
    """An array already in binary form; `oid` is the array type."""

    __slots__ = ("data",)
    oid = 0

    def __init__(self, data: bytes) -> None:
        self.data = data


class TextArray(BinaryArray):
    __slots__ = ()
    oid = TEXT_ARRAY_OID


class TimestamptzArray(BinaryArray):
    __slots__ = ()
    oid = TIMESTAMPTZ_ARRAY_OID


class _BinaryArrayDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        data: bytes = obj.data
        return data


class _TextArrayDumper(_BinaryArrayDumper):
    oid = TEXT_ARRAY_OID


class _TimestamptzArrayDumper(_BinaryArrayDumper):
    oid = TIMESTAMPTZ_ARRAY_OID


def register(adapters: AdaptersMap) -> None:
    """Teach a connection (or a map) to send the arrays built here."""
    adapters.register_dumper(TextArray, _TextArrayDumper)
    adapters.register_dumper(TimestamptzArray, _TimestamptzArrayDumper)


def text_array(values: Iterable[str | bytes | None], *, repeated: bool = False) -> TextArray:
    """A text[] of values (bytes are taken as UTF-8 text); `repeated`: few distinct values,
    each encoded once. psycopg.DataError for a NUL character, as psycopg's own dumper."""
    parts: list[bytes] = []
    append = parts.append
    count = nulls = 0
    if repeated:
        seen: dict[str | bytes | None, bytes] = {}
        for value in values:
            element = seen.get(value)
            if element is None:
                element = seen[value] = _text_element(value)
                nulls += value is None
            append(element)
        count = len(parts)
    else:
        for value in values:
            count += 1
            if value is None:
                append(_NULL)
                nulls = 1
                continue
            data = value.encode() if isinstance(value, str) else value
            if 0 in data:  # an int: `b"\\x00" in data` costs ten times more
                raise psycopg.DataError(_NUL_MESSAGE)
            append(_pack_int(len(data)))
            append(data)
    return TextArray(_array(parts, TEXT_OID, count, nulls))


def timestamptz_array(values: Iterable[datetime], *, repeated: bool = False) -> TimestamptzArray:
    """A timestamptz[] of timezone-aware datetimes."""
    dump = _dump_timestamptz
    parts: list[bytes] = []
    append = parts.append
    if repeated:
        seen: dict[datetime, bytes] = {}
        for value in values:
            element = seen.get(value)
            if element is None:
                element = seen[value] = _EIGHT + dump(value)
            append(element)
    else:
        for value in values:
            append(_EIGHT + dump(value))
    return TimestamptzArray(_array(parts, TIMESTAMPTZ_OID, len(parts), 0))


def _text_element(value: str | bytes | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode() if isinstance(value, str) else value
    if 0 in data:  # an int: `b"\\x00" in data` costs ten times more
        raise psycopg.DataError(_NUL_MESSAGE)
    return _pack_int(len(data)) + data


def _array(parts: list[bytes], element_oid: int, count: int, nulls: int) -> bytes:
    if not count:
        return _pack_int(0) + _pack_int(0) + _pack_int(element_oid)  # no dimensions: empty
    return b"".join([_header(1, 1 if nulls else 0, element_oid, count, 1), *parts])


# psycopg's own (C) dumper of one timestamptz: microseconds since 2000-01-01 UTC, 8 bytes.
_dump_timestamptz = cast(
    Callable[[datetime], bytes],
    psycopg.adapters.get_dumper(datetime, PyFormat.BINARY)(datetime).dump,
)

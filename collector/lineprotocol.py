"""InfluxDB line protocol, and the ClusterCockpit message kinds carried in it (CCMessages).

`measurement[,tag=value…] field=value[,field=value…] [timestamp]` — one point per line (more
when a string field holds line breaks); '#' lines are comments. ClusterCockpit tells the kind of
a message by its field: `event` (a string) is an event, `log` a log line, `control` a control
message, `query` a query (cc-lib's NewQuery), `value` a metric.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

FieldValue = str | float | int | bool
Kind = Literal["event", "log", "control", "query", "metric"]

_LINE = re.compile(
    r"(?P<key>(?:[^ \\]|\\.)+) +"
    r'(?P<fields>(?:[^ "\\]|\\.|"(?:[^"\\]|\\.)*")+)'
    r"(?: +(?P<ts>-?\d+))? *",
    re.DOTALL,
)
_FIELD = re.compile(r'((?:[^,=\\ ]|\\.)+)=("(?:[^"\\]|\\.)*"|[^,"]*)(,|$)', re.DOTALL)
_UNESCAPE_KEY = re.compile(r"\\([,= \\])")
# As InfluxDB's and ClusterCockpit's decoders read string fields: \n \r \t are line break,
# carriage return and tab (ClusterCockpit's encoder writes them so); other backslashes stay.
_UNESCAPE_STRING = re.compile(r'\\(["\\nrt])')
_STRING_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_KEY_PART = re.compile(r"(?:[^ \\]|\\.)*")
_ESCAPE = re.compile(r"\\.")
_SPLIT_UNESCAPED_COMMA = re.compile(r"(?<!\\),")
_TRUE = {"t", "T", "true", "True", "TRUE"}
_FALSE = {"f", "F", "false", "False", "FALSE"}


class LineProtocolError(ValueError):
    """A line that is not valid line protocol; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    timestamp: int | None

    @property
    def kind(self) -> Kind:
        """What ClusterCockpit makes of it: the first of event, log, control, query, metric."""
        for kind in ("event", "log", "control", "query"):
            if isinstance(self.fields.get(kind), str):
                return kind
        if "value" in self.fields:
            return "metric"
        raise LineProtocolError(
            "no ClusterCockpit field: expected a string field event, log, control or query, "
            "or a numeric field value"
        )


def parse_lines(text: str) -> list[tuple[int, str, Point | LineProtocolError]]:
    """Each entry but blank and comment lines: the number of its first line, its text, and its
    point or what is wrong with it.

    An entry is one line, or more when a string field holds line breaks as they are
    (influxdb-client-go writes them so; InfluxDB's and ClusterCockpit's decoders read on to the
    closing quote). When the string never closes, or the lines joined are no point, the entry
    is its first line alone: a stray quote spoils only its own line.
    """
    lines = text.split("\n")
    # closes[i]: the line at whose end a string open at the start of line i is closed (None:
    # never). Each line is scanned once, and lines joined in vain are not joined again up to
    # the same end, so a body of stray quotes costs no more than another.
    closes: list[int | None] = [None] * (len(lines) + 1)
    for index in range(len(lines) - 1, -1, -1):
        closes[index] = index if _odd_quotes(lines[index]) else closes[index + 1]
    results: list[tuple[int, str, Point | LineProtocolError]] = []
    joined_in_vain: int | None = None
    index = 0
    while index < len(lines):
        number, entry = index + 1, lines[index].strip()
        index += 1
        if not entry or entry.startswith("#"):
            continue
        last = closes[index] if _odd_quotes(_KEY_PART.sub("", entry, count=1)) else None
        if last is not None and last != joined_in_vain:
            joined = "\n".join(lines[number - 1 : last + 1]).strip()
            try:
                results.append((number, joined, parse_line(joined)))
                index = last + 1
                continue
            except LineProtocolError:
                joined_in_vain = last
        try:
            results.append((number, entry, parse_line(entry)))
        except LineProtocolError as exc:
            results.append((number, entry, exc))
    return results


def _odd_quotes(text: str) -> bool:
    """Whether `text` has an odd number of quotes that no backslash escapes."""
    return '"' in text and _ESCAPE.sub("", text).count('"') % 2 == 1


def parse_line(line: str) -> Point:
    match = _LINE.fullmatch(line)
    if match is None:
        raise LineProtocolError(
            "not line protocol: expected 'measurement[,tag=value…] field=value[,…] [timestamp]'"
        )
    measurement, *tag_parts = _SPLIT_UNESCAPED_COMMA.split(match["key"])
    if not measurement:
        raise LineProtocolError("measurement: missing")
    tags: dict[str, str] = {}
    for part in tag_parts:
        key, sep, value = _split_unescaped_equals(part)
        if not sep or not key or not value:
            raise LineProtocolError(f"tag {part!r}: expected key=value")
        tags[_unescape(key)] = _unescape(value)
    fields = _parse_fields(match["fields"])
    timestamp = int(match["ts"]) if match["ts"] is not None else None
    return Point(_unescape(measurement), tags, fields, timestamp)


def _parse_fields(text: str) -> dict[str, FieldValue]:
    fields: dict[str, FieldValue] = {}
    position = 0
    for match in _FIELD.finditer(text):
        if match.start() != position:
            break
        key, raw = _unescape(match[1]), match[2]
        fields[key] = _field_value(key, raw)
        position = match.end()
        if match[3] == "":
            break
    if position != len(text) or not fields:
        raise LineProtocolError(f"fields {text!r}: expected field=value[,field=value…]")
    return fields


def _field_value(key: str, raw: str) -> FieldValue:
    if raw.startswith('"'):
        return _UNESCAPE_STRING.sub(lambda m: _STRING_ESCAPES[m[1]], raw[1:-1])
    if not raw:
        raise LineProtocolError(f"field {key}: missing value")
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    try:
        if raw[-1] in "iu":
            number = int(raw[:-1])
            if raw[-1] == "u" and number < 0:
                raise ValueError
            return number
        value = float(raw)
    except ValueError:
        raise LineProtocolError(
            f"field {key}: {raw!r} is not a number, boolean or string"
        ) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise LineProtocolError(f"field {key}: {raw!r} is not a finite number")
    return value


def _split_unescaped_equals(part: str) -> tuple[str, str, str]:
    index = 0
    while True:
        index = part.find("=", index)
        if index <= 0 or part[index - 1] != "\\":
            break
        index += 1
    if index < 0:
        return part, "", ""
    return part[:index], "=", part[index + 1 :]


def _unescape(text: str) -> str:
    return _UNESCAPE_KEY.sub(r"\1", text) if "\\" in text else text


def timestamp_ns(timestamp: int, precision: str | None = None) -> int:
    """A timestamp in nanoseconds: `precision` (s, ms, us, ns) or guessed from its magnitude.

    Guessing works for times between 2001 and 2286: seconds have 10 digits, milliseconds 13,
    microseconds 16 and nanoseconds 19.
    """
    factors = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "µs": 1_000, "ns": 1}
    if precision is not None:
        if precision not in factors:
            raise LineProtocolError(f"precision {precision!r}: use s, ms, us or ns")
        return timestamp * factors[precision]
    magnitude = abs(timestamp)
    if magnitude < 10**11:
        return timestamp * factors["s"]
    if magnitude < 10**14:
        return timestamp * factors["ms"]
    if magnitude < 10**17:
        return timestamp * factors["us"]
    return timestamp

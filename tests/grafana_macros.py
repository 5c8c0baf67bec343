"""What Grafana does to a PostgreSQL panel's rawSql before PostgreSQL sees it, in Python.

Two stages, as in Grafana: the browser replaces template variables (TemplateSrv.replace with
the SQL data source's interpolateVariable as the default format), then the backend expands
the data source macros (sqleng.Interpolate for $__interval, $__interval_ms, $__unixEpochFrom(),
$__unixEpochTo(); then the postgres macro engine for $__timeFilter(...) and friends). Ported
from Grafana's sources:

- public/app/features/templating/template_srv.ts (variable regex, "All" handling) and
  public/app/features/templating/formatRegistry.ts (the :sqlstring, :csv, ... formats);
- packages/grafana-sql/src/datasource/SqlDatasource.ts (interpolateVariable);
- packages/grafana-data/src/datetime/rangeutil.ts (calculateInterval, roundInterval,
  secondsToHms: what $__interval becomes);
- pkg/tsdb/grafana-postgresql-datasource/sqleng/sql_engine.go (Interpolate) and
  pkg/tsdb/grafana-postgresql-datasource/macros.go (the macro engine, timescaledb off).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

ALL = "$__all"  # Grafana's value of the "All" option (ALL_VARIABLE_VALUE)

# template_srv.ts / variables/utils.ts: $var, [[var]], [[var:fmt]], ${var}, ${var.path},
# ${var:fmt}
VARIABLE_RE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}"
)
# macros.go: rsIdentifier and sExpr
MACRO_RE = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")


class GrafanaError(ValueError):
    """What Grafana would answer with an error (or what this port does not support)."""


@dataclass
class Variable:
    """A dashboard variable as TemplateSrv sees it: its options and its current value."""

    name: str
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    options: list[str] = field(default_factory=list)  # values, without the "All" option
    current: str | list[str] = ""  # a value, a list of values, or ALL


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime


# -- time range and interval ----------------------------------------------------------------

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}
_RELATIVE = re.compile(r"^now(?:-(\d+)([smhdwMy]))?$")


def relative_time(expr: str, now: datetime) -> datetime:
    """The dashboard time pickers' `now` and `now-7d` forms (no rounding)."""
    match = _RELATIVE.match(expr)
    if not match:
        raise GrafanaError(f"time {expr!r}: only now and now-<n><unit> are supported here")
    if match.group(1) is None:
        return now
    n, unit = int(match.group(1)), match.group(2)
    if unit == "M":
        months = now.month - 1 - n
        year = now.year + months // 12
        return now.replace(year=year, month=months % 12 + 1)
    if unit == "y":
        return now.replace(year=now.year - n)
    return now - timedelta(seconds=n * _UNIT_SECONDS[unit])


def dashboard_range(dashboard: Mapping[str, Any], now: datetime) -> TimeRange:
    time = dashboard["time"]
    return TimeRange(relative_time(time["from"], now), relative_time(time["to"], now))


def round_interval(ms: float) -> int:
    """rangeutil.roundInterval: a "nice" interval in milliseconds."""
    ladder = (
        (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500),
        (1500, 1000), (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000),
        (25000, 20000), (45000, 30000), (90000, 60000), (210000, 120000), (450000, 300000),
        (750000, 600000), (1050000, 900000), (1500000, 1200000), (2700000, 1800000),
        (5400000, 3600000), (9000000, 7200000), (16200000, 10800000), (32400000, 21600000),
        (86400000, 43200000), (604800000, 86400000), (1814400000, 604800000),
        (3628800000, 2592000000),
    )  # fmt: skip
    for limit, value in ladder:
        if ms < limit:
            return value
    return 31536000000


def seconds_to_hms(seconds: float) -> str:
    """rangeutil.secondsToHms: how $__interval is written."""
    years = math.floor(seconds / 31536000)
    if years:
        return f"{years}y"
    days = math.floor((seconds % 31536000) / 86400)
    if days:
        return f"{days}d"
    hours = math.floor((seconds % 31536000 % 86400) / 3600)
    if hours:
        return f"{hours}h"
    minutes = math.floor((seconds % 31536000 % 86400 % 3600) / 60)
    if minutes:
        return f"{minutes}m"
    secs = math.floor(seconds % 31536000 % 86400 % 3600 % 60)
    if secs:
        return f"{secs}s"
    ms = math.floor(seconds * 1000.0)
    if ms:
        return f"{ms}ms"
    return "less than a millisecond"


def interval_to_ms(text: str) -> float:
    """rangeutil.intervalToMs (a unit-less number is seconds)."""
    try:
        return float(int(text)) * 1000
    except ValueError:
        pass
    match = re.search(r"(-?\d+(?:\.\d+)?)(ms|[Mwdhmsy])", text)
    if not match:
        raise GrafanaError(f"interval {text!r}: not an interval")
    if match.group(2) == "ms":
        return int(float(match.group(1)))
    return int(float(match.group(1))) * _UNIT_SECONDS[match.group(2)] * 1000


def calculate_interval(
    time_range: TimeRange, resolution: int, low_limit: str = "1m"
) -> tuple[str, int]:
    """rangeutil.calculateInterval: ($__interval, $__interval_ms) for a panel.

    resolution is the panel's maxDataPoints (else its width in pixels); low_limit the panel's
    interval, else the data source's timeInterval (the SQL data sources default to 1m).
    """
    span_ms = (time_range.end - time_range.start).total_seconds() * 1000
    interval_ms = round_interval(span_ms / resolution)
    interval_ms = max(interval_ms, int(interval_to_ms(low_limit)))
    return seconds_to_hms(interval_ms / 1000), interval_ms


# -- stage 1: template variables (the browser) ----------------------------------------------


def _sql_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_interpolate_variable(value: Any, variable: Variable | None) -> Any:
    """SqlDatasource.interpolateVariable, the default format of SQL data sources.

    A single string is escaped but not quoted; several values are quoted and joined with ','.
    (Grafana before 12 also quoted a single string of a multi-value or include-all variable;
    the dashboards here name a format on every reference, so they do not depend on it.)
    """
    del variable
    if isinstance(value, str):
        return value.replace("'", "''")
    if isinstance(value, int | float):
        return value
    if isinstance(value, list):
        return ",".join(_sql_quote(v) for v in value)
    return value


def format_value(value: Any, fmt: str | None, variable: Variable | None) -> str:
    """formatRegistry: the named formats used with SQL."""
    if fmt is None:
        return str(sql_interpolate_variable(value, variable))
    name = fmt.split(":", 1)[0]
    values = value if isinstance(value, list) else None
    if name == "sqlstring":
        if values is not None:
            return ",".join(_sql_quote(v) for v in values)
        return _sql_quote(str(value))
    if name == "singlequote":
        if values is not None:
            return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
        return "'" + str(value).replace("'", "\\'") + "'"
    if name == "doublequote":
        if values is not None:
            return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
        return '"' + str(value).replace('"', '\\"') + '"'
    if name == "csv":
        return ",".join(values) if values is not None else str(value)
    if name == "pipe":
        return "|".join(values) if values is not None else str(value)
    if name == "raw":
        return str(value) if values is None else ",".join(values)
    if name == "json":
        return json.dumps(value, separators=(",", ":"))
    if name == "percentencode":
        text = "{" + ",".join(values) + "}" if values is not None else str(value)
        return quote(text, safe="-_.~")  # encodeURIComponent, plus !'()* encoded
    if name == "glob":
        if values is not None and len(values) > 1:
            return "{" + ",".join(values) + "}"
        return values[0] if values else str(value)
    raise GrafanaError(f"variable format {fmt!r} is not supported by this port")


def replace_variables(
    text: str,
    variables: Mapping[str, Variable],
    scoped: Mapping[str, Any] | None = None,
) -> str:
    """TemplateSrv.replace(text, scopedVars, sqlDatasource.interpolateVariable)."""
    scoped = scoped or {}

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if match.group(5):
            raise GrafanaError(f"${{{name}.{match.group(5)}}}: field paths are not supported")
        variable = variables.get(name)
        if name in scoped:
            return format_value(scoped[name], fmt, variable)
        if variable is None:
            return match.group(0)  # a macro ($__timeFilter) or an unknown name: left alone
        value: Any = variable.current
        if value == ALL or value == [ALL]:
            if variable.all_value:
                # "skip formatting of custom all values unless format set to text or
                # percentencode": the allValue goes in as it is written.
                if fmt not in ("text", "percentencode"):
                    return replace_variables(variable.all_value, variables, scoped)
                value = variable.all_value
            else:
                value = list(variable.options)
        return format_value(value, fmt, variable)

    return VARIABLE_RE.sub(one, text)


def variable_references(text: str) -> list[tuple[str, str | None, str]]:
    """(name, format, as written) of every variable-shaped reference in text."""
    found = []
    for match in VARIABLE_RE.finditer(text):
        name = match.group(1) or match.group(2) or match.group(4)
        found.append((name, match.group(3) or match.group(6), match.group(0)))
    return found


# -- stage 2: data source macros (the backend) ----------------------------------------------


def go_rfc3339nano(moment: datetime) -> str:
    """Go's time.Format(time.RFC3339Nano) of a UTC time: trailing zeros of the fraction cut."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += ("." + f"{moment.microsecond:06d}").rstrip("0")
    return text + "Z"


def go_float(value: float) -> str:
    """Go's fmt %v of a float64: strconv 'g' with the shortest digits, which switches to the
    exponent form from 1e+06 (strconv/ftoa.go: "if precision was the shortest possible, use
    precision 6 for this decision") and below 1e-4."""
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    point = len(mantissa) + exponent  # position of the decimal point
    exp = point - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        body = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
        return f"{prefix}{body}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{mantissa}"
    if point >= len(mantissa):
        return prefix + mantissa + "0" * (point - len(mantissa))
    return f"{prefix}{mantissa[:point]}.{mantissa[point:]}"


def go_parse_interval(text: str) -> timedelta:
    """gtime.ParseInterval: Go durations (ms, s, m, h, ...) plus d, w, M and y."""
    match = re.fullmatch(r"(\d+)([dwMy])", text)
    if match:
        n, unit = int(match.group(1)), match.group(2)
        days = {"d": 1, "w": 7, "M": 30, "y": 365}[unit]
        return timedelta(days=n * days)
    total = timedelta()
    pos = 0
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    for part in re.finditer(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text):
        if part.start() != pos:
            break
        total += timedelta(seconds=float(part.group(1)) * units[part.group(2)])
        pos = part.end()
    if pos != len(text) or not text:
        raise GrafanaError(f"error parsing interval {text}")
    return total


def _time_group(args: list[str]) -> str:
    if len(args) < 2:
        raise GrafanaError("macro __timeGroup needs time column and interval and optional fill")
    seconds = go_float(go_parse_interval(args[1].strip("'")).total_seconds())
    if len(args) == 3 and args[2] not in ("NULL", "previous"):
        try:
            float(args[2])
        except ValueError:
            raise GrafanaError(f"error parsing fill value {args[2]}") from None
    return f"floor(extract(epoch from {args[0]})/{seconds})*{seconds}"


def _unix_group(args: list[str]) -> str:
    if len(args) < 2:
        raise GrafanaError("macro __unixEpochGroup needs time column and interval")
    seconds = go_float(go_parse_interval(args[1].strip("'")).total_seconds())
    return f"floor(({args[0]})/{seconds})*{seconds}"


def _evaluate(name: str, args: list[str], time_range: TimeRange) -> str:
    start = go_rfc3339nano(time_range.start)
    end = go_rfc3339nano(time_range.end)
    start_unix = math.floor(time_range.start.timestamp())
    end_unix = math.floor(time_range.end.timestamp())
    start_ns = start_unix * 1_000_000_000 + time_range.start.microsecond * 1000
    end_ns = end_unix * 1_000_000_000 + time_range.end.microsecond * 1000
    needs_column = {
        "__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter", "__unixEpochNanoFilter",
    }  # fmt: skip
    if name in needs_column and (not args or args == [""]):
        raise GrafanaError(f"missing time column argument for macro {name}")
    handlers: dict[str, Callable[[], str]] = {
        "__time": lambda: f'{args[0]} AS "time"',
        "__timeEpoch": lambda: f'extract(epoch from {args[0]}) as "time"',
        "__timeFilter": lambda: f"{args[0]} BETWEEN '{start}' AND '{end}'",
        "__timeFrom": lambda: f"'{start}'",
        "__timeTo": lambda: f"'{end}'",
        "__timeGroup": lambda: _time_group(args),
        "__timeGroupAlias": lambda: _time_group(args) + ' AS "time"',
        "__unixEpochFilter": lambda: f"{args[0]} >= {start_unix} AND {args[0]} <= {end_unix}",
        "__unixEpochNanoFilter": lambda: f"{args[0]} >= {start_ns} AND {args[0]} <= {end_ns}",
        "__unixEpochNanoFrom": lambda: str(start_ns),
        "__unixEpochNanoTo": lambda: str(end_ns),
        "__unixEpochGroup": lambda: _unix_group(args),
        "__unixEpochGroupAlias": lambda: _unix_group(args) + ' AS "time"',
    }
    if name not in handlers:
        raise GrafanaError(f'unknown macro "{name}"')
    return handlers[name]()


def expand_macros(sql: str, time_range: TimeRange, interval: timedelta) -> str:
    """sqleng.Interpolate, then the postgres macro engine's Interpolate."""
    interval_ms = int(interval.total_seconds() * 1000)
    sql = sql.replace("$__interval_ms", str(interval_ms))
    sql = sql.replace("$__interval", _go_format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(math.floor(time_range.start.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(math.floor(time_range.end.timestamp())))
    original = sql

    def one(match: re.Match[str]) -> str:
        name, raw_args = match.group(1), match.group(2)
        if name == "__timeGroup":
            # "detect if $__timeGroup is supposed to add AS time for pre 5.3 compatibility":
            # a ',' right after the first occurrence of the same text.
            index = original.find(match.group(0))
            if index >= 0:
                index += len(match.group(0))
                if len(original) > index and original[index] == ",":
                    name = "__timeGroupAlias"
        args = [arg.strip(" ") for arg in raw_args.split(",")]
        return _evaluate(name, args, time_range)

    return MACRO_RE.sub(one, sql)


def _go_format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval: how the backend writes a $__interval the browser left."""
    ms = int(interval.total_seconds() * 1000)
    for unit, size in (("y", 31536000000), ("w", 604800000), ("d", 86400000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    if ms >= 3600000 and ms % 3600000 == 0:
        return f"{ms // 3600000}h"
    if ms >= 60000 and ms % 60000 == 0:
        return f"{ms // 60000}m"
    if ms >= 1000 and ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


# -- both stages ----------------------------------------------------------------------------


def interpolate(
    raw_sql: str,
    variables: Mapping[str, Variable],
    time_range: TimeRange,
    *,
    resolution: int = 1000,
    low_limit: str = "1m",
) -> str:
    """The SQL PostgreSQL receives for a panel query or a variable query."""
    text, interval_ms = calculate_interval(time_range, resolution, low_limit)
    scoped = {
        "__interval": text,
        "__interval_ms": interval_ms,
        "__from": str(int(time_range.start.timestamp() * 1000)),
        "__to": str(int(time_range.end.timestamp() * 1000)),
    }
    sql = replace_variables(raw_sql, variables, scoped)
    return expand_macros(sql, time_range, timedelta(milliseconds=interval_ms))


def metric_find_values(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """ResponseParser.transformMetricFindResponse: a variable query's options.

    With __text and __value columns, those; else every value of every column, deduplicated.
    """
    if "__value" in columns:
        index = columns.index("__value")
        values = [row[index] for row in rows]
    else:
        values = [value for row in rows for value in row]
    seen: dict[str, None] = {}
    for value in values:
        if value is not None:
            seen.setdefault(str(value), None)
    return list(seen)

"""The shipped Grafana files as the tests read them: dashboards, their panels and queries,
variables, and the checks Grafana applies to a query's result for each kind of panel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCE_UID = "collector-postgres"
DATASOURCE_TYPE = "grafana-postgresql-datasource"

# Core panels only: nothing a plugin would have to provide.
CORE_PANELS = {
    "timeseries", "stat", "gauge", "bargauge", "table", "barchart", "piechart", "text", "logs",
    "state-timeline", "row",
}  # fmt: skip
GRAFANA_GLOBALS = {"__interval", "__interval_ms", "__from", "__to", "__timezone"}

# PostgreSQL type OIDs, as psycopg reports them in cursor.description
TIMESTAMPTZ, TIMESTAMP, DATE = 1184, 1114, 1082
NUMERIC_OIDS = {20, 21, 23, 700, 701, 1700}  # int8, int2, int4, float4, float8, numeric
TEXT_OIDS = {25, 1043, 19, 18}  # text, varchar, name, char
TIME_OIDS = {TIMESTAMPTZ, TIMESTAMP, DATE}


@dataclass(frozen=True)
class Query:
    dashboard: str  # uid
    panel: str  # title (or "variable <name>")
    panel_type: str
    ref: str
    format: str
    sql: str
    target: dict[str, Any]
    panel_json: dict[str, Any]


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard file, by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included (they sit in the row's "panels")."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[Query]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield Query(
                dashboard["uid"],
                panel.get("title", ""),
                panel["type"],
                target.get("refId", ""),
                target.get("format", "time_series"),  # Grafana's default
                target.get("rawSql", ""),
                target,
                panel,
            )


def variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(dashboard.get("templating", {}).get("list", []))


def strip_literals(sql: str) -> str:
    """The SQL without its string literals (so that names inside strings are not read)."""
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


_RELATION = re.compile(
    r"\b(?:from|join)\s+(?:lateral\s+)?(?P<name>\(|[a-z_][\w$]*(?:\.[a-z_][\w$]*)?)", re.I
)


def relations(sql: str) -> list[str]:
    """The names read by FROM and JOIN clauses ("(" for a subquery). `extract(epoch FROM x)`
    is not a FROM clause."""
    text = strip_literals(sql)
    names = []
    for match in _RELATION.finditer(text):
        before = text[: match.start()].rstrip()
        if re.search(r"extract\s*\(\s*\w+$", before, re.I):
            continue
        names.append(match.group("name"))
    return names


def function_calls(sql: str) -> list[str]:
    """Schema-qualified names called as functions, e.g. api.dora_lead_time."""
    return re.findall(r"\b([a-z_]\w*\.[a-z_]\w*)\s*\(", strip_literals(sql), re.I)


# -- what a panel needs from its query's result ----------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    oid: int


def shape_problems(
    query: Query, columns: Sequence[Column], rows: Sequence[Sequence[Any]]
) -> list[str]:
    """Why Grafana could not draw this panel from this result (empty when it can)."""
    problems: list[str] = []
    numeric = [c for c in columns if c.oid in NUMERIC_OIDS]
    text = [c for c in columns if c.oid in TEXT_OIDS]
    if query.format == "time_series":
        problems += _time_series_problems(columns, rows)
    elif query.panel_type in ("stat", "gauge", "bargauge", "piechart"):
        if not numeric:
            problems.append(f"{query.panel_type} needs a numeric column")
    elif query.panel_type == "barchart":
        if not numeric:
            problems.append("barchart needs a numeric column")
        if not text and not any(c.oid in TIME_OIDS for c in columns):
            problems.append("barchart needs a text or time column for its x axis")
    elif query.panel_type == "logs":
        if not any(c.oid in TIME_OIDS for c in columns):
            problems.append("logs needs a time column")
        if not text:
            problems.append("logs needs a text column (the line)")
        else:  # the first text column is the line the panel shows
            line = columns.index(text[0])
            if any(row[line] is None for row in rows):
                problems.append(f"null in column {text[0].name}: the logs panel shows no line")
    return problems


def _time_series_problems(columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> list[str]:
    """sqleng: a column named time (a timestamp, or epoch numbers Grafana converts), other
    columns numeric (values) or text (labels: long format, which must be sorted by time)."""
    names = [c.name for c in columns]
    if "time" not in names:
        return ["time_series format needs a column named time"]
    index = names.index("time")
    time_column = columns[index]
    problems = []
    if time_column.oid not in TIME_OIDS and time_column.oid not in NUMERIC_OIDS:
        problems.append(f"column time has type oid {time_column.oid}, not a time or number")
    values = [c for i, c in enumerate(columns) if i != index and c.oid in NUMERIC_OIDS]
    if not values:
        problems.append("time_series format needs a numeric value column")
    for i, column in enumerate(columns):
        if i != index and column.oid not in NUMERIC_OIDS and column.oid not in TEXT_OIDS:
            problems.append(f"column {column.name} (oid {column.oid}) is neither value nor label")
    times = [row[index] for row in rows]
    if any(t is None for t in times):
        problems.append("null in column time (data.ErrorNullTimeValues)")
    elif any(c.oid in TEXT_OIDS for c in columns) and times != sorted(times):
        problems.append("long format not sorted by time (data.ErrorSeriesUnsorted)")
    return problems

"""The port of Grafana's interpolation (tests/grafana_macros.py), held to Grafana's own tests.

Cases marked "Grafana:" are taken from Grafana's test files, with their expected text:
- pkg/tsdb/grafana-postgresql-datasource/macros_test.go (TestMacroEngine, timescaledb off);
- packages/grafana-sql/src/datasource/variable-interpolation.test.ts (interpolateVariable);
- public/app/features/templating/template_srv.test.ts (formats, All with and without allValue).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.grafana_dashboards import (
    TIMESTAMPTZ,
    Column,
    Query,
    function_calls,
    relations,
    shape_problems,
)
from tests.grafana_macros import (
    ALL,
    GrafanaError,
    TimeRange,
    Variable,
    calculate_interval,
    expand_macros,
    go_float,
    go_rfc3339nano,
    interpolate,
    metric_find_values,
    relative_time,
    replace_variables,
    seconds_to_hms,
    sql_interpolate_variable,
)

# Grafana: "Given a time range between 2018-04-12 00:00 and 2018-04-12 00:05"
FROM = datetime(2018, 4, 12, 18, 0, tzinfo=UTC)
RANGE = TimeRange(FROM, FROM + timedelta(minutes=5))
NO_INTERVAL = timedelta(minutes=1)


def expand(sql: str, time_range: TimeRange = RANGE) -> str:
    return expand_macros(sql, time_range, NO_INTERVAL)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # Grafana: interpolate __time function (and wrapped in aggregation)
        ("select $__time(time_column)", 'select time_column AS "time"'),
        ("select min($__time(time_column))", 'select min(time_column AS "time")'),
        # Grafana: interpolate __timeFilter function
        (
            "WHERE $__timeFilter(time_column)",
            "WHERE time_column BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'",
        ),
        # Grafana: interpolate __timeFrom / __timeTo function
        ("select $__timeFrom()", "select '2018-04-12T18:00:00Z'"),
        ("select $__timeTo()", "select '2018-04-12T18:05:00Z'"),
        # Grafana: interpolate __timeGroup function pre 5.3 compatibility
        (
            "SELECT $__timeGroup(time_column,'5m'), value",
            'SELECT floor(extract(epoch from time_column)/300)*300 AS "time", value',
        ),
        (
            "SELECT $__timeGroup(time_column,'5m') as time, value",
            "SELECT floor(extract(epoch from time_column)/300)*300 as time, value",
        ),
        # Grafana: interpolate __timeGroup function (and its alias)
        (
            "SELECT $__timeGroup(time_column,'5m')",
            "SELECT floor(extract(epoch from time_column)/300)*300",
        ),
        (
            "SELECT $__timeGroupAlias(time_column,'5m')",
            'SELECT floor(extract(epoch from time_column)/300)*300 AS "time"',
        ),
        # Grafana: interpolate __timeGroup function with spaces between args
        ("$__timeGroup(time_column , '5m')", "floor(extract(epoch from time_column)/300)*300"),
        (
            "$__timeGroupAlias(time_column , '5m')",
            'floor(extract(epoch from time_column)/300)*300 AS "time"',
        ),
        # Grafana: interpolate __unixEpochFilter / __unixEpochNanoFilter / From / To
        ("select $__unixEpochFilter(time)", "select time >= 1523556000 AND time <= 1523556300"),
        (
            "select $__unixEpochNanoFilter(time)",
            "select time >= 1523556000000000000 AND time <= 1523556300000000000",
        ),
        ("select $__unixEpochNanoFrom()", "select 1523556000000000000"),
        ("select $__unixEpochNanoTo()", "select 1523556300000000000"),
        # Grafana: interpolate __unixEpochGroup function (and its alias)
        (
            "SELECT $__unixEpochGroup(time_column+time_adjustment,'5m')",
            "SELECT floor((time_column+time_adjustment)/300)*300",
        ),
        (
            "SELECT $__unixEpochGroupAlias(time_column+time_adjustment,'5m')",
            'SELECT floor((time_column+time_adjustment)/300)*300 AS "time"',
        ),
    ],
)
def test_macros_as_grafana_expands_them(sql: str, expected: str) -> None:
    assert expand(sql) == expected


def test_time_filter_far_in_the_past_and_with_fractions() -> None:
    # Grafana: "Given a time range between 1960-02-01 07:00 and 1965-02-03 08:00"
    old = TimeRange(datetime(1960, 2, 1, 7, tzinfo=UTC), datetime(1965, 2, 3, 8, tzinfo=UTC))
    assert expand("WHERE $__timeFilter(time_column)", old) == (
        "WHERE time_column BETWEEN '1960-02-01T07:00:00Z' AND '1965-02-03T08:00:00Z'"
    )
    assert expand("select $__unixEpochFilter(time)", old) == (
        "select time >= -312915600 AND time <= -154886400"
    )
    # Grafana: "between 1960-02-01 07:00:00.5 and 1980-02-03 08:00:00.5": RFC3339Nano cuts
    # the fraction's trailing zeros
    half = TimeRange(
        datetime(1960, 2, 1, 7, 0, 0, 500000, tzinfo=UTC),
        datetime(1980, 2, 3, 8, 0, 0, 500000, tzinfo=UTC),
    )
    assert expand("WHERE $__timeFilter(time_column)", half) == (
        "WHERE time_column BETWEEN '1960-02-01T07:00:00.5Z' AND '1980-02-03T08:00:00.5Z'"
    )


def test_macro_errors_are_errors() -> None:
    with pytest.raises(GrafanaError, match="unknown macro"):
        expand("select $__nope(x)")
    with pytest.raises(GrafanaError, match="missing time column"):
        expand("where $__timeFilter()")
    with pytest.raises(GrafanaError, match="needs time column and interval"):
        expand("select $__timeGroup(x)")
    with pytest.raises(GrafanaError, match="error parsing interval"):
        expand("select $__timeGroup(x, 'soon')")


def test_the_backend_also_replaces_interval_and_epoch_bounds() -> None:
    # sqleng.Interpolate: what the browser left of $__interval, and the epoch bounds
    sql = "select $__interval_ms, '$__interval', $__unixEpochFrom(), $__unixEpochTo()"
    assert expand_macros(sql, RANGE, timedelta(minutes=10)) == (
        "select 600000, '10m', 1523556000, 1523556300"
    )


def test_large_groups_are_written_as_go_writes_floats() -> None:
    # 12 days: Go's %v switches to the exponent form from 1e+06 (what PostgreSQL reads back)
    assert expand("$__timeGroup(t, '12d')") == "floor(extract(epoch from t)/1.0368e+06)*1.0368e+06"
    assert expand("$__timeGroup(t, '1d')") == "floor(extract(epoch from t)/86400)*86400"
    assert expand("$__timeGroup(t, '20ms')") == "floor(extract(epoch from t)/0.02)*0.02"
    assert [go_float(x) for x in (300.0, 0.5, 1e6, 604800.0, 1e-5)] == [
        "300", "0.5", "1e+06", "604800", "1e-05",
    ]  # fmt: skip
    assert go_rfc3339nano(datetime(2018, 4, 12, 18, 0, 0, 120000, tzinfo=UTC)) == (
        "2018-04-12T18:00:00.12Z"
    )


# -- template variables ----------------------------------------------------------------------


def test_the_sql_default_format() -> None:
    # Grafana: variable-interpolation.test.ts, cases 1 to 8
    multi = Variable("v", multi=True, include_all=True)
    assert sql_interpolate_variable("value1", multi) == "value1"
    assert sql_interpolate_variable("O'Brien", multi) == "O''Brien"
    assert sql_interpolate_variable(["value1", "value2", "value3"], multi) == (
        "'value1','value2','value3'"
    )
    assert sql_interpolate_variable(["O'Brien", "Smith", "D'Angelo"], multi) == (
        "'O''Brien','Smith','D''Angelo'"
    )
    assert sql_interpolate_variable([], multi) == ""
    assert sql_interpolate_variable(42, multi) == 42
    assert sql_interpolate_variable("", Variable("v")) == ""


def state(**currents: str | list[str]) -> dict[str, Variable]:
    options = ["a", "b", "it's"]
    return {
        "multi": Variable("multi", multi=True, include_all=True, options=options,
                          current=currents.get("multi", ALL)),
        "custom_all": Variable("custom_all", multi=True, include_all=True, all_value="NULL",
                               options=options, current=currents.get("custom_all", ALL)),
        "single": Variable("single", options=["1 week"], current=currents.get("single", "1 week")),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "currents", "expected"),
    [
        # the three syntaxes, and formats (Grafana: formatRegistry)
        ("$single", {}, "1 week"),
        ("${single}", {}, "1 week"),
        ("[[single]]", {}, "1 week"),
        ("${single:sqlstring}", {}, "'1 week'"),
        ("[[single:sqlstring]]", {}, "'1 week'"),
        ("${multi:sqlstring}", {"multi": ["a", "it's"]}, "'a','it''s'"),
        ("${multi:csv}", {"multi": ["a", "b"]}, "a,b"),
        ("${multi:singlequote}", {"multi": ["a", "it's"]}, "'a','it\\'s'"),
        ("${multi:doublequote}", {"multi": ["a", 'say "x"']}, '"a","say \\"x\\""'),
        ("${multi:pipe}", {"multi": ["a", "b"]}, "a|b"),
        ("${multi:json}", {"multi": ["a", "b"]}, '["a","b"]'),
        ("${multi:percentencode}", {"multi": ["a", "b c"]}, "%7Ba%2Cb%20c%7D"),
        ("$multi", {"multi": ["a", "b"]}, "'a','b'"),
        # All without allValue: every option, formatted (Grafana: template_srv.test.ts
        # "should replace $__all with all values")
        ("${multi:sqlstring}", {}, "'a','b','it''s'"),
        ("${multi:csv}", {}, "a,b,it's"),
        ("$multi", {}, "'a','b','it''s'"),
        # All with a custom allValue: inserted as written, whatever the format ("skip
        # formatting of custom all values")
        ("ARRAY[${custom_all:sqlstring}]", {}, "ARRAY[NULL]"),
        ("${custom_all:csv}", {}, "NULL"),
        ("$custom_all", {}, "NULL"),
        ("${custom_all:sqlstring}", {"custom_all": ["b"]}, "'b'"),
        # unknown names and macros are left for the backend
        ("$__timeFilter(time) AND $nothing", {}, "$__timeFilter(time) AND $nothing"),
    ],
)
def test_variables_as_template_srv_replaces_them(
    text: str, currents: dict[str, str | list[str]], expected: str
) -> None:
    assert replace_variables(text, state(**currents)) == expected


def test_scoped_interval_variables() -> None:
    assert replace_variables("$__interval $__interval_ms", {}, {"__interval": "1h",
                             "__interval_ms": 3600000}) == "1h 3600000"  # fmt: skip


def test_what_interval_a_panel_gets() -> None:
    # rangeutil.calculateInterval with a 1m data source minimum: 7 days over 1000 points
    week = TimeRange(FROM, FROM + timedelta(days=7))
    assert calculate_interval(week, 1000) == ("10m", 600000)
    assert calculate_interval(RANGE, 1000) == ("1m", 60000)  # the low limit
    assert calculate_interval(TimeRange(FROM, FROM + timedelta(days=90)), 100) == ("12h", 43200000)
    assert [seconds_to_hms(s) for s in (0.05, 30, 300, 7200, 604800, 31536000)] == [
        "50ms", "30s", "5m", "2h", "7d", "1y",
    ]  # fmt: skip


def test_both_stages_together() -> None:
    variables = state(custom_all=["a", "it's"])
    sql = interpolate(
        "SELECT $__timeGroupAlias(time, $__interval), count(*) FROM api.events"
        " WHERE $__timeFilter(time) AND source = ANY (ARRAY[${custom_all:sqlstring}]::text[])",
        variables,
        TimeRange(FROM, FROM + timedelta(days=7)),
    )
    assert sql == (
        'SELECT floor(extract(epoch from time)/600)*600 AS "time", count(*) FROM api.events'
        " WHERE time BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-19T18:00:00Z'"
        " AND source = ANY (ARRAY['a','it''s']::text[])"
    )


def test_relative_times_and_variable_options() -> None:
    now = datetime(2024, 3, 31, 12, tzinfo=UTC)
    assert relative_time("now", now) == now
    assert relative_time("now-7d", now) == now - timedelta(days=7)
    assert relative_time("now-6h", now) == now - timedelta(hours=6)
    with pytest.raises(GrafanaError):
        relative_time("now/d", now)
    # ResponseParser.transformMetricFindResponse: every value of every column, deduplicated,
    # or __value when there is one
    assert metric_find_values(["a", "b"], [("x", "y"), ("x", None)]) == ["x", "y"]
    assert metric_find_values(["__text", "__value"], [("X", "x"), ("Y", "y")]) == ["x", "y"]


# -- the harness's own checks (tests/grafana_dashboards.py) can fail ---------------------------


def query(panel_type: str, fmt: str) -> Query:
    return Query("d", "p", panel_type, "A", fmt, "", {}, {})


def test_shape_checks_name_what_grafana_would_refuse() -> None:
    ts = query("timeseries", "time_series")
    when = datetime(2024, 1, 1, tzinfo=UTC)
    ok = [Column("time", TIMESTAMPTZ), Column("metric", 25), Column("n", 20)]
    assert shape_problems(ts, ok, [(when, "a", 1), (when, "b", 2)]) == []
    assert shape_problems(ts, [Column("t", TIMESTAMPTZ), Column("n", 20)], []) == [
        "time_series format needs a column named time"
    ]
    unsorted = [(when + timedelta(hours=1), "a", 1), (when, "b", 2)]
    assert shape_problems(ts, ok, unsorted) == [
        "long format not sorted by time (data.ErrorSeriesUnsorted)"
    ]
    assert shape_problems(ts, [Column("time", 1700), Column("j", 3802)], [(1.0, "{}")]) == [
        "time_series format needs a numeric value column",
        "column j (oid 3802) is neither value nor label",
    ]
    assert shape_problems(query("stat", "table"), [Column("rating", 25)], [("elite",)]) == [
        "stat needs a numeric column"
    ]
    assert shape_problems(query("logs", "table"), [Column("n", 20)], [(1,)]) == [
        "logs needs a time column",
        "logs needs a text column (the line)",
    ]


def test_relations_and_calls_are_read_from_sql() -> None:
    sql = (
        "SELECT extract(epoch FROM a.x - b.y), 'from collector.secret' FROM api.events e"
        " JOIN collector.events c ON true CROSS JOIN LATERAL api.dora_lead_time(now(), now()) l"
        " WHERE e.id IN (SELECT 1 FROM pg_catalog.pg_class) AND collector.ingest() IS NULL"
    )
    assert relations(sql) == [
        "api.events", "collector.events", "api.dora_lead_time", "pg_catalog.pg_class",
    ]  # fmt: skip
    assert relations("select * from (select 1) s join lateral (select 2) t on true") == ["(", "("]
    assert function_calls(sql) == ["api.dora_lead_time", "collector.ingest"]

"""The shipped Grafana dashboards, run the way Grafana runs them.

Grafana cannot run here, so every panel query and every variable query of every dashboard is
interpolated as Grafana would (tests/grafana_macros.py: template variables in the browser, then
the PostgreSQL data source's macros) and executed as a login role that is only a member of
collector_reader, against a database filled by `collector demo`. Each query must succeed,
return rows and return the columns its panel needs, with every variable at All, at every value
listed, at one value, and with a value that holds a quote; and over a week with no data,
where it must still succeed in its panel's shape. The files themselves are checked
too: JSON and YAML parse, stable unique uids, the provisioned data source on every panel,
raw SQL in code mode, only `api` objects, variables defined and quoted with :sqlstring.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.conninfo import make_conninfo

from tests.clustercockpit import store
from tests.conftest import REPO, dsn_as_url, with_dbname
from tests.grafana_dashboards import (
    DASHBOARDS,
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    GRAFANA,
    GRAFANA_GLOBALS,
    Column,
    Query,
    function_calls,
    load_dashboards,
    panels,
    queries,
    relations,
    shape_problems,
    variables,
)
from tests.grafana_macros import (
    ALL,
    TimeRange,
    Variable,
    calculate_interval,
    dashboard_range,
    interpolate,
    metric_find_values,
    variable_references,
)
from tests.integration.cdevents_factory import cdevent, ingest

EXPECTED_UIDS = {
    "collector-dora", "collector-delivery", "collector-pipelines", "collector-deployments",
    "collector-incidents", "collector-hpc", "collector-health",
}  # fmt: skip
QUOTED = "it's not there"  # a value no query knows, with a quote Grafana must escape


# -- the files --------------------------------------------------------------------------------


def test_provisioning_files_parse_and_name_the_datasource_the_dashboards_use() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/collector.yaml").read_text())
    assert datasources["apiVersion"] == 1
    [source] = datasources["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == DATASOURCE_TYPE
    assert source["url"] == "$COLLECTOR_GRAFANA_DB_HOST"
    assert source["user"] == "$COLLECTOR_GRAFANA_DB_USER"
    assert source["jsonData"]["database"] == "$COLLECTOR_GRAFANA_DB_NAME"
    assert source["secureJsonData"]["password"] == "$COLLECTOR_GRAFANA_DB_PASSWORD"
    assert source["jsonData"]["sslmode"] == "disable"
    assert source["jsonData"]["postgresVersion"] == 1500
    assert source["jsonData"]["timescaledb"] is False

    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/collector.yaml").read_text())
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Collector"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/collector"
    assert provider["options"]["foldersFromFilesStructure"] is False


def test_the_readme_creates_the_datasource_the_provisioning_file_does() -> None:
    """Grafana's UI cannot give a data source a uid: the README's way without provisioning
    is the HTTP API, with the uid, type and settings the dashboards expect."""
    readme = (REPO / "README.md").read_text()
    [body] = re.findall(r"/api/datasources -d '(\{.*?\})'", readme, re.S)
    created = json.loads(body)
    [provisioned] = yaml.safe_load(
        (GRAFANA / "provisioning/datasources/collector.yaml").read_text()
    )["datasources"]
    for key in ("name", "uid", "type", "access"):
        assert created[key] == provisioned[key], key
    for key in ("postgresVersion", "timescaledb", "timeInterval"):
        assert created["jsonData"][key] == provisioned["jsonData"][key], key
    assert set(created["jsonData"]) >= {"database", "sslmode"}
    assert set(created["secureJsonData"]) == {"password"}


def test_dashboards_load_with_stable_unique_uids() -> None:
    dashboards = load_dashboards()
    uids = [d["uid"] for d in dashboards.values()]
    assert len(uids) == len(set(uids))
    assert set(uids) == EXPECTED_UIDS
    for name, dashboard in dashboards.items():
        assert "collector" in dashboard["tags"], name
        assert dashboard["title"], name
        assert "id" not in dashboard or dashboard["id"] is None, f"{name}: a fixed id clashes"
        ids = [p["id"] for p in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"


def test_every_panel_uses_the_provisioned_datasource_in_code_mode() -> None:
    for name, dashboard in load_dashboards().items():
        for panel in panels(dashboard):
            where = f"{name}: panel {panel.get('title')!r}"
            assert panel["type"] in {
                "timeseries", "stat", "gauge", "bargauge", "table", "barchart", "piechart",
                "text", "logs", "state-timeline", "row",
            }, f"{where}: {panel['type']} is not a core panel"  # fmt: skip
            if panel["type"] in ("row", "text"):
                assert "targets" not in panel or not panel["targets"], where
                continue
            assert panel["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}, where
            assert panel["targets"], f"{where}: no query"
        for query in queries(dashboard):
            where = f"{name}: panel {query.panel!r} query {query.ref}"
            target = query.target
            assert target["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}, where
            assert target["rawQuery"] is True, where
            assert target["editorMode"] == "code", where
            expected = "time_series" if query.panel_type == "timeseries" else "table"
            assert query.format == expected, f"{where}: format {query.format}"
        for variable in variables(dashboard):
            if variable["type"] == "query":
                assert variable["datasource"] == {
                    "type": DATASOURCE_TYPE,
                    "uid": DATASOURCE_UID,
                }, f"{name}: variable {variable['name']}"


def _all_sql(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for query in queries(dashboard):
        yield f"panel {query.panel!r} {query.ref}", query.sql
    for variable in variables(dashboard):
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"]


def test_queries_read_only_api_objects() -> None:
    for name, dashboard in load_dashboards().items():
        for where, sql in _all_sql(dashboard):
            for relation in relations(sql):
                assert relation == "(" or relation.startswith("api."), (
                    f"{name} {where}: reads {relation}, not an api object"
                )
            for function in function_calls(sql):
                assert function.startswith("api."), f"{name} {where}: calls {function}"
            assert "$__searchFilter" not in sql, f"{name} {where}: $__searchFilter"


def test_variables_are_defined_and_quoted_with_sqlstring() -> None:
    for name, dashboard in load_dashboards().items():
        defined = {v["name"]: v for v in variables(dashboard)}
        for where, sql in _all_sql(dashboard):
            for ref, fmt, written in variable_references(sql):
                if ref in GRAFANA_GLOBALS or ref.startswith("__"):
                    continue  # $__interval, and macros such as $__timeFilter(...)
                assert ref in defined, f"{name} {where}: {written} is not a variable"
                # One quoting rule whatever Grafana's version: SQL string literals.
                assert fmt == "sqlstring", f"{name} {where}: {written} is not ${{{ref}:sqlstring}}"
                if defined[ref].get("multi") or defined[ref].get("includeAll"):
                    assert f"ARRAY[{written}]::text[]" in sql, (
                        f"{name} {where}: multi-value {written} outside ARRAY[...]::text[]"
                    )
        for panel in panels(dashboard):  # titles and data links name variables too
            texts = [panel.get("title", ""), *(link["url"] for link in _links(panel))]
            for ref, _, written in (r for text in texts for r in variable_references(text)):
                assert ref in defined or ref.startswith("__"), f"{name}: {written} undefined"
        for variable in defined.values():
            if variable.get("includeAll"):
                # A custom "All" goes into the SQL as written: NULL, which the queries read as
                # "no filter" (array_remove(..., NULL) is empty).
                assert variable.get("allValue") == "NULL", f"{name}: {variable['name']}"


def test_data_links_open_existing_dashboards_with_their_variables() -> None:
    dashboards = {d["uid"]: d for d in load_dashboards().values()}
    links = 0
    for dashboard in dashboards.values():
        for panel in panels(dashboard):
            for link in _links(panel):
                match = re.match(r"^/d/([\w-]+)/[\w-]+\?(.*)$", link["url"])
                assert match, link["url"]
                target = dashboards[match.group(1)]
                names = {v["name"] for v in variables(target)}
                for param in re.findall(r"var-(\w+)=", match.group(2)):
                    assert param in names, f"{link['url']}: no variable {param} there"
                links += 1
    assert links >= 2


# Grafana's time units rescale a value to the largest unit that fits (valueFormats toHours:
# 2,000 in `h` shows as "11.9 week"). Right for a duration, wrong under a name that says
# "hours" or "(h)", and wrong for an amount that is not a duration, such as node hours.
TIME_UNITS = {"ns", "µs", "ms", "s", "m", "h", "d"}
IN_HOURS = re.compile(r"\bhours?\b|\(h\)", re.I)


def test_values_named_in_hours_are_not_rescaled_by_a_time_unit() -> None:
    for name, dashboard in load_dashboards().items():
        for panel in panels(dashboard):
            config = panel.get("fieldConfig", {})
            default = config.get("defaults", {}).get("unit")
            units = {
                override["matcher"]["options"]: prop["value"]
                for override in config.get("overrides", [])
                if override["matcher"]["id"] == "byName"
                for prop in override["properties"]
                if prop["id"] == "unit"
            }
            aliases = [
                alias
                for target in panel.get("targets", [])
                for alias in re.findall(r'\bAS\s+"([^"]+)"', target.get("rawSql", ""), re.I)
            ]
            for text, unit in [
                (panel.get("title", ""), default),
                *((alias, units.get(alias, default)) for alias in aliases),
            ]:
                assert not (unit in TIME_UNITS and IN_HOURS.search(text)), (
                    f"{name}: panel {panel.get('title')!r}: {text!r} has unit {unit!r}"
                )


def _links(panel: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        for prop in override["properties"]:
            if prop["id"] == "links":
                for link in prop["value"]:
                    if link["url"].startswith("/d/"):
                        yield {**link, "field": override["matcher"]["options"]}


# -- the queries, on demo data ------------------------------------------------------------------


DEMO = ["demo", "--services", "20", "--nodes", "8", "--seed", "7"]

# A node that resends what it sent (a replay: counted as a duplicate) and sends lines that are
# not valid (rejected with the reason): `collector demo` stores only valid data once, and
# Collector health shows these. A log line may come without a hostname tag (a cluster-wide
# daemon's): the HPC dashboard shows it too.
NODE_LINES = (
    'slurmd,cluster=fritz,hostname=f0101,type=node,type-id=0,loglevel=warn log="fan slow" {ns}\n'
    'slurmctld,cluster=fritz,loglevel=error log="partition batch drained" {ns}\n'
    'slurmd,cluster=fritz,hostname=f0101,type=rack,type-id=1 log="fan failure"\n'
    "slurmd,cluster=fritz hostname=f0101\n"
)


# A test case that fails every time it runs: broken, not flaky.
ALWAYS_FAILS = "test_always_fails"


def always_failing_test(now: datetime) -> list[dict[str, Any]]:
    case = {"testCase": {"id": ALWAYS_FAILS, "name": ALWAYS_FAILS}}
    return [
        cdevent("0.4", "testcaserun", predicate, f"{ALWAYS_FAILS}-{run}", at, content)
        for run in (1, 2)
        for predicate, at, content in (
            ("started", now - timedelta(hours=run, minutes=1), case),
            ("finished", now - timedelta(hours=run), {**case, "outcome": "failure"}),
        )
    ]


@pytest.fixture(scope="module")
def demo_database(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A migrated database filled by `collector demo`, plus a node's replay and bad lines
    through the same sink."""
    name = f"collector_grafana_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    url = with_dbname(pg_admin_url, name)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "collector", *DEMO, "--database-url", dsn_as_url(url)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        now = datetime.now(UTC)
        lines = NODE_LINES.format(ns=int(now.timestamp()) * 1_000_000_000)
        for duplicates in (0, 1):
            _, result = store(url, lines, received_at=now)
            assert (result.stored, len(result.duplicates), result.rejected) == (
                2 - 2 * duplicates, 2 * duplicates, 2,
            )  # fmt: skip
        ingest(url, [always_failing_test(now)])
        yield url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def reader(demo_database: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection as a login role whose only right is membership of collector_reader, as
    the README tells a Grafana administrator to create it."""
    role = f"grafana_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    password = uuid.uuid4().hex
    with psycopg.connect(demo_database, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE collector_reader")
        admin.execute(f"ALTER ROLE {role} SET statement_timeout = '30s'")
    try:
        url = make_conninfo(demo_database, user=role, password=password)
        with psycopg.connect(url, autocommit=True) as conn:
            yield conn
    finally:
        with psycopg.connect(demo_database, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_the_reader_sees_api_and_nothing_else(reader: psycopg.Connection[Any]) -> None:
    assert reader.execute("SELECT count(*) FROM api.events").fetchone() is not None
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute("SELECT count(*) FROM collector.events")


@dataclass
class Result:
    columns: list[Column]
    rows: list[tuple[Any, ...]]


class Grafana:
    """Runs a dashboard's queries as Grafana would, collecting every problem."""

    def __init__(self, conn: psycopg.Connection[Any], dashboard: dict[str, Any]) -> None:
        self.conn = conn
        self.dashboard = dashboard
        self.range: TimeRange = dashboard_range(dashboard, datetime.now(UTC))
        self.problems: list[str] = []
        self.executed = 0

    @staticmethod
    def resolution(panel: dict[str, Any] | None) -> int:
        if panel is None:
            return 1000
        # maxDataPoints, else the panel's width in pixels
        return int(panel.get("maxDataPoints") or round(panel["gridPos"]["w"] / 24 * 1800))

    def run(self, raw_sql: str, state: dict[str, Variable], panel: dict[str, Any] | None) -> Any:
        sql = interpolate(raw_sql, state, self.range, resolution=self.resolution(panel))
        self.executed += 1
        cursor = self.conn.execute(sql.encode())
        assert cursor.description is not None
        columns = [Column(d.name, d.type_code) for d in cursor.description]
        return Result(columns, cursor.fetchall()), sql

    def resolve_variables(self) -> dict[str, Variable]:
        """Variables in dashboard order, each query run with those before it at All."""
        state: dict[str, Variable] = {}
        for spec in variables(self.dashboard):
            variable = Variable(
                spec["name"],
                multi=bool(spec.get("multi")),
                include_all=bool(spec.get("includeAll")),
                all_value=spec.get("allValue") or None,
            )
            if spec["type"] == "query":
                try:
                    result, _ = self.run(spec["query"], state, None)
                except psycopg.Error as exc:
                    self.problems.append(f"variable {spec['name']}: {exc}")
                    result = Result([], [])
                variable.options = metric_find_values([c.name for c in result.columns], result.rows)
                if not variable.options:
                    self.problems.append(f"variable {spec['name']}: its query found no values")
            elif spec["type"] == "custom":
                variable.options = [o["value"] for o in spec["options"]]
            current = spec.get("current", {}).get("value", "")
            if current in (ALL, [ALL]):
                variable.current = ALL
            else:
                variable.current = current
            state[variable.name] = variable
        return state

    def check(self, query: Query, state: dict[str, Variable], label: str, need_rows: bool) -> Any:
        where = f"panel {query.panel!r} {query.ref} [{label}]"
        try:
            result, sql = self.run(query.sql, state, query.panel_json)
        except psycopg.Error as exc:
            self.problems.append(f"{where}: {type(exc).__name__}: {exc}")
            return None
        for problem in shape_problems(query, result.columns, result.rows):
            self.problems.append(f"{where}: {problem}\n{sql}")
        if query.format == "time_series":
            for problem in self.outside_range(query, result):
                self.problems.append(f"{where}: {problem}\n{sql}")
        if need_rows and not result.rows:
            self.problems.append(f"{where}: no rows\n{sql}")
        return result

    def outside_range(self, query: Query, result: Result) -> list[str]:
        """Points a time series panel does not draw: its x axis is the dashboard's time range.
        $__timeGroup puts the first group's point up to one $__interval before the range."""
        _, interval_ms = calculate_interval(self.range, self.resolution(query.panel_json))
        earliest = self.range.start - timedelta(milliseconds=interval_ms)
        index = [c.name for c in result.columns].index("time")
        problems = []
        for row in result.rows:
            moment = row[index]
            if not isinstance(moment, datetime):
                moment = datetime.fromtimestamp(float(moment), UTC)
            if not earliest <= moment <= self.range.end:
                problems.append(f"a point at {moment} is outside the time range {self.range}")
        return problems


def scenarios(state: dict[str, Variable]) -> Iterator[tuple[str, dict[str, Variable], bool]]:
    """(label, variables, rows required): All as configured; every value listed (what All
    sends without a custom allValue); one value; one value next to one holding a quote."""
    yield "All", state, True
    multi = [v for v in state.values() if v.multi or v.include_all]
    if not multi:
        return
    every = {v.name: replace(v, current=list(v.options)) for v in multi}
    yield "every value", {**state, **every}, True
    one = {v.name: replace(v, current=v.options[:1]) for v in multi}
    yield "one value", {**state, **one}, False
    quoted = {v.name: replace(v, current=[*v.options[:1], QUOTED]) for v in multi}
    yield "quote", {**state, **quoted}, False


@pytest.mark.parametrize("file", sorted(p.name for p in DASHBOARDS.glob("*.json")))
def test_every_panel_runs_as_grafana_would(reader: psycopg.Connection[Any], file: str) -> None:
    dashboard = load_dashboards()[file]
    grafana = Grafana(reader, dashboard)
    state = grafana.resolve_variables()
    all_queries = list(queries(dashboard))

    # A textbox variable set by a data link (event_id): take the value the link would carry
    # from the linked panel's first row, then show that event.
    for spec in variables(dashboard):
        if spec["type"] != "textbox":
            continue
        source, field = _linking_panel(dashboard, spec["name"])
        result = grafana.check(source, state, "All", True)
        assert result is not None, grafana.problems
        assert result.rows, grafana.problems
        value = result.rows[0][[c.name for c in result.columns].index(field)]
        state[spec["name"]] = Variable(spec["name"], current=str(value))
        shown = [q for q in all_queries if f"${{{spec['name']}:" in q.sql]
        assert shown, f"no panel uses {spec['name']}"
        for query in shown:
            shown_result = grafana.check(query, state, f"{spec['name']}={value}", True)
            if shown_result is not None and shown_result.rows:
                names = [c.name for c in shown_result.columns]
                assert all(row[names.index(field)] == value for row in shown_result.rows)

    for query in all_queries:
        for label, variables_now, need_rows in scenarios(state):
            grafana.check(query, variables_now, label, need_rows)
        # Every choice of a single-value custom variable (the DORA trend bucket).
        for variable in state.values():
            if variable.options and not (variable.multi or variable.include_all):
                if f"${{{variable.name}:" not in query.sql:
                    continue
                for option in variable.options:
                    chosen = {**state, variable.name: replace(variable, current=option)}
                    grafana.check(query, chosen, f"{variable.name}={option}", True)
    # A week with no data: every panel still answers, empty or zero, in its panel's shape.
    grafana.range = TimeRange(datetime(2001, 1, 1, tzinfo=UTC), datetime(2001, 1, 8, tzinfo=UTC))
    for query in all_queries:
        grafana.check(query, state, "empty range", False)
    assert grafana.problems == [], "\n\n".join(grafana.problems)
    assert grafana.executed >= len(all_queries)


def _linking_panel(dashboard: dict[str, Any], name: str) -> tuple[Query, str]:
    for query in queries(dashboard):
        for link in _links(query.panel_json):
            if f"var-{name}=" in link["url"] and link["url"].startswith(f"/d/{dashboard['uid']}/"):
                return query, link["field"]
    raise AssertionError(f"{dashboard['uid']}: no data link sets {name}")


def test_the_job_list_of_a_past_range_holds_the_jobs_that_ran_then(
    reader: psycopg.Connection[Any],
) -> None:
    """Zoomed to a past day, HPC's job list shows the jobs that ran that day: those that
    started or stopped in it and those running through it, not the jobs running now."""
    dashboard = load_dashboards()["hpc.json"]
    grafana = Grafana(reader, dashboard)
    now = datetime.now(UTC)
    grafana.range = TimeRange(now - timedelta(days=3), now - timedelta(days=2))
    [query] = [q for q in queries(dashboard) if q.panel == "Jobs" and q.panel_type == "table"]
    [later] = reader.execute(
        "SELECT count(*) FROM api.jobs WHERE state = 'running' AND start_time > %s",
        [grafana.range.end],
    ).fetchall()
    assert later[0] > 0, "no job started after the range runs now"

    result = grafana.check(query, grafana.resolve_variables(), "past day", True)
    assert grafana.problems == [], "\n\n".join(grafana.problems)
    names = [c.name for c in result.columns]
    for row in result.rows:
        start, stop = row[names.index("start_time")], row[names.index("stop_time")]
        assert (start or stop) <= grafana.range.end, row
        assert stop is None or stop >= grafana.range.start, row


# What "DORA ratings per service" ran before api.dora_by_service: the four functions called for
# each service alone (four calls per service: 7.5 s for 200 services over 30 days).
ONE_SERVICE_AT_A_TIME = """
SELECT s.service, f.deployments, f.per_day AS "deployments per day", f.rating AS "frequency",
       l.median_s / 3600 AS "lead time (h)", l.rating AS "lead time",
       c.rate AS "failure rate", c.rating AS "failures",
       r.median_s / 3600 AS "restore (h)", r.rating AS "restore"
FROM (
    SELECT DISTINCT service FROM api.deployments
    WHERE time >= $__timeFrom()::timestamptz AND time < $__timeTo()::timestamptz
      AND (cardinality(array_remove(ARRAY[${environment:sqlstring}]::text[], NULL)) = 0
           OR environment = ANY (ARRAY[${environment:sqlstring}]::text[]))
      AND (cardinality(array_remove(ARRAY[${service:sqlstring}]::text[], NULL)) = 0
           OR service = ANY (ARRAY[${service:sqlstring}]::text[]))
) AS s,
LATERAL api.dora_deployment_frequency($__timeFrom()::timestamptz, $__timeTo()::timestamptz,
    array_remove(ARRAY[${environment:sqlstring}]::text[], NULL), ARRAY[s.service]) AS f,
LATERAL api.dora_lead_time($__timeFrom()::timestamptz, $__timeTo()::timestamptz,
    array_remove(ARRAY[${environment:sqlstring}]::text[], NULL), ARRAY[s.service]) AS l,
LATERAL api.dora_change_failure_rate($__timeFrom()::timestamptz, $__timeTo()::timestamptz,
    array_remove(ARRAY[${environment:sqlstring}]::text[], NULL), ARRAY[s.service]) AS c,
LATERAL api.dora_time_to_restore($__timeFrom()::timestamptz, $__timeTo()::timestamptz,
    array_remove(ARRAY[${environment:sqlstring}]::text[], NULL), ARRAY[s.service]) AS r
ORDER BY f.deployments DESC, s.service
"""


def test_the_ratings_per_service_are_each_services_own(reader: psycopg.Connection[Any]) -> None:
    """DORA's table per service, one call of api.dora_by_service, shows what the four
    functions give for each service alone, with every filter as the other panels get it."""
    dashboard = load_dashboards()["dora.json"]
    grafana = Grafana(reader, dashboard)
    [query] = [q for q in queries(dashboard) if q.panel == "DORA ratings per service"]
    state = grafana.resolve_variables()
    for label, variables_now, need_rows in scenarios(state):
        result = grafana.check(query, variables_now, label, need_rows)
        expected, _ = grafana.run(ONE_SERVICE_AT_A_TIME, variables_now, query.panel_json)
        assert result is not None, grafana.problems
        assert result.columns == expected.columns, label
        assert result.rows == expected.rows, label
    assert grafana.problems == [], "\n\n".join(grafana.problems)


def test_the_flakiest_tests_both_passed_and_failed(reader: psycopg.Connection[Any]) -> None:
    """A test that never passed is broken, not flaky: Pipelines' flakiest tests leave it out."""
    dashboard = load_dashboards()["pipelines.json"]
    grafana = Grafana(reader, dashboard)
    [query] = [q for q in queries(dashboard) if q.panel == "Flakiest tests"]
    [runs] = reader.execute(
        "SELECT count(*) FROM api.test_case_runs WHERE test_case_name = %s AND outcome = 'failure'",
        [ALWAYS_FAILS],
    ).fetchall()
    assert runs[0] == 2

    result = grafana.check(query, grafana.resolve_variables(), "All", True)
    assert grafana.problems == [], "\n\n".join(grafana.problems)
    names = [c.name for c in result.columns]
    for row in result.rows:
        assert row[names.index("passes")] > 0, row
        assert row[names.index("failures")] > 0, row

"""`collector demo` as a user runs it: a fresh database gets data in every view Grafana reads,
DORA has something to rate, and a second run stores nothing new."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

SMALL = ("--services", "16", "--days", "40", "--nodes", "4", "--seed", "3")
VIEWS = (
    "api.events",
    "api.deployments",
    "api.pipeline_runs",
    "api.test_case_runs",
    "api.test_suite_runs",
    "api.artifacts",
    "api.changes",
    "api.incidents",
    "api.cluster_events",
    "api.cluster_logs",
    "api.jobs",
)
PROD = "array['prod-eu-west-1', 'prod-us-east-1', 'prod-ap-southeast-2']"
LAST_30_DAYS = "now() - interval '30 days', now()"


def demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR")}
    return subprocess.run(
        [sys.executable, "-m", "collector", "demo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


Conn = psycopg.Connection[Any]


def one(conn: Conn, query: str) -> tuple[Any, ...]:
    row = conn.execute(query).fetchone()
    assert row is not None
    return tuple(row)


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {view: one(conn, f"SELECT count(*) FROM {view}")[0] for view in VIEWS}


def stored_line(stdout: str) -> tuple[int, int, int]:
    match = re.search(r"^stored (\d+) events, (\d+) duplicates, (\d+) rejected", stdout, re.M)
    assert match, stdout
    return int(match[1]), int(match[2]), int(match[3])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str) -> Any:
    """One unmigrated database filled by `collector demo`, shared by the tests of this module
    (they only read it, but the second run's test, which must come last)."""
    import uuid

    name = f"collector_demo_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(pg_admin_url, dbname=name)
    cwd = tmp_path_factory.mktemp("demo")
    first = demo("--database-url", url, *SMALL, cwd=cwd)
    yield url, cwd, first
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_demo_migrates_and_fills_every_view(seeded: Any) -> None:
    url, _, first = seeded
    assert first.returncode == 0, first.stderr
    stored, duplicates, rejected = stored_line(first.stdout)
    assert stored > 3000
    assert (duplicates, rejected) == (0, 0)
    for family in ("cdevents", "ccmessage", "cclog", "cloudevents"):
        assert re.search(
            rf"^  {family} +[1-9]\d* stored +0 duplicates +0 rejected", first.stdout, re.M
        )
    assert "demo: [" in first.stderr  # the progress bar
    found = counts(url)
    assert all(found.values()), found
    assert found["api.events"] == stored
    with psycopg.connect(url) as conn:
        # Running and finished jobs, flaky tests (the same case failing and passing), open and
        # resolved incidents, and a lead time measured from the merge of the change.
        jobs: dict[str, int] = dict(
            conn.execute("SELECT state, count(*) FROM api.jobs GROUP BY 1").fetchall()
        )
        assert jobs.get("running", 0) > 0, jobs
        assert jobs.get("finished", 0) > 0, jobs
        (flaky,) = one(
            conn,
            "SELECT count(*) FROM (SELECT test_case_id FROM api.test_case_runs GROUP BY 1"
            " HAVING bool_or(outcome = 'failure') AND bool_or(outcome = 'success')) AS f",
        )
        assert flaky > 0
        (from_merge,) = one(
            conn,
            "SELECT count(*) FROM api.artifacts a"
            " JOIN api.changes c ON c.change_id = a.change_id WHERE c.merged_at IS NOT NULL",
        )
        assert from_merge > 0
        incidents = {r[0] for r in conn.execute("SELECT DISTINCT status FROM api.incidents")}
        assert "resolved" in incidents
        levels = {r[0] for r in conn.execute("SELECT DISTINCT level FROM api.cluster_logs")}
        assert {"info", "warn", "error"} <= levels
        assert one(conn, "SELECT count(*) FROM api.rejected_events") == (0,)
        # Analysed at the end, so that the first dashboards are planned knowing the data.
        assert re.search(r"^analysed the tables it filled in \d+\.\d s$", first.stdout, re.M)
        analysed: dict[str, bool] = dict(
            conn.execute(
                "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables"
                " WHERE schemaname = 'collector' AND n_live_tup > 0 AND (relname LIKE 'events%%'"
                "  OR relname IN ('event_identities', 'subjects', 'deployments', 'jobs'))"
            ).fetchall()
        )
        assert len(analysed) > 10, analysed
        assert all(analysed.values()), analysed


def test_dora_rates_the_last_30_days_with_a_spread_across_services(seeded: Any) -> None:
    url, _, first = seeded
    assert first.returncode == 0, first.stderr
    with psycopg.connect(url) as conn:
        frequency = one(
            conn,
            "SELECT deployments, rating"
            f" FROM api.dora_deployment_frequency({LAST_30_DAYS}, {PROD})",
        )
        lead = one(conn, f"SELECT median_s, rating FROM api.dora_lead_time({LAST_30_DAYS}, {PROD})")
        failure = one(
            conn, f"SELECT rate, rating FROM api.dora_change_failure_rate({LAST_30_DAYS}, {PROD})"
        )
        restore = one(
            conn, f"SELECT median_s, rating FROM api.dora_time_to_restore({LAST_30_DAYS})"
        )
        for row in (frequency, lead, failure, restore):
            assert None not in row, row
        assert 0 < failure[0] < 0.5
        per_service = conn.execute(
            f"""SELECT f.rating, l.rating
                FROM (SELECT DISTINCT service FROM api.deployments) s,
                     api.dora_deployment_frequency({LAST_30_DAYS}, {PROD}, array[s.service]) f,
                     api.dora_lead_time({LAST_30_DAYS}, {PROD}, array[s.service]) l"""
        ).fetchall()
    frequencies = {f for f, _ in per_service}
    lead_times = {lt for _, lt in per_service if lt is not None}
    assert {"elite", "high", "medium"} <= frequencies, per_service
    assert {"elite", "high", "medium"} <= lead_times, per_service


def test_a_second_run_stores_nothing_new(seeded: Any) -> None:
    url, cwd, first = seeded
    assert first.returncode == 0, first.stderr
    before = counts(url)
    again = demo("--database-url", url, *SMALL, cwd=cwd)
    assert again.returncode == 0, again.stderr
    stored, duplicates, rejected = stored_line(again.stdout)
    assert (stored, duplicates, rejected) == (0, stored_line(first.stdout)[0], 0)
    assert "times are those of the first run with seed 3" in again.stdout
    assert "analysed" not in again.stdout  # nothing new to analyse
    assert counts(url) == before


def test_demo_says_when_the_database_is_unreachable(tmp_path: Path) -> None:
    url = "postgresql://nobody@127.0.0.1:1/postgres"
    result = demo("--database-url", url, "--wait", "0", *SMALL, cwd=tmp_path)
    assert result.returncode == 1
    assert "collector: database: cannot connect" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--days", "1.5", "must be a positive integer, not '1.5'"),
        ("--services", "0", "must be a positive integer, not '0'"),
        ("--nodes", "many", "must be a positive integer, not 'many'"),
        ("--wait", "-1", "must be a number of seconds, 0 or more, not '-1'"),
    ],
)
def test_a_bad_option_value_is_named_with_what_it_must_be(
    option: str, value: str, problem: str, tmp_path: Path
) -> None:
    result = demo(f"{option}={value}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"collector demo: error: argument {option}: {problem}"

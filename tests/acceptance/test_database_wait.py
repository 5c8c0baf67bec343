"""How the commands wait for the database, as processes: one-off commands fail at once on what
waiting cannot fix and retry a server that is starting for --wait seconds; `collector run`
waits for whatever an operator fixes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from collector.db.embedded import EmbeddedPostgres
from tests.conftest import CollectorProcess, wait_for, with_dbname
from tests.conftest import run_collector as collector
from tests.nats_fixtures import free_port

ONE_OFF = [
    ["migrate", "--check"],
    ["migrate"],
    ["maintenance"],
    ["docs", "sql", "--check"],
    ["demo", "--services", "1", "--days", "1", "--nodes", "1"],
]


@pytest.mark.parametrize("command", ONE_OFF, ids=" ".join)
def test_a_missing_database_fails_at_once_in_one_line(
    command: list[str], pg_admin_url: str, tmp_path: Path
) -> None:
    name = f"no_such_db_{uuid.uuid4().hex[:8]}"
    env = {"COLLECTOR__DATABASE__URL": with_dbname(pg_admin_url, name)}
    result = collector(*command, cwd=tmp_path, env=env)
    assert result.returncode == 1
    # No `database_unavailable` retries before it: only the error, naming what is missing.
    [line] = result.stderr.splitlines()
    assert line.startswith("collector: database: cannot connect: ")
    assert f'database "{name}" does not exist' in line
    assert result.stdout == ""


def test_a_missing_role_fails_at_once(pg_admin_url: str, tmp_path: Path) -> None:
    url = psycopg.conninfo.make_conninfo(pg_admin_url, user="no_such_role")
    result = collector("migrate", "--check", cwd=tmp_path, env={"COLLECTOR__DATABASE__URL": url})
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert 'role "no_such_role" does not exist' in line


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://postgres@127.0.0.1:5432/postgres?frobnicate=1", "invalid URL"),
        ("postgresql://postgres@127.0.0.1:99999/postgres", 'invalid port number: "99999"'),
    ],
)
def test_a_malformed_url_fails_at_once(url: str, problem: str, tmp_path: Path) -> None:
    result = collector("docs", "sql", "--check", "--database-url", url, cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("collector: database: ")
    assert problem in line


def test_an_unreachable_server_is_retried_for_wait_seconds(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    result = collector(
        "maintenance", "--wait", "1", cwd=tmp_path, env={"COLLECTOR__DATABASE__URL": url}
    )
    assert result.returncode == 1
    *retries, last = result.stderr.splitlines()
    assert retries
    assert all('"database_unavailable"' in line for line in retries)
    assert last.startswith("collector: database: cannot connect (waited 1 s): ")
    assert "Connection refused" in last


def test_a_server_that_starts_within_wait_is_used(
    private_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    """As in compose: the command starts before the database does."""
    private_postgres.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR")}
    stderr = tmp_path / "stderr"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "migrate", "--wait", "300"],
            cwd=tmp_path,
            env={**env, "COLLECTOR__DATABASE__URL": private_postgres.url},
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            wait_for(lambda: "database_unavailable" in stderr.read_text(), timeout=60)
            private_postgres.start()
            out, _ = proc.communicate(timeout=120)
        finally:
            proc.kill()
    assert proc.returncode == 0, stderr.read_text()
    assert "applied: 0001_events.sql" in out


def test_run_waits_for_a_database_created_later(pg_admin_url: str, collector_process: Any) -> None:
    """A service waits for what an operator fixes, a missing database included."""
    name = f"collector_later_{uuid.uuid4().hex[:8]}"
    proc: CollectorProcess = collector_process(
        '[sinks.db]\ntype = "postgres"\n',
        env={"COLLECTOR__DATABASE__URL": with_dbname(pg_admin_url, name)},
    ).start()
    try:
        wait_for(lambda: "database_unavailable" in proc.logs(), timeout=60)
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        wait_for(lambda: "collector_started" in proc.logs(), timeout=60)
        assert proc.stop() == 0, proc.logs()
        assert "migration_applied" in proc.logs()
    finally:
        proc.stop()
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_while_run_waits_for_the_database_stops_it_at_once(
    sig: signal.Signals, collector_process: Any
) -> None:
    """`docker stop` (SIGTERM) or a closed terminal (SIGHUP) during the start's minute of
    waiting: collector stops cleanly, not killed by the signal (as PID 1 in a container it
    would ignore it until killed)."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    proc: CollectorProcess = collector_process(
        '[sinks.db]\ntype = "postgres"\n', env={"COLLECTOR__DATABASE__URL": url}
    ).start()
    wait_for(lambda: "database_unavailable" in proc.logs(), timeout=60)

    assert proc.stop(sig, timeout=10) == 0, proc.logs()
    events = [json.loads(line)["event"] for line in proc.logs().splitlines()]
    assert events[-2:] == ["shutdown_requested", "collector_stopped"]

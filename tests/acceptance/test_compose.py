"""The compose stack's pieces that run without Docker: the collector service's configuration
(the mounted file and its COLLECTOR__ variables) passes `collector config --check`, and the
postgres init script gives Grafana a login that reads `api` and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from collector.db.embedded import psql_path
from tests.conftest import REPO

COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
INIT_SCRIPT = REPO / "compose" / "postgres-init" / "10-grafana-login.sh"


def collector_environment() -> dict[str, str]:
    """The collector service's environment, its config path mapped back into the repository."""
    service = COMPOSE["services"]["collector"]
    env = {str(k): str(v) for k, v in service["environment"].items()}
    mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
    env["COLLECTOR_CONFIG"] = str(REPO / mounts[env["COLLECTOR_CONFIG"]])
    return env


def config_check(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR")}
    return subprocess.run(
        [sys.executable, "-m", "collector", "config", "--check"],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_collector_service_configuration_is_valid(tmp_path: Path) -> None:
    env = collector_environment()
    result = config_check(env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"configuration OK: {env['COLLECTOR_CONFIG']}"


def test_a_misspelt_variable_would_fail_the_check(tmp_path: Path) -> None:
    env = collector_environment()
    env["COLLECTOR__DATABASE__URLL"] = env.pop("COLLECTOR__DATABASE__URL")
    result = config_check(env, tmp_path)
    assert result.returncode == 1
    assert "database.urll" in result.stderr


@pytest.fixture
def grafana_login(empty_database_url: str) -> Iterator[tuple[str, str]]:
    """The init script run as the postgres image runs it, on a fresh database; the login's
    name (unique: roles are cluster-wide) and password. The role is dropped afterwards."""
    login = f"grafana_{uuid.uuid4().hex[:8]}"
    params = conninfo_to_dict(empty_database_url)
    env = {
        **os.environ,
        "PATH": f"{psql_path().parent}{os.pathsep}{os.environ['PATH']}",
        "PGHOST": str(params.get("host", "")),
        "PGPORT": str(params.get("port", "5432")),
        "PGPASSWORD": str(params.get("password", "")),
        "POSTGRES_USER": str(params.get("user", "postgres")),
        "POSTGRES_DB": str(params["dbname"]),
        "COLLECTOR_GRAFANA_DB_USER": login,
        "COLLECTOR_GRAFANA_DB_PASSWORD": "it's a secret",
    }
    result = subprocess.run(
        [str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    yield login, env["COLLECTOR_GRAFANA_DB_PASSWORD"]
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(f'DROP OWNED BY "{login}"')
        conn.execute(f'DROP ROLE "{login}"')


def test_grafana_logs_in_as_a_reader_of_api_only(
    grafana_login: tuple[str, str], empty_database_url: str, tmp_path: Path
) -> None:
    login, password = grafana_login
    # collector migrates after the init script ran (at its first start).
    base = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR")}
    migrated = subprocess.run(
        [sys.executable, "-m", "collector", "migrate"],
        cwd=tmp_path,
        env={**base, "COLLECTOR__DATABASE__URL": empty_database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    url = make_conninfo(empty_database_url, user=login, password=password)
    with psycopg.connect(url, autocommit=True) as conn:
        assert _one(conn, "SHOW statement_timeout") == "30s"
        assert _one(conn, "SELECT count(*) FROM api.events") == 0
        assert (
            _one(conn, "SELECT rating FROM api.dora_lead_time(now() - interval '1 day', now())")
            is None
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM collector.events")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT collector.ensure_partitions_ahead()")


def _one(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]

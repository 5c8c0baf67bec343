"""`collector maintenance` and the periodic maintenance of `collector run`, as processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from tests.clustercockpit import store
from tests.conftest import CollectorProcess, wait_for
from tests.conftest import run_collector as collector

Conn = psycopg.Connection[Any]


def cc_event(days_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(days=days_ago)
    return f'node_state,cluster=fritz,hostname=f0101 event="drained" {int(moment.timestamp())}'


def day(moment: datetime) -> str:
    return f"{moment:%Y%m%d}"


def partitions(conn: Conn, family: str) -> list[str]:
    rows = conn.execute(
        "SELECT partition_name FROM collector.time_partitions(%s)", (family,)
    ).fetchall()
    return [name for (name,) in rows]


def test_maintenance_prints_what_it_created_and_dropped(
    database_url: str, db: Conn, tmp_path: Path
) -> None:
    store(database_url, f"{cc_event(40)}\n{cc_event(35)}\n{cc_event(1)}")
    db.execute("SELECT collector.ensure_partitions_ahead()")
    furthest = partitions(db, "ccmessage")[-1]
    db.execute(f"DROP TABLE collector.{furthest}")  # as if a day had passed
    now = datetime.now(UTC)
    env = {"COLLECTOR__DATABASE__URL": database_url, "COLLECTOR__RETENTION__CCMESSAGE": "30 days"}

    result = collector("maintenance", cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "cclog: retention forever; created 0, dropped 0",
        "ccmessage: retention 30 days; created 1, dropped 2",
        f"  created collector.{furthest}",
        f"  dropped collector.events_ccmessage_{day(now - timedelta(days=40))}",
        f"  dropped collector.events_ccmessage_{day(now - timedelta(days=35))}",
        "cdevents: retention forever; created 0, dropped 0",
        "cloudevents: retention forever; created 0, dropped 0",
        "raw: retention forever; created 0, dropped 0",
        "maintenance done: 1 partition(s) created, 2 dropped",
    ]
    assert db.execute("SELECT count(*) FROM api.cluster_events").fetchone() == (1,)

    again = collector("maintenance", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "maintenance done: 0 partition(s) created, 0 dropped"


def test_a_bad_retention_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "collector.toml").write_text(
        '[retention]\nccmessage = "30 dayz"\ncclog = "a while"\n\n[sinks.db]\ntype = "postgres"\n'
    )
    result = collector("maintenance", cwd=tmp_path)
    assert result.returncode == 1
    hint = 'use "forever" or "<n> days", "<n> weeks", "<n> months" or "<n> years"'
    assert result.stderr.splitlines() == [
        f"collector: config: retention.ccmessage: '30 dayz' is not a retention: {hint}",
        f"collector: config: retention.cclog: 'a while' is not a retention: {hint}",
    ]


def test_maintenance_refuses_pending_migrations_in_check_mode(
    empty_database_url: str, tmp_path: Path
) -> None:
    env = {"COLLECTOR__DATABASE__URL": empty_database_url, "COLLECTOR__DATABASE__MIGRATE": "check"}
    result = collector("maintenance", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "pending migration(s): 0001_events.sql" in result.stderr
    assert "run `collector migrate`" in result.stderr


RUN_CONFIG = """
[maintenance]
interval_s = 0.2

[retention]
ccmessage = "30 days"

[sinks.db]
type = "postgres"
"""


def test_run_maintains_at_start_and_every_interval(
    database_url: str, db: Conn, collector_process: Any
) -> None:
    now = datetime.now(UTC)
    store(database_url, cc_event(40))
    first = f"events_ccmessage_{day(now - timedelta(days=40))}"
    assert first in partitions(db, "ccmessage")

    proc: CollectorProcess = collector_process(
        RUN_CONFIG, env={"COLLECTOR__DATABASE__URL": database_url}
    ).start()

    def dropped(name: str) -> bool:
        return name not in partitions(db, "ccmessage")

    wait_for(lambda: dropped(first), timeout=60)
    # While it runs: an old event arrives (a late replay), its expired partition comes back,
    # and the next round drops it again.
    store(database_url, cc_event(50))
    second = f"events_ccmessage_{day(now - timedelta(days=50))}"
    wait_for(lambda: dropped(second), timeout=60)

    assert proc.stop() == 0, proc.logs()
    logs = proc.logs()
    assert first in logs
    assert second in logs
    assert logs.count('"partitions_dropped"') == 2
    assert "maintenance_failed" not in logs
    assert "Traceback" not in logs


def holding(database_url: str, view: str) -> Conn:
    """A dashboard query that keeps its transaction open: it holds the family's table."""
    reader = psycopg.connect(database_url)
    reader.execute(f"SELECT count(*) FROM {view}")
    return reader


def test_maintenance_says_what_a_busy_table_kept(
    database_url: str, db: Conn, tmp_path: Path
) -> None:
    store(database_url, cc_event(40))
    expired = f"events_ccmessage_{day(datetime.now(UTC) - timedelta(days=40))}"
    env = {"COLLECTOR__DATABASE__URL": database_url, "COLLECTOR__RETENTION__CCMESSAGE": "30 days"}

    with holding(database_url, "api.cluster_events"):
        result = collector("maintenance", cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "ccmessage: retention 30 days; created 0, dropped 0, kept 1 (table busy)" in lines
    assert f"  kept collector.{expired} (a later run drops it)" in lines
    assert lines[-1] == "maintenance done: 0 partition(s) created, 0 dropped, 1 kept (table busy)"
    [warning] = [line for line in result.stderr.splitlines() if "partitions_kept" in line]
    assert '"level": "warning"' in warning
    assert "collector.events_ccmessage is busy" in warning
    assert expired in warning
    assert expired in partitions(db, "ccmessage")

    again = collector("maintenance", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert f"  dropped collector.{expired}" in again.stdout.splitlines()
    assert "partitions_kept" not in again.stderr


def test_run_warns_when_a_busy_table_keeps_partitions(
    database_url: str, db: Conn, collector_process: Any
) -> None:
    store(database_url, cc_event(40))
    expired = f"events_ccmessage_{day(datetime.now(UTC) - timedelta(days=40))}"
    proc: CollectorProcess = collector_process(
        RUN_CONFIG, env={"COLLECTOR__DATABASE__URL": database_url}
    )

    with holding(database_url, "api.cluster_events"):
        proc.start()
        wait_for(lambda: '"partitions_kept"' in proc.logs(), timeout=60)
        assert expired in partitions(db, "ccmessage")
    wait_for(lambda: expired not in partitions(db, "ccmessage"), timeout=60)

    assert proc.stop() == 0, proc.logs()
    warning = next(line for line in proc.logs().splitlines() if '"partitions_kept"' in line)
    assert '"level": "warning"' in warning
    assert expired in warning

"""The migration runner against real PostgreSQL: order, ledger, refusals, rollback, locking.

Each test starts from `empty_database_url` (a fresh, unmigrated database) unless it needs two.
The CLI tests run `python -m collector migrate` / `run` as processes, as a user would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from collector.db import migrate as migrations
from collector.db.migrate import Migration
from collector.errors import MigrationError
from tests.conftest import dsn_as_url, run_collector, with_dbname

pytestmark = pytest.mark.anyio

SHIPPED = migrations.load_migrations()
# Version of a test's extra migration file: the one after the last shipped migration.
NEXT = f"{SHIPPED[-1].version + 1:04d}"
SHIPPED_FILES = [m.file_name for m in SHIPPED]
SHIPPED_LEDGER = [(m.version, m.name, m.checksum) for m in SHIPPED]


async def connect(url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


def ledger(url: str) -> list[tuple[int, str, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('collector.migrations')").fetchone() == (None,):
            return []
        rows = conn.execute("SELECT version, name, checksum FROM collector.migrations ORDER BY 1")
        return [(int(v), str(n), str(c)) for v, n, c in rows]


def relation_exists(url: str, name: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def migrations_folder(tmp_path: Path, extra: dict[str, str]) -> Path:
    """A copy of the shipped migrations plus `extra` files (name -> SQL); extra files use
    versions from 9001 on, so that shipping more migrations never collides with them."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for migration in SHIPPED:
        (folder / migration.file_name).write_text(migration.sql)
    for name, text in extra.items():
        (folder / name).write_text(text)
    return folder


# -- the runner ---------------------------------------------------------------------------------


async def test_applies_every_migration_in_order_and_records_it(empty_database_url: str) -> None:
    async with await connect(empty_database_url) as conn:
        applied = await migrations.migrate(conn)
    assert [m.file_name for m in applied] == [m.file_name for m in SHIPPED]
    assert [m.version for m in applied] == sorted(m.version for m in SHIPPED)
    assert ledger(empty_database_url) == [(m.version, m.name, m.checksum) for m in SHIPPED]
    assert SHIPPED[0].file_name == "0001_events.sql"
    assert relation_exists(empty_database_url, "api.events")


async def test_migrating_again_applies_nothing(empty_database_url: str) -> None:
    async with await connect(empty_database_url) as conn:
        await migrations.migrate(conn)
        before = ledger(empty_database_url)
        assert await migrations.migrate(conn) == []
        status = await migrations.status(conn, SHIPPED)
    assert ledger(empty_database_url) == before
    assert status.pending == []
    assert status.applied == SHIPPED


async def test_status_of_an_unmigrated_database_lists_everything_pending(
    empty_database_url: str,
) -> None:
    async with await connect(empty_database_url) as conn:
        status = await migrations.status(conn, SHIPPED)
    assert status.applied == []
    assert status.pending == SHIPPED
    assert not relation_exists(empty_database_url, "collector.migrations")


async def test_an_edited_applied_migration_is_refused(empty_database_url: str) -> None:
    async with await connect(empty_database_url) as conn:
        await migrations.migrate(conn)
        first = SHIPPED[0]
        edited = [Migration(first.version, first.name, first.sql + "\n-- edited\n"), *SHIPPED[1:]]
        with pytest.raises(MigrationError) as status_error:
            await migrations.status(conn, edited)
        with pytest.raises(MigrationError) as migrate_error:
            await migrations.migrate(conn, edited)
        # The runner released its advisory lock despite the refusal.
        assert await migrations.migrate(conn) == []
    for error in (status_error, migrate_error):
        message = str(error.value)
        assert "0001_events.sql" in message
        assert "edited" in message
        assert "new migration" in message


async def test_a_database_with_an_unknown_migration_is_refused(empty_database_url: str) -> None:
    async with await connect(empty_database_url) as conn:
        await migrations.migrate(conn)
        await conn.execute(
            "INSERT INTO collector.migrations (version, name, checksum) "
            "VALUES (9999, 'from_the_future', 'abc')"
        )
        with pytest.raises(MigrationError) as status_error:
            await migrations.status(conn, SHIPPED)
        with pytest.raises(MigrationError) as migrate_error:
            await migrations.migrate(conn)
    for error in (status_error, migrate_error):
        message = str(error.value)
        assert "9999_from_the_future" in message
        assert "upgrade collector" in message


@pytest.mark.parametrize(
    "bad_name", ["1_short.sql", "0002-dash.sql", "0002_Upper.sql", "0002_.sql", "abcd_x.sql"]
)
def test_a_badly_named_migration_file_is_refused(tmp_path: Path, bad_name: str) -> None:
    folder = migrations_folder(tmp_path, {bad_name: "SELECT 1;"})
    with pytest.raises(MigrationError, match=r"NNNN_description\.sql") as error:
        migrations.load_migrations(folder)
    assert bad_name in str(error.value)


def test_two_files_with_one_version_are_refused(tmp_path: Path) -> None:
    folder = migrations_folder(
        tmp_path, {f"{NEXT}_one.sql": "SELECT 1;", f"{NEXT}_two.sql": "SELECT 2;"}
    )
    with pytest.raises(MigrationError) as error:
        migrations.load_migrations(folder)
    message = str(error.value)
    assert f"{NEXT}_one.sql" in message
    assert f"{NEXT}_two.sql" in message
    assert f"share version {int(NEXT)}" in message


def test_a_folder_is_loaded_in_version_order_ignoring_other_files(tmp_path: Path) -> None:
    folder = migrations_folder(
        tmp_path,
        {"0100_later.sql": "SELECT 100;", f"{NEXT}_next.sql": "SELECT 2;", "README.md": "notes"},
    )
    loaded = migrations.load_migrations(folder)
    assert [m.file_name for m in loaded] == [*SHIPPED_FILES, f"{NEXT}_next.sql", "0100_later.sql"]
    assert loaded[0].checksum == SHIPPED[0].checksum


async def test_a_failing_migration_leaves_nothing_behind(
    empty_database_url: str, tmp_path: Path
) -> None:
    broken = (
        "CREATE TABLE collector.half_done (x integer);\n"
        "INSERT INTO collector.half_done VALUES (1);\n"
        "ALTER TABLE collector.rejected_events ADD COLUMN half_done integer;\n"
        "SELECT 1 / 0;\n"
    )
    folder = migrations_folder(tmp_path, {f"{NEXT}_broken.sql": broken})
    known = migrations.load_migrations(folder)
    async with await connect(empty_database_url) as conn:
        with pytest.raises(MigrationError) as error:
            await migrations.migrate(conn, known)
        # One transaction per file: the shipped ones stay applied, nothing of the broken one.
        assert ledger(empty_database_url) == SHIPPED_LEDGER
        assert not relation_exists(empty_database_url, "collector.half_done")
        columns = await conn.execute(
            "SELECT count(*) FROM pg_attribute"
            " WHERE attrelid = 'collector.rejected_events'::regclass AND attname = 'half_done'"
        )
        assert await columns.fetchone() == (0,)
        status = await migrations.status(conn, known)
        assert [m.file_name for m in status.pending] == [f"{NEXT}_broken.sql"]

        # Once fixed, the same migration applies (the lock was released after the failure).
        (folder / f"{NEXT}_broken.sql").write_text(broken.replace("SELECT 1 / 0;", ""))
        fixed = migrations.load_migrations(folder)
        assert [m.file_name for m in await migrations.migrate(conn, fixed)] == [
            f"{NEXT}_broken.sql"
        ]
    assert f"{NEXT}_broken.sql" in str(error.value)
    assert "division by zero" in str(error.value)
    assert relation_exists(empty_database_url, "collector.half_done")


async def test_a_migration_stopped_midway_stops_quietly(
    empty_database_url: str, tmp_path: Path
) -> None:
    # `collector run` stopped by a signal while it migrates: psycopg closes the connection
    # whose query it could not cancel in time, and the lock goes with it (once the server
    # notices), so the next runner applies the migration.
    folder = migrations_folder(tmp_path, {f"{NEXT}_slow.sql": "SELECT pg_sleep(1);"})
    known = migrations.load_migrations(folder)
    async with await connect(empty_database_url) as conn:
        await migrations.migrate(conn, SHIPPED)
        with anyio.move_on_after(0.3) as scope:
            await migrations.migrate(conn, known)
    assert scope.cancelled_caught
    assert ledger(empty_database_url) == SHIPPED_LEDGER
    async with await connect(empty_database_url) as conn:
        assert [m.file_name for m in await migrations.migrate(conn, known)] == [f"{NEXT}_slow.sql"]


async def test_concurrent_runners_apply_each_migration_once(
    empty_database_url: str, tmp_path: Path
) -> None:
    # A second migration that fails if run twice, so a double application cannot go unnoticed.
    folder = migrations_folder(tmp_path, {f"{NEXT}_once.sql": "CREATE TABLE collector.once ();"})
    known = migrations.load_migrations(folder)
    results: list[list[Migration]] = []

    async def run() -> None:
        async with await connect(empty_database_url) as conn:
            results.append(await migrations.migrate(conn, known))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(run)
    applied = sorted(m.file_name for result in results for m in result)
    assert applied == sorted([*SHIPPED_FILES, f"{NEXT}_once.sql"])
    assert [v for v, _, _ in ledger(empty_database_url)] == [
        *(m.version for m in SHIPPED),
        int(NEXT),
    ]


@pytest.fixture
def two_empty_databases(pg_admin_url: str) -> Iterator[tuple[str, str]]:
    names = [f"collector_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_dbname(pg_admin_url, names[0]), with_dbname(pg_admin_url, names[1])
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_databases_in_one_cluster_migrate_one_after_another(
    two_empty_databases: tuple[str, str],
) -> None:
    for url in two_empty_databases:
        async with await connect(url) as conn:
            assert await migrations.migrate(conn) == SHIPPED
    for url in two_empty_databases:
        assert [v for v, _, _ in ledger(url)] == [m.version for m in SHIPPED]


async def test_databases_in_one_cluster_migrate_concurrently(
    pg_admin_url: str, two_empty_databases: tuple[str, str]
) -> None:
    # Roles are cluster-wide: both migrations touch them at the same time.
    results: dict[str, list[Migration]] = {}

    async def run(url: str) -> None:
        async with await connect(url) as conn:
            results[url] = await migrations.migrate(conn)

    for _ in range(3):  # a few rounds: the race is between two whole-file transactions
        async with anyio.create_task_group() as tg:
            for url in two_empty_databases:
                tg.start_soon(run, url)
        assert results == {url: SHIPPED for url in two_empty_databases}
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            for url in two_empty_databases:
                name = conninfo_to_dict(url)["dbname"]
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        settings = conn.execute(
            "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
            " WHERE r.rolname = 'collector_reader' AND s.setdatabase = 0"
        ).fetchall()
    [(config,)] = settings
    assert len([c for c in config if c.startswith("statement_timeout=")]) == 1


# -- the CLI as a process -----------------------------------------------------------------------


def test_cli_migrate_check_then_migrate(empty_database_url: str, tmp_path: Path) -> None:
    env = {"COLLECTOR__DATABASE__URL": dsn_as_url(empty_database_url)}

    check = run_collector("migrate", "--check", cwd=tmp_path, env=env)
    assert check.returncode == 1, check.stderr
    assert "pending: 0001_events.sql" in check.stdout
    assert "collector migrate" in check.stdout
    assert ledger(empty_database_url) == []

    applied = run_collector("migrate", cwd=tmp_path, env=env)
    assert applied.returncode == 0, applied.stderr
    assert "applied: 0001_events.sql" in applied.stdout
    assert [v for v, _, _ in ledger(empty_database_url)] == [m.version for m in SHIPPED]

    again = run_collector("migrate", "--check", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert "pending" not in again.stdout
    assert f"up to date: {len(SHIPPED)} migration(s) applied" in again.stdout


def test_cli_migrate_reports_a_failing_migration_in_one_line(
    empty_database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        # A schema `api` already there makes 0001 fail half-way; nothing of it may remain.
        conn.execute("CREATE SCHEMA api")
    env = {"COLLECTOR__DATABASE__URL": dsn_as_url(empty_database_url)}
    result = run_collector("migrate", cwd=tmp_path, env=env)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("collector: migration 0001_events.sql failed and was rolled back: ")
    assert 'schema "api" already exists' in line
    assert not relation_exists(empty_database_url, "collector.migrations")


def test_run_refuses_an_unmigrated_database_in_check_mode(
    empty_database_url: str, tmp_path: Path, collector_process: Any
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = f"""
[database]
url = "{dsn_as_url(empty_database_url)}"
migrate = "check"

[sources.inbox]
type = "folder"
path = "{inbox}"

[sinks.db]
type = "postgres"
"""
    proc = collector_process(config).start()
    assert proc.proc.wait(120) == 1, proc.logs()
    logs = proc.logs()
    assert "0001_events.sql" in logs
    assert "run `collector migrate`" in logs
    assert "Traceback" not in logs
    assert ledger(empty_database_url) == []

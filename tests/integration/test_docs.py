"""The SQL API reference: generated from the catalog, complete, committed up to date, and its
examples run as collector_reader. `collector docs sql` as a user runs it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import psycopg
from psycopg import sql

from collector import docs
from tests.conftest import REPO, dsn_as_url
from tests.integration.cdevents_factory import ingest
from tests.integration.test_api_dora import week
from tests.integration.test_api_lifecycle import workday

Conn = psycopg.Connection[Any]

REFERENCE = REPO / "docs" / "sql-api.md"


def catalog(url: str) -> docs.Catalog:
    async def read() -> docs.Catalog:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await docs.read_catalog(conn)

    return anyio.run(read)


def test_every_api_object_has_comments_and_an_example(database_url: str) -> None:
    assert catalog(database_url).problems() == []


def test_the_committed_reference_is_up_to_date(database_url: str) -> None:
    generated = docs.render(catalog(database_url))
    assert REFERENCE.read_text() == generated, (
        "docs/sql-api.md is stale: run `collector docs sql` (against a migrated database) and "
        "commit it"
    )


def test_missing_comments_and_examples_are_named(db: Conn, database_url: str) -> None:
    db.execute("COMMENT ON COLUMN api.builds.queue_s IS NULL")
    db.execute(
        "COMMENT ON FUNCTION api.dora_lead_time(timestamptz, timestamptz, text[], text[]) IS ''"
    )
    db.execute("CREATE VIEW api.novelty AS SELECT 1 AS one")
    assert catalog(database_url).problems() == [
        "column api.builds.queue_s: no COMMENT",
        "view api.novelty: no COMMENT",
        "column api.novelty.one: no COMMENT",
        "function api.dora_lead_time(timestamp with time zone,timestamp with time zone,text[],"
        "text[]): no COMMENT",
        "api.novelty: no example query in collector/docs.py EXAMPLES",
    ]


def test_every_example_runs_as_the_reader(db: Conn, database_url: str) -> None:
    # On data, so that the examples' expressions are evaluated, not just planned.
    ingest(database_url, [list(workday().values()), week()])
    for name, example in docs.EXAMPLES.items():
        with db.transaction(force_rollback=True):
            db.execute("SET LOCAL ROLE collector_reader")
            try:
                db.execute(sql.SQL(example))
            except psycopg.Error as exc:
                raise AssertionError(f"example of api.{name} fails: {exc}") from exc


# -- the command ----------------------------------------------------------------------------------


def collector(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR")}
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_docs_sql_writes_then_checks(database_url: str, tmp_path: Path) -> None:
    env = {"COLLECTOR__DATABASE__URL": dsn_as_url(database_url)}
    written = collector(tmp_path, "docs", "sql", env=env)
    assert written.returncode == 0, written.stderr
    assert written.stdout == "wrote docs/sql-api.md\n"
    assert (tmp_path / "docs" / "sql-api.md").read_text() == REFERENCE.read_text()

    check = collector(tmp_path, "docs", "sql", "--check", env=env)
    assert (check.returncode, check.stdout) == (0, "docs/sql-api.md is up to date\n")

    (tmp_path / "docs" / "sql-api.md").write_text("# edited by hand\n")
    stale = collector(tmp_path, "docs", "sql", "--check", env=env)
    assert stale.returncode == 1
    assert (
        stale.stdout == "docs/sql-api.md is stale: run `collector docs sql` and commit the result\n"
    )
    assert (tmp_path / "docs" / "sql-api.md").read_text() == "# edited by hand\n"


def test_docs_sql_with_a_url_and_an_output(database_url: str, tmp_path: Path) -> None:
    # --database-url overrides the configuration (here, one that cannot be reached).
    env = {"COLLECTOR__DATABASE__URL": "postgresql://nobody@127.0.0.1:1/none"}
    url = dsn_as_url(database_url)
    result = collector(
        tmp_path, "docs", "sql", "--database-url", url, "--output", "ref.md", env=env
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ref.md").read_text() == REFERENCE.read_text()


def test_docs_sql_refuses_a_database_with_pending_migrations(
    empty_database_url: str, tmp_path: Path
) -> None:
    result = collector(tmp_path, "docs", "sql", "--database-url", dsn_as_url(empty_database_url))
    assert result.returncode == 1
    assert "pending migration" in result.stderr
    assert "collector migrate" in result.stderr
    assert not (tmp_path / "docs").exists()


def test_the_readme_examples_run_as_the_reader(db: Conn, database_url: str) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Delivery views and DORA")[1].split("\n## ")[0]
    examples = re.findall(r"^\| `api\.[^|]*\|[^|]*\| `(select [^`]*)` \|$", section, re.M)
    assert len(examples) == 20  # 14 views, 4 DORA functions, their series, all per service
    querying = readme.split("## Querying: the `api` schema")[1].split("\n## ")[0]
    blocks = re.findall(r"```sql\n(.*?)```", querying, re.S)
    examples += [q for block in blocks for q in block.split(";") if q.strip()]
    assert len(examples) == 20 + 9
    ingest(database_url, [list(workday().values()), week()])
    for example in examples:
        with db.transaction(force_rollback=True):
            db.execute("SET LOCAL ROLE collector_reader")
            try:
                db.execute(sql.SQL(example))
            except psycopg.Error as exc:
                raise AssertionError(f"README example fails: {example}: {exc}") from exc

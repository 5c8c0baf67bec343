"""The migrated schema as code: schemas, comments on the `api` contract, roles and their rights,
and the partitioning of events.

Role checks run `SET LOCAL ROLE` inside a transaction that is always rolled back; each refused
statement runs in a savepoint so the next one can follow.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.errors import InsufficientPrivilege

Conn = psycopg.Connection[Any]

READER = "collector_reader"
WRITER = "collector_writer"


@contextmanager
def as_role(conn: Conn, role: str) -> Iterator[Conn]:
    with conn.transaction(force_rollback=True):
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        yield conn


def refused(conn: Conn, query: str, params: Any = None) -> str:
    """Run `query` in a savepoint; it must fail for lack of privilege. Returns the message."""
    with pytest.raises(InsufficientPrivilege) as error, conn.transaction():
        conn.execute(query, params)
    return str(error.value)


def relations(
    conn: Conn, schema: str, kinds: tuple[str, ...] = ("r", "p", "v", "m", "f")
) -> list[str]:
    """Every relation of `kinds` (default: tables, partitions and views) in `schema`, qualified."""
    rows = conn.execute(
        "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind = ANY (%s) ORDER BY 1",
        (schema, list(kinds)),
    ).fetchall()
    return [name for (name,) in rows]


# -- schemas and comments -------------------------------------------------------------------------


def test_schemas_exist(db: Conn) -> None:
    rows = db.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname IN ('collector', 'api') ORDER BY 1"
    ).fetchall()
    assert rows == [("api",), ("collector",)]


def test_every_api_object_and_column_has_a_comment(db: Conn) -> None:
    missing = db.execute(
        """
        SELECT 'schema api' FROM pg_namespace n
        WHERE n.nspname = 'api' AND coalesce(obj_description(n.oid, 'pg_namespace'), '') = ''
        UNION ALL
        SELECT format('relation %s', c.oid::regclass) FROM pg_class c
        WHERE c.relnamespace = 'api'::regnamespace
          AND coalesce(obj_description(c.oid, 'pg_class'), '') = ''
        UNION ALL
        SELECT format('column %s.%I', c.oid::regclass, a.attname) FROM pg_class c
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relnamespace = 'api'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND coalesce(col_description(c.oid, a.attnum), '') = ''
        UNION ALL
        SELECT format('function %s', p.oid::regprocedure) FROM pg_proc p
        WHERE p.pronamespace = 'api'::regnamespace
          AND coalesce(obj_description(p.oid, 'pg_proc'), '') = ''
        UNION ALL
        SELECT format('type %s', t.oid::regtype) FROM pg_type t
        WHERE t.typnamespace = 'api'::regnamespace AND t.typtype IN ('c', 'd', 'e')
          AND t.typrelid = 0 AND coalesce(obj_description(t.oid, 'pg_type'), '') = ''
        """
    ).fetchall()
    assert [what for (what,) in missing] == []


def test_the_api_has_the_documented_objects(db: Conn) -> None:
    # Guards the comment test above against passing on an empty schema.
    views = db.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'api'::regnamespace ORDER BY 1"
    ).fetchall()
    functions = db.execute(
        "SELECT oid::regprocedure::text FROM pg_proc"
        " WHERE pronamespace = 'api'::regnamespace ORDER BY 1"
    ).fetchall()
    assert {"events", "rejected_events"} <= {v for (v,) in views}
    assert {"api.event(text)", "api.events_by_id(text[])"} <= {f for (f,) in functions}


# -- roles ----------------------------------------------------------------------------------------


def test_roles_exist_and_cannot_log_in(db: Conn) -> None:
    rows = db.execute(
        "SELECT rolname, rolcanlogin, rolsuper FROM pg_roles"
        " WHERE rolname IN ('collector_reader', 'collector_writer') ORDER BY 1"
    ).fetchall()
    assert rows == [(READER, False, False), (WRITER, False, False)]


def test_reader_has_a_statement_timeout(db: Conn) -> None:
    row = db.execute(
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
        " WHERE r.rolname = %s AND s.setdatabase = 0",
        (READER,),
    ).fetchone()
    assert row is not None
    timeouts = [c for c in row[0] if c.startswith("statement_timeout=")]
    assert len(timeouts) == 1
    assert timeouts[0] != "statement_timeout=0"


def test_reader_queries_the_api(db: Conn) -> None:
    ingest_one(db, "e1")
    with as_role(db, READER):
        assert db.execute("SELECT id FROM api.events").fetchall() == [("e1",)]
        assert db.execute("SELECT count(*) FROM api.rejected_events").fetchone() == (0,)
        assert db.execute("SELECT id FROM api.event('e1')").fetchall() == [("e1",)]
        assert db.execute("SELECT id FROM api.events_by_id(%s)", (["e1", "x"],)).fetchall() == [
            ("e1",)
        ]


def test_reader_cannot_read_private_tables(db: Conn) -> None:
    with as_role(db, READER):
        for table in ("collector.events", "collector.event_identities", "collector.migrations"):
            assert "permission denied" in refused(db, f"SELECT * FROM {table}")
        refused(db, "SELECT * FROM collector.events_cloudevents")
        refused(db, "SELECT collector.ensure_partitions_ahead()")
    assert db.execute(
        "SELECT has_schema_privilege(%s, 'collector', 'USAGE')", (READER,)
    ).fetchone() == (False,)


def test_reader_cannot_write_anything(db: Conn) -> None:
    ingest_one(db, "e1")
    with as_role(db, READER):
        refused(db, "INSERT INTO api.events (id, source, type) VALUES ('x', 's', 't')")
        refused(db, "UPDATE api.events SET subject = 'x'")
        refused(db, "DELETE FROM api.events")
        refused(db, "DELETE FROM api.rejected_events")
        refused(db, "TRUNCATE collector.events")
        refused(
            db,
            "SELECT * FROM collector.ingest(ARRAY['x'], ARRAY['s'], ARRAY['t'],"
            " ARRAY[now()], ARRAY['raw'], NULL, NULL, NULL, NULL, ARRAY['{}'], NULL,"
            " ARRAY[now()], ARRAY['psql'])",
        )
    # Every relation of both schemas, partitions included: no write privilege of any kind.
    writable = db.execute(
        "SELECT c.oid::regclass::text, p.privilege FROM pg_class c"
        " CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p(privilege)"
        " WHERE c.relnamespace IN ('api'::regnamespace, 'collector'::regnamespace)"
        " AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        " AND has_table_privilege(%s, c.oid, p.privilege)",
        (READER,),
    ).fetchall()
    assert writable == []


def test_writer_ingests(db: Conn) -> None:
    old = datetime(2019, 3, 15, tzinfo=UTC)
    with as_role(db, WRITER):
        row = db.execute(INGEST_ONE, {"id": "w1", "time": old}).fetchone()
        assert row == (1, [], 0)
        # The partition it needed was created by the function, as the owner of the tables.
        db.execute("RESET ROLE")
        owners = db.execute(
            "SELECT pg_get_userbyid(p.relowner), pg_get_userbyid(t.relowner)"
            " FROM collector.events e JOIN pg_class p ON p.oid = e.tableoid"
            " CROSS JOIN pg_class t WHERE t.oid = 'collector.events'::regclass AND e.id = 'w1'"
        ).fetchall()
        assert len(owners) == 1
        assert owners[0][0] == owners[0][1] != WRITER


def test_writer_cannot_read_or_change_tables(db: Conn) -> None:
    with as_role(db, WRITER):
        views = set(relations(db, "collector", kinds=("v",)))
        for table in relations(db, "collector"):
            refused(db, f"SELECT * FROM {table}")
            if table in views:
                refused(db, f"DROP VIEW {table}")
                continue
            refused(db, f"TRUNCATE {table}")
            refused(db, f"ALTER TABLE {table} ADD COLUMN extra integer")
            refused(db, f"DROP TABLE {table}")
        refused(db, "DELETE FROM collector.events")
        refused(db, "SELECT * FROM api.events")
        refused(db, "SELECT collector.ensure_partition('raw', now())")


# -- partitions -----------------------------------------------------------------------------------


def test_events_are_partitioned_by_family_then_time(db: Conn) -> None:
    top = db.execute(
        "SELECT partstrat, pg_get_partkeydef(partrelid) FROM pg_partitioned_table"
        " WHERE partrelid = 'collector.events'::regclass"
    ).fetchone()
    assert top == ("l", "LIST (family)")
    families = db.execute("SELECT family FROM collector.partition_policy ORDER BY 1").fetchall()
    assert [f for (f,) in families] == ["cclog", "ccmessage", "cdevents", "cloudevents", "raw"]
    children = db.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), pg_get_partkeydef(c.oid)"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'collector.events'::regclass ORDER BY 1"
    ).fetchall()
    assert children == [
        (f"events_{f}", f"FOR VALUES IN ('{f}')", 'RANGE ("time")') for (f,) in families
    ]


_BOUND = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


def time_partitions(conn: Conn, family: str) -> list[tuple[datetime, datetime]]:
    conn.execute("SET TimeZone = 'UTC'")
    rows = conn.execute(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        (f"collector.events_{family}",),
    ).fetchall()
    ranges = []
    for (bound,) in rows:
        match = _BOUND.fullmatch(bound)
        assert match, bound
        ranges.append((datetime.fromisoformat(match[1]), datetime.fromisoformat(match[2])))
    return sorted(ranges)


def test_partitions_exist_around_now_for_every_family(db: Conn) -> None:
    now = datetime.now(UTC)
    families = [f for (f,) in db.execute("SELECT family FROM collector.partition_policy")]
    for family in families:
        ranges = time_partitions(db, family)
        for at in (now - timedelta(days=1), now, now + timedelta(days=14)):
            assert any(lo <= at < hi for lo, hi in ranges), (family, at, ranges)
        # Contiguous: no hole in which an event of today's window would find no partition.
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges)), ranges


def test_ensure_partitions_ahead_is_idempotent_and_extends(db: Conn) -> None:
    assert db.execute("SELECT collector.ensure_partitions_ahead()").fetchone() == (0,)
    created = db.execute("SELECT collector.ensure_partitions_ahead('70 days')").fetchone()
    assert created is not None
    assert created[0] > 0
    far = datetime.now(UTC) + timedelta(days=70)
    for (family,) in db.execute("SELECT family FROM collector.partition_policy").fetchall():
        assert any(lo <= far < hi for lo, hi in time_partitions(db, family)), family


# -- helpers --------------------------------------------------------------------------------------

INGEST_ONE = """
SELECT * FROM collector.ingest(
    ARRAY[%(id)s], ARRAY['/schema-test'], ARRAY['test.event'], ARRAY[%(time)s::timestamptz],
    ARRAY['raw'], ARRAY[NULL], ARRAY[NULL], ARRAY[NULL], ARRAY[NULL], ARRAY['{"n": 1}'],
    ARRAY[NULL], ARRAY[now()], ARRAY['psql'])
"""


def ingest_one(conn: Conn, event_id: str) -> None:
    row = conn.execute(INGEST_ONE, {"id": event_id, "time": datetime.now(UTC)}).fetchone()
    assert row == (1, [], 0)

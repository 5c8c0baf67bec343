"""Retention by dropping whole time partitions, and what becomes of derived state.

`collector.drop_expired_partitions(family, retention)` drops the partitions of one family whose
upper bound is at least `retention` old, and nothing else. ClusterCockpit identities live in
those partitions and go with them; identities of the other families stay (a replay stays a
duplicate); jobs stay.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import psycopg
import pytest
from psycopg.errors import InsufficientPrivilege, RaiseException

from collector import ccmessage
from collector.db import migrate as migrations
from collector.events import Origin
from collector.maintenance import FamilyMaintenance, maintain
from collector.settings import RetentionSettings
from tests.clustercockpit import job_line, store

Conn = psycopg.Connection[Any]

NOW = datetime.now(UTC)


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def days_ago(days: float) -> datetime:
    return (NOW - timedelta(days=days)).replace(microsecond=0)


def cc_event(name: str, moment: datetime, host: str = "f0101") -> str:
    return (
        f'{name},cluster=fritz,hostname={host},type=node,type-id=0 event="{name}" {epoch(moment)}'
    )


def cc_log(name: str, moment: datetime) -> str:
    return f'{name},cluster=fritz,hostname=f0101,loglevel=info log="{name}" {epoch(moment)}'


INGEST_ONE = """
SELECT stored, duplicate_positions FROM collector.ingest(
    ARRAY[%(id)s], ARRAY['/retention-test'], ARRAY['test.event'], ARRAY[%(time)s::timestamptz],
    ARRAY[%(family)s], ARRAY[NULL], ARRAY[NULL], ARRAY[NULL], ARRAY[NULL], ARRAY['{"n": 1}'],
    ARRAY[NULL], ARRAY[now()], ARRAY['psql'])
"""


def ingest_one(conn: Conn, event_id: str, family: str, moment: datetime) -> tuple[int, list[int]]:
    row = conn.execute(INGEST_ONE, {"id": event_id, "time": moment, "family": family}).fetchone()
    assert row is not None
    return int(row[0]), list(row[1])


def partitions(conn: Conn, family: str) -> list[str]:
    rows = conn.execute(
        "SELECT partition_name FROM collector.time_partitions(%s)", (family,)
    ).fetchall()
    return [name for (name,) in rows]


def partition_holding(conn: Conn, family: str, moment: datetime) -> str:
    row = conn.execute(
        "SELECT partition_name FROM collector.time_partitions(%s)"
        " WHERE lower_bound <= %s AND %s < upper_bound",
        (family, moment, moment),
    ).fetchone()
    assert row is not None, (family, moment)
    return str(row[0])


def drop(conn: Conn, family: str, retention: str | None) -> list[str]:
    rows = conn.execute(
        "SELECT collector.drop_expired_partitions(%s, %s::interval)", (family, retention)
    ).fetchall()
    return [name for (name,) in rows]


def counts(conn: Conn) -> dict[str, int]:
    rows = conn.execute("SELECT family, count(*) FROM api.events GROUP BY family").fetchall()
    return {family: int(n) for family, n in rows}


# -- what is dropped ------------------------------------------------------------------------------


def test_only_expired_partitions_of_the_family_are_dropped(database_url: str, db: Conn) -> None:
    store(
        database_url,
        "\n".join(
            [
                cc_event("old", days_ago(40)),
                cc_event("just_expired", days_ago(31)),
                cc_event("recent", days_ago(29.5)),
                cc_event("today", NOW),
                cc_log("old_log", days_ago(40)),
            ]
        ),
    )
    ingest_one(db, "cd-old", "cdevents", days_ago(400))
    ingest_one(db, "raw-old", "raw", days_ago(40))
    expired = [partition_holding(db, "ccmessage", days_ago(d)) for d in (40, 31)]
    kept = [partition_holding(db, "ccmessage", days_ago(d)) for d in (29.5, 0)]
    others = {f: partitions(db, f) for f in ("cclog", "cdevents", "cloudevents", "raw")}

    assert drop(db, "ccmessage", "30 days") == expired
    assert set(kept) <= set(partitions(db, "ccmessage"))
    assert not set(expired) & set(partitions(db, "ccmessage"))
    assert {f: partitions(db, f) for f in others} == others
    names = db.execute("SELECT name FROM api.cluster_events ORDER BY time").fetchall()
    assert names == [("recent",), ("today",)]
    assert counts(db) == {"ccmessage": 2, "cclog": 1, "cdevents": 1, "raw": 1}

    # Nothing more is expired: a second run drops nothing.
    assert drop(db, "ccmessage", "30 days") == []


def test_a_longer_retention_or_none_drops_nothing(database_url: str, db: Conn) -> None:
    store(database_url, cc_event("old", days_ago(40)))
    before = partitions(db, "ccmessage")
    assert drop(db, "ccmessage", "41 days") == []
    assert drop(db, "ccmessage", None) == []  # forever
    assert partitions(db, "ccmessage") == before
    assert counts(db) == {"ccmessage": 1}


def test_months_and_years_are_intervals_too(db: Conn) -> None:
    ingest_one(db, "a", "cloudevents", days_ago(800))
    ingest_one(db, "b", "cloudevents", days_ago(100))
    old = partition_holding(db, "cloudevents", days_ago(800))
    assert drop(db, "cloudevents", "2 years") == [old]
    assert drop(db, "cloudevents", "6 months") == []
    assert counts(db) == {"cloudevents": 1}


def test_bad_arguments_are_refused_with_a_clear_message(db: Conn) -> None:
    with pytest.raises(RaiseException, match="retention: unknown family nope"):
        drop(db, "nope", "30 days")
    with pytest.raises(RaiseException, match="not a positive interval"):
        drop(db, "ccmessage", "-1 day")
    with pytest.raises(RaiseException, match="not a positive interval"):
        drop(db, "ccmessage", "0 days")


def test_future_and_current_partitions_are_never_dropped(db: Conn) -> None:
    before = {f: partitions(db, f) for f in ("ccmessage", "cclog", "cdevents")}
    for family in before:
        assert drop(db, family, "1 day") == []
    assert {f: partitions(db, f) for f in before} == before


def test_a_busy_family_is_left_for_a_later_run(database_url: str, db: Conn) -> None:
    store(database_url, cc_event("old", days_ago(40)))
    before = partitions(db, "ccmessage")
    warnings: list[str] = []
    db.add_notice_handler(lambda notice: warnings.append(str(notice.message_primary)))
    with psycopg.connect(database_url) as reader:
        # A dashboard query in flight holds the family's table (until its transaction ends).
        reader.execute("SELECT count(*) FROM api.cluster_events").fetchone()
        assert drop(db, "ccmessage", "30 days") == []  # after lock_timeout, not forever
        assert partitions(db, "ccmessage") == before
    assert warnings == [
        "retention: collector.events_ccmessage is busy; expired partitions are kept until a"
        " later run"
    ]
    assert len(drop(db, "ccmessage", "30 days")) == 1


# -- derived state --------------------------------------------------------------------------------


def test_clustercockpit_identities_go_with_their_partition(database_url: str, db: Conn) -> None:
    line = cc_event("old", days_ago(40))
    _, first = store(database_url, line)
    assert first.stored == 1
    _, replay = store(database_url, line)
    assert replay.duplicates == frozenset({0})  # recognised while retained
    event_id = db.execute("SELECT id FROM api.cluster_events").fetchone()
    assert event_id is not None
    assert db.execute("SELECT count(*) FROM api.event(%s)", event_id).fetchone() == (1,)

    drop(db, "ccmessage", "30 days")
    assert db.execute("SELECT count(*) FROM api.event(%s)", event_id).fetchone() == (0,)
    # Expired, identity included: a replay is stored again, into an already expired partition
    # that the next maintenance drops.
    _, late = store(database_url, line)
    assert late.stored == 1
    assert drop(db, "ccmessage", "30 days") == [f"events_ccmessage_{days_ago(40):%Y%m%d}"]
    assert counts(db) == {}


def test_other_identities_stay_so_a_replay_stays_a_duplicate(db: Conn) -> None:
    # Plain JSON and CloudEvents without time get the receive time: a late replay would land in
    # the current partition and live on, unless its identity is still known.
    assert ingest_one(db, "ce-1", "cloudevents", days_ago(100)) == (1, [])  # (month partitions)
    expired = partition_holding(db, "cloudevents", days_ago(100))
    assert drop(db, "cloudevents", "30 days") == [expired]
    assert counts(db) == {}
    assert db.execute("SELECT id FROM collector.event_identities WHERE id = 'ce-1'").fetchall() == [
        ("ce-1",)
    ]
    assert ingest_one(db, "ce-1", "cloudevents", NOW) == (0, [1])
    assert counts(db) == {}
    assert db.execute("SELECT count(*) FROM api.event('ce-1')").fetchone() == (0,)


def test_jobs_outlive_their_events(database_url: str, db: Conn) -> None:
    start_at, stop_at = days_ago(40), days_ago(35)
    start = job_line(
        "start_job",
        {"jobId": 7, "user": "alice", "startTime": epoch(start_at), "numNodes": 1},
        epoch(start_at),
    )
    stop = job_line(
        "stop_job",
        {"jobId": 7, "stopTime": epoch(stop_at), "jobState": "completed"},
        epoch(stop_at),
    )
    store(database_url, f"{start}\n{stop}")
    before = db.execute("SELECT * FROM api.jobs").fetchall()
    assert [(r[0], r[1], r[2]) for r in before] == [("fritz", "7", "finished")]

    assert len(drop(db, "ccmessage", "30 days")) == 2
    assert counts(db) == {}
    assert db.execute("SELECT * FROM api.jobs").fetchall() == before
    # A replay after the identities expired is stored again, and changes nothing.
    _, late = store(database_url, f"{stop}\n{start}")
    assert late.stored == 2
    assert db.execute("SELECT * FROM api.jobs").fetchall() == before


# -- maintenance ----------------------------------------------------------------------------------


def test_maintenance_creates_ahead_and_drops_per_configured_family(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        ingest_one(conn, "old-raw", "raw", days_ago(150))  # month partitions
        ingest_one(conn, "old-cd", "cdevents", days_ago(100))
        ahead = partitions(conn, "cclog")[-1]
        conn.execute(f"DROP TABLE collector.{ahead}")  # as if time had passed
    store(database_url, f"{cc_event('old', days_ago(40))}\n{cc_log('old', days_ago(40))}")

    retention = RetentionSettings(raw="90 days", ccmessage="30 days")

    async def twice() -> list[list[FamilyMaintenance]]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return [await maintain(conn, retention), await maintain(conn, retention)]

    done, again = ({f.family: f for f in run} for run in anyio.run(twice))

    assert sorted(done) == ["cclog", "ccmessage", "cdevents", "cloudevents", "raw"]
    assert ahead in done["cclog"].created  # (with more if the day changed since the template)
    assert (done["cclog"].retention, done["cclog"].dropped) == (None, [])
    assert done["ccmessage"].retention == "30 days"
    assert [name[: len("events_ccmessage_")] for name in done["ccmessage"].dropped] == [
        "events_ccmessage_"
    ]
    assert len(done["raw"].dropped) == 1
    assert done["cdevents"].dropped == []
    assert all(not f.created and not f.dropped for f in again.values())
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert counts(conn) == {"cdevents": 1, "cclog": 1}


# -- roles ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["collector_reader", "collector_writer"])
def test_only_the_owner_runs_maintenance(db: Conn, role: str) -> None:
    with db.transaction(force_rollback=True):
        db.execute(f"SET LOCAL ROLE {role}")
        for call in (
            "SELECT collector.drop_expired_partitions('ccmessage', '1 day')",
            "SELECT * FROM collector.create_partitions_ahead()",
            "SELECT * FROM collector.time_partitions('ccmessage')",
            "SELECT * FROM collector.jobs",
        ):
            with pytest.raises(InsufficientPrivilege), db.transaction():
                db.execute(call)


def test_the_reader_queries_the_hpc_views(database_url: str, db: Conn) -> None:
    start = job_line("start_job", {"jobId": 1, "user": "alice"}, 1700000000)
    store(database_url, f"{start}\n{cc_log('slurmd', days_ago(1))}")
    with db.transaction(force_rollback=True):
        db.execute("SET LOCAL ROLE collector_reader")
        assert db.execute("SELECT count(*) FROM api.cluster_events").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM api.cluster_logs").fetchone() == (1,)
        assert db.execute("SELECT user_name FROM api.jobs").fetchall() == [("alice",)]
        # Lookups by id of ClusterCockpit events run with the function owner's rights.
        [(event_id,)] = db.execute("SELECT id FROM api.cluster_logs").fetchall()
        assert db.execute("SELECT family FROM api.event(%s)", (event_id,)).fetchall() == [
            ("cclog",)
        ]


# -- the migration on a database with ClusterCockpit data ----------------------------------------


def test_0003_moves_logs_rebuilds_jobs_and_moves_identities(empty_database_url: str) -> None:
    shipped = migrations.load_migrations()
    migrate(empty_database_url, [m for m in shipped if m.version == 1])
    # Stored by the collector of 0001: everything ClusterCockpit in family ccmessage.
    lines = [
        cc_log("slurmd", days_ago(2)),
        cc_event("node_state", days_ago(2)),
        job_line("stop_job", {"jobId": 9, "jobState": "completed"}, epoch(days_ago(1))),
        job_line("start_job", {"jobId": 9, "user": "alice"}, epoch(days_ago(2))),
    ]
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        assert [store_as_0001(conn, line) for line in lines] == [(1, [])] * 4
        assert conn.execute("SELECT count(*) FROM collector.event_identities").fetchone() == (4,)

    migrate(empty_database_url, shipped)

    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        assert counts(conn) == {"ccmessage": 3, "cclog": 1}
        assert conn.execute("SELECT name FROM api.cluster_logs").fetchall() == [("slurmd",)]
        assert conn.execute("SELECT count(*) FROM collector.event_identities").fetchone() == (0,)
        assert conn.execute("SELECT job_id, state, user_name FROM api.jobs").fetchall() == [
            ("9", "finished", "alice")
        ]
    # Replays are still duplicates, now through the partitions' identity index.
    _, replay = store(empty_database_url, "\n".join(lines))
    assert (replay.stored, replay.duplicates) == (0, frozenset(range(4)))


def migrate(url: str, known: list[migrations.Migration]) -> None:
    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await migrations.migrate(conn, known)

    anyio.run(go)


def store_as_0001(conn: Conn, line: str) -> tuple[int, list[int]]:
    """One line stored as the collector before 0003 did: family ccmessage for logs too."""
    [event] = ccmessage.decode(line, Origin("cc", NOW)).events
    row = conn.execute(
        "SELECT stored, duplicate_positions FROM collector.ingest(ARRAY[%s], ARRAY[%s],"
        " ARRAY[%s], ARRAY[%s::timestamptz], ARRAY['ccmessage'], ARRAY[%s], ARRAY[NULL],"
        " ARRAY[NULL], ARRAY[NULL], ARRAY[%s], ARRAY[NULL], ARRAY[now()], ARRAY['cc'])",
        (event.id, event.source, event.type, event.time, event.subject, event.payload.decode()),
    ).fetchone()
    assert row is not None
    return int(row[0]), list(row[1])

"""ClusterCockpit messages into the HPC views: api.cluster_events, api.cluster_logs, api.jobs.

Lines go through the same path as the lineprotocol HTTP source (ccmessage.decode, then the
postgres sink), one call of `store` per delivery, and the views are checked row by row.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import pytest

from collector.events import to_cloudevent
from tests.clustercockpit import RECEIVED, job_line, quoted, store
from tests.integration.cdevents_factory import ingest

Conn = psycopg.Connection[Any]


def at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


# -- events and logs ------------------------------------------------------------------------------

MESSAGES = """\
# what node health checks and cc-metric-collector send
node_state,cluster=fritz,hostname=f0101,type=node,type-id=0 event="drained: maintenance" 1700000000
gpu_xid,cluster=fritz,hostname=f0102,type=accelerator,type-id=00000000:3B:00.0,stype=gpu,stype-id=3 event="Xid 79: GPU has fallen off the bus" 1700000060000
slurmd,cluster=fritz,hostname=f0101,type=node,type-id=0,loglevel=warn log="disk almost full" 1700000001
kernel,hostname=f0102,type=node,type-id=0,loglevel=error log="Out of memory: Killed process 4242 (a.out)" 1700000002
cpu_load,cluster=fritz,hostname=f0101,type=node,type-id=0 value=1.5 1700000000
this is not line protocol
healthcheck,cluster=fritz,hostname=f0103 event="ok"
"""  # noqa: E501 - lines as senders write them

EVENT_COLUMNS = "time, cluster, hostname, type, type_id, stype, stype_id, name, message, data"
LOG_COLUMNS = "time, cluster, hostname, type, type_id, stype, stype_id, name, level, message"


def test_events_and_logs_become_rows_of_their_views(database_url: str, db: Conn) -> None:
    decoded, result = store(database_url, MESSAGES, cluster="alex")
    assert (result.stored, result.duplicates, result.rejected) == (5, frozenset(), 1)
    assert decoded.metrics_skipped == 1

    events = db.execute(f"SELECT {EVENT_COLUMNS} FROM api.cluster_events ORDER BY time").fetchall()
    assert events == [
        (at(1700000000), "fritz", "f0101", "node", "0", None, None, "node_state",
         "drained: maintenance", None),
        (at(1700000060), "fritz", "f0102", "accelerator", "00000000:3B:00.0", "gpu", "3",
         "gpu_xid", "Xid 79: GPU has fallen off the bus", None),
        (RECEIVED, "fritz", "f0103", None, None, None, None, "healthcheck", "ok", None),
    ]  # fmt: skip
    logs = db.execute(f"SELECT {LOG_COLUMNS} FROM api.cluster_logs ORDER BY time").fetchall()
    assert logs == [
        (at(1700000001), "fritz", "f0101", "node", "0", None, None, "slurmd", "warn",
         "disk almost full"),
        # No cluster tag: the cluster the source was given (?cluster= or its configuration).
        (at(1700000002), "alex", "f0102", "node", "0", None, None, "kernel", "error",
         "Out of memory: Killed process 4242 (a.out)"),
    ]  # fmt: skip

    families = db.execute("SELECT family, type FROM api.events ORDER BY family, type").fetchall()
    assert families == [
        ("cclog", "org.clustercockpit.log.kernel"),
        ("cclog", "org.clustercockpit.log.slurmd"),
        ("ccmessage", "org.clustercockpit.event.gpu_xid"),
        ("ccmessage", "org.clustercockpit.event.healthcheck"),
        ("ccmessage", "org.clustercockpit.event.node_state"),
    ]
    rejected = db.execute("SELECT location, reason FROM api.rejected_events").fetchall()
    assert [location for location, _ in rejected] == ["line 7"]  # the comment is line 1
    assert rejected[0][1].startswith("not line protocol")


def test_tags_id_source_and_lookup_by_id(database_url: str, db: Conn) -> None:
    store(database_url, MESSAGES, cluster="alex")
    row = db.execute(
        "SELECT id, source, received_at, tags FROM api.cluster_events WHERE name = 'gpu_xid'"
    ).fetchone()
    assert row is not None
    event_id, source, received_at, tags = row
    assert source == "/clusters/fritz/hosts/f0102"
    assert received_at == RECEIVED
    assert tags == {
        "cluster": "fritz",
        "hostname": "f0102",
        "type": "accelerator",
        "type-id": "00000000:3B:00.0",
        "stype": "gpu",
        "stype-id": "3",
    }
    # ClusterCockpit identities live in their partitions, not the identity table; lookups by
    # id still find them.
    assert db.execute("SELECT count(*) FROM collector.event_identities").fetchone() == (0,)
    found = db.execute("SELECT type, family FROM api.event(%s)", (event_id,)).fetchall()
    assert found == [("org.clustercockpit.event.gpu_xid", "ccmessage")]
    log_id = db.execute("SELECT id FROM api.cluster_logs WHERE name = 'kernel'").fetchone()
    assert log_id is not None
    both = db.execute(
        "SELECT family FROM api.events_by_id(%s)", ([event_id, log_id[0], "unknown"],)
    ).fetchall()
    assert both == [("cclog",), ("ccmessage",)]  # by time: the log line came first


def test_lookup_by_id_finds_messages_of_any_age_once(database_url: str, db: Conn) -> None:
    # Searched newest first in windows growing backwards: one message in each window, as an
    # event and as a log line, and an id of each asked twice.
    now = int(datetime.now(UTC).timestamp())
    ages = [3600, 20 * 86400, 100 * 86400, 300 * 86400]
    lines = [
        f'node_state,cluster=fritz,hostname=f01,type=node,type-id=0 event="down {age}" {now - age}'
        f'\nslurmd,cluster=fritz,hostname=f01,type=node,type-id=0 log="up {age}" {now - age + 1}'
        for age in ages
    ]
    store(database_url, "\n".join(lines))
    rows = db.execute("SELECT id, time, family FROM api.events ORDER BY time").fetchall()
    assert len(rows) == 8
    ids = [event_id for event_id, _, _ in rows]
    unknown = "0" * 64

    found = db.execute(
        "SELECT id, time, family FROM api.events_by_id(%s)", ([unknown, *ids, *ids[::3]],)
    ).fetchall()
    assert found == rows
    for event_id, when, family in rows:
        assert db.execute("SELECT time, family FROM api.event(%s)", (event_id,)).fetchall() == [
            (when, family)
        ]


def test_lookup_by_id_finds_a_message_whose_id_another_family_has_too(
    database_url: str, db: Conn
) -> None:
    """A ClusterCockpit event forwarded as a CloudEvent into the same database: the copy (a
    forwarding sink's, keeping id, source, type and time) is a CloudEvent with a known identity,
    the original a ClusterCockpit event with the same id. A lookup finds both."""
    now = int(datetime.now(UTC).timestamp())
    decoded, _ = store(
        database_url,
        f'node_state,cluster=fritz,hostname=f01,type=node,type-id=0 event="down" {now - 3600}\n'
        f'slurmd,cluster=fritz,hostname=f01,type=node,type-id=0 log="up" {now - 40 * 86400}',
    )
    copies = [orjson.loads(orjson.dumps(to_cloudevent(event))) for event in decoded.events]
    [forwarded] = ingest(database_url, [copies])
    assert forwarded.stored == 2
    stored = db.execute("SELECT id, time, family FROM api.events ORDER BY time, family").fetchall()
    families = [family for _, _, family in stored]
    assert families == ["cclog", "cloudevents", "ccmessage", "cloudevents"]

    ids = [event.id for event in decoded.events]
    found = db.execute(
        "SELECT id, time, family FROM api.events_by_id(%s) ORDER BY time, family",
        ([*ids, "0" * 64, "e-unknown"],),
    ).fetchall()
    assert found == stored
    for event_id in ids:
        assert db.execute(
            "SELECT id, time, family FROM api.event(%s) ORDER BY family", (event_id,)
        ).fetchall() == [row for row in stored if row[0] == event_id]


def test_a_resent_delivery_is_a_duplicate(database_url: str, db: Conn) -> None:
    store(database_url, MESSAGES, cluster="alex")
    _, again = store(database_url, MESSAGES, cluster="alex")
    # The line without a timestamp is told apart by its receive time: new only if received anew.
    assert (again.stored, again.duplicates) == (0, frozenset(range(5)))
    assert db.execute("SELECT count(*) FROM api.cluster_events").fetchone() == (3,)
    assert db.execute("SELECT count(*) FROM api.cluster_logs").fetchone() == (2,)


# -- jobs -----------------------------------------------------------------------------------------

JOB_COLUMNS = (
    "cluster, job_id, state, job_state, user_name, project, job_name, sub_cluster, partition,"
    " nodes, num_nodes, num_hwthreads, num_acc, walltime_s, start_time, stop_time, duration_s"
)

START_1001 = {
    "jobId": 1001,
    "user": "alice",
    "project": "climate",
    "cluster": "fritz",
    "subCluster": "main",
    "partition": "work",
    "numNodes": 2,
    "numHwthreads": 144,
    "numAcc": 0,
    "walltime": 7200,
    "jobState": "running",
    "startTime": 1700000000,
    "resources": [{"hostname": "f0101", "hwthreads": [0, 1]}, {"hostname": "f0102"}],
    "metaData": {"jobName": "ocean-sim", "jobScript": "#!/bin/bash\nsrun ./ocean"},
}
STOP_1001 = {
    "jobId": 1001,
    "cluster": "fritz",
    "startTime": 1700000000,
    "stopTime": 1700003600,
    "jobState": "completed",
}
START_1002 = {
    "jobId": 1002,
    "user": "bob",
    "project": "astro",
    "cluster": "fritz",
    "jobState": "running",
    "startTime": 1700001000,
    "resources": [{"hostname": "f0103"}, {"hostname": "f0104"}, {"hostname": "f0105"}],
}
START_1003 = {
    "jobId": 1003,
    "user": "carol",
    "project": "bio",
    "cluster": "fritz",
    "numNodes": 1,
    "jobState": "running",
    "startTime": 1700002000,
    "resources": [{"hostname": "f0106"}],
}
STOP_1003 = {
    "jobId": "1003",  # a string here, a number in the start: the same job
    "cluster": "fritz",
    "startTime": 1700002000,
    "stopTime": 1700009000,
    "jobState": "failed",
    "duration": 6990,
}

FINISHED_1001 = (
    "fritz", "1001", "finished", "completed", "alice", "climate", "ocean-sim", "main", "work",
    ["f0101", "f0102"], 2, 144, 0, 7200.0, at(1700000000), at(1700003600), 3600.0,
)  # fmt: skip
RUNNING_1002 = (
    "fritz", "1002", "running", "running", "bob", "astro", None, None, None,
    ["f0103", "f0104", "f0105"], 3, None, None, None, at(1700001000), None, None,
)  # fmt: skip
FINISHED_1003 = (
    "fritz", "1003", "finished", "failed", "carol", "bio", None, None, None,
    ["f0106"], 1, None, None, None, at(1700002000), at(1700009000), 6990.0,
)  # fmt: skip


def jobs(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute(f"SELECT {JOB_COLUMNS} FROM api.jobs ORDER BY cluster, job_id").fetchall()


def test_start_and_stop_in_both_spellings_join_per_job(database_url: str, db: Conn) -> None:
    lines = [
        job_line("start_job", START_1001, 1700000005),
        job_line("start_job", START_1002, 1700001001, spelling="function"),
        job_line("stop_job", STOP_1001, 1700003601, spelling="function"),
    ]
    _, result = store(database_url, "\n".join(lines))
    assert result.stored == 3
    assert jobs(db) == [FINISHED_1001, RUNNING_1002]
    # Job events are cluster events too, named after the function in either spelling.
    names = db.execute("SELECT name FROM api.cluster_events ORDER BY time").fetchall()
    assert names == [("start_job",), ("start_job",), ("stop_job",)]


def test_the_job_row_links_to_its_events(database_url: str, db: Conn) -> None:
    start = job_line("start_job", START_1001, 1700000005)
    stop = job_line("stop_job", STOP_1001, 1700003601)
    store(database_url, f"{start}\n{stop}")
    row = db.execute(
        "SELECT start_event_id, start_event_time, stop_event_id, stop_event_time FROM api.jobs"
    ).fetchone()
    assert row is not None
    start_id, start_time, stop_id, stop_time = row
    assert (start_time, stop_time) == (at(1700000005), at(1700003601))
    linked = db.execute(
        "SELECT id, name, data->>'jobState' FROM api.cluster_events ORDER BY time"
    ).fetchall()
    assert linked == [(start_id, "start_job", "running"), (stop_id, "stop_job", "completed")]


def test_a_stop_before_its_start(database_url: str, db: Conn) -> None:
    store(database_url, job_line("stop_job", STOP_1003, 1700009001, spelling="function"))
    # Finished, with what the stop says: its startTime, stopTime and duration; no user yet.
    assert jobs(db) == [
        ("fritz", "1003", "finished", "failed", None, None, None, None, None,
         None, None, None, None, None, at(1700002000), at(1700009000), 6990.0),
    ]  # fmt: skip
    assert db.execute("SELECT start_event_id FROM api.jobs").fetchone() == (None,)

    store(database_url, job_line("start_job", START_1003, 1700002001))
    assert jobs(db) == [FINISHED_1003]


def test_a_stop_stamped_with_the_start_as_cc_lib_writes_it(database_url: str, db: Conn) -> None:
    # ccMessage.NewJobStopEvent stamps a stop with the job's startTime and sends the job as it
    # is (schema.Job: startTime and duration, no stopTime): the job stopped at their sum.
    stop = {**START_1003, "jobState": "failed", "duration": 7000}
    store(database_url, job_line("stop_job", stop, 1700002000))
    [row] = db.execute("SELECT start_time, stop_time, duration_s FROM api.jobs").fetchall()
    assert row == (at(1700002000), at(1700009000), 7000.0)
    # Its startTime comes with the start when the stop has none; a stopTime always wins.
    store(database_url, job_line("start_job", {**START_1001, "jobId": 1006}, 1700000005))
    store(database_url, job_line("stop_job", {"jobId": 1006, "duration": 60}, 1700000005))
    store(database_url, job_line("stop_job", {**STOP_1003, "jobId": 1007}, 1700002000))
    stopped = db.execute(
        "SELECT job_id, stop_time FROM api.jobs WHERE job_id <> '1003' ORDER BY job_id"
    ).fetchall()
    assert stopped == [("1006", at(1700000060)), ("1007", at(1700009000))]


def test_duplicates_are_never_merged_twice(database_url: str, db: Conn) -> None:
    start = job_line("start_job", START_1001, 1700000005)
    stop = job_line("stop_job", STOP_1001, 1700003601)
    _, first = store(database_url, f"{start}\n{start}\n{stop}")
    assert (first.stored, first.duplicates) == (2, frozenset({1}))
    before = db.execute("SELECT * FROM collector.jobs").fetchall()

    _, again = store(database_url, f"{stop}\n{start}")
    assert (again.stored, again.duplicates) == (0, frozenset({0, 1}))
    assert db.execute("SELECT * FROM collector.jobs").fetchall() == before
    assert jobs(db) == [FINISHED_1001]


# Three events of one job, the start sent twice by two routes (two spellings, five seconds
# apart, so two different events): every arrival order gives the same row, from the earlier
# start.
JOB_1004_EVENTS = {
    "start": job_line("start_job", {**START_1001, "jobId": 1004}, 1700000005),
    "late copy of start": job_line(
        "start_job", {**START_1001, "jobId": 1004, "user": "mallory"}, 1700000010,
        spelling="function",
    ),
    "stop": job_line("stop_job", {**STOP_1001, "jobId": 1004}, 1700003601),
}  # fmt: skip


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(JOB_1004_EVENTS)),
    ids=lambda order: " then ".join(order),
)
def test_every_arrival_order_gives_the_same_job(
    order: tuple[str, ...], database_url: str, db: Conn
) -> None:
    for name in order:
        _, result = store(database_url, JOB_1004_EVENTS[name])
        assert result.stored == 1
    assert jobs(db) == [(FINISHED_1001[0], "1004", *FINISHED_1001[2:])]
    start_time = db.execute("SELECT start_event_time FROM api.jobs").fetchone()
    assert start_time == (at(1700000005),)


def test_job_events_without_a_usable_job_stay_cluster_events(database_url: str, db: Conn) -> None:
    lines = [
        f"start_job,cluster=fritz event={quoted('not json')} 1700000001",
        job_line("start_job", {"user": "nobody"}, 1700000002),  # no jobId
        job_line("start_job", {"jobId": {"id": 1}}, 1700000003),  # not an id
        # Wrong types are ignored field by field: the event's time stands in for startTime.
        job_line(
            "start_job",
            {"jobId": 1005, "startTime": "yesterday", "numNodes": "many", "resources": "f0101"},
            1700000004,
        ),
        job_line("stop_job", {"jobId": 1005, "stopTime": -5, "duration": [1]}, 1700000064),
    ]
    _, result = store(database_url, "\n".join(lines))
    assert (result.stored, result.rejected, result.refused) == (5, 0, frozenset())
    assert db.execute("SELECT count(*) FROM api.cluster_events").fetchone() == (5,)
    assert jobs(db) == [
        ("fritz", "1005", "finished", None, None, None, None, None, None,
         None, None, None, None, None, at(1700000004), at(1700000064), 60.0),
    ]  # fmt: skip


def test_jobs_are_read_from_the_state_table_not_from_history(db: Conn) -> None:
    plan = "\n".join(row for (row,) in db.execute("EXPLAIN SELECT * FROM api.jobs").fetchall())
    assert "jobs" in plan
    assert "events" not in plan


def test_a_time_range_reads_only_the_partitions_of_that_range(database_url: str, db: Conn) -> None:
    days = [f"node_state,cluster=fritz,hostname=f0101 event=\"d{n}\" {1700000000 + n * 86400}"
            for n in range(20)]  # fmt: skip
    store(database_url, "\n".join(days))
    rows = db.execute(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT message"
        " FROM api.cluster_events WHERE time >= %s AND time < %s",
        (at(1700000000 + 5 * 86400), at(1700000000 + 7 * 86400)),
    ).fetchall()
    plan = "\n".join(line for (line,) in rows)
    assert set(re.findall(r" on (events_\w+)", plan)) == {
        "events_ccmessage_20231119",
        "events_ccmessage_20231120",
        "events_ccmessage_20231121",
    }, plan

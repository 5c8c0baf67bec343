"""`collector run` as a process with NATS: every payload format into `api.events`, JetStream's
at-least-once under kill -9 and with several collectors on one durable consumer, a database
outage, core NATS with a queue group, and a folder → NATS → PostgreSQL chain.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from nats.aio.client import Client
from nats.js import api as js_api

from collector.cli import to_toml
from collector.db.embedded import EmbeddedPostgres
from collector.demo_events import payloads as cdevent_payloads
from tests.conftest import SPEC, CollectorProcess, wait_for
from tests.nats_fixtures import (
    CLUSTERCOCKPIT,
    Message,
    NatsNames,
    NatsServer,
    PrivateNats,
    free_port,
    ocis_event,
)

MakeCollector = Callable[..., CollectorProcess]


def config(
    server: NatsServer,
    names: NatsNames,
    *,
    database_url: str | None = None,
    source: dict[str, Any] | None = None,
    sinks: dict[str, Any] | None = None,
    pipeline: dict[str, Any] | None = None,
    http_port: int | None = None,
) -> str:
    data: dict[str, Any] = {
        "pipeline": {"batch_size": 1000, "linger_ms": 5, **(pipeline or {})},
        "sources": {
            "bus": {
                "type": "nats",
                "servers": [server.url],
                "stream": names.stream,
                "durable": names.durable,
                "subjects": [names.wildcard],
                "nak_delay_s": 0.2,
                **(source or {}),
            }
        },
        "sinks": sinks or {"db": {"type": "postgres"}},
    }
    if database_url is not None:
        data["database"] = {"url": database_url}
    if http_port is not None:  # /readyz and /metrics
        data["http"] = {"enabled": True, "port": http_port}
    return to_toml(data)


def count(db: psycopg.Connection[Any], sql: str = "select count(*) from api.events") -> int:
    row = db.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def log_events(proc: CollectorProcess, name: str) -> list[dict[str, Any]]:
    """The JSON log lines of one event name (stderr is not a terminal: JSON lines)."""
    found = []
    for line in proc.logs().splitlines():
        if f'"{name}"' in line:
            entry = json.loads(line)
            if entry.get("event") == name:
                found.append(entry)
    return found


def started(proc: CollectorProcess, ready: str = "nats_consuming") -> Callable[[], bool]:
    def collector_ready() -> bool:
        assert proc.proc is not None
        assert proc.proc.poll() is None, proc.logs()
        return ready in proc.logs()

    return collector_ready


def settled(server: NatsServer, names: NatsNames) -> Callable[[], bool]:
    """Every message of the stream was acked or terminated by the consumer."""

    def consumer_settled() -> bool:
        info = server.consumer(names.stream, names.durable)
        return info.num_pending == 0 and info.num_ack_pending == 0

    return consumer_settled


def cdevent_messages(names: NatsNames, total: int, seed: int) -> list[Message]:
    return [
        (f"{names.prefix}.cd.{i % 7}", payload, None)
        for i, payload in enumerate(cdevent_payloads(total, seed=seed))
    ]


def test_every_payload_format_becomes_rows_with_transport_metadata(
    collector_process: MakeCollector,
    database_url: str,
    db: psycopg.Connection[Any],
    nats_server: NatsServer,
    nats_names: NatsNames,
) -> None:
    p = nats_names.prefix
    conformance = sorted((SPEC / "v0.5.1" / "conformance").glob("*.json"))
    structured = {
        "specversion": "1.0",
        "id": "ce-structured",
        "source": "/shop",
        "type": "com.example.order.placed",
        "subject": "order-1",
        "data": {"total": 3},
    }
    messages: list[Message] = [
        (f"{p}.ce", orjson.dumps(structured), {"x-request-id": "r-1"}),
        (
            f"{p}.ce",
            b'{"total": 4}',
            {
                "ce-specversion": "1.0",
                "ce-id": "ce-binary",
                "ce-source": "/shop",
                "ce-type": "com.example.order.paid",
                "content-type": "application/json",
            },
        ),
        *[(f"{p}.cd", path.read_bytes(), None) for path in conformance],
        (f"{p}.cc.fritz", CLUSTERCOCKPIT.encode(), None),
        (
            f"{p}.ocis",
            b'{"SpaceID": "space-1", "Executant": {"opaque_id": "einstein"}}',
            {"eventtype": "events.SpaceCreated", "eventid": "ocis-1"},
        ),
        (f"{p}.builds.eu", b'{"build": 42, "status": "green"}', None),
        (f"{p}.main-queue", ocis_event(b'{"UploadID": "u1"}', event_id="ocis-2"), None),
    ]
    collector = collector_process(
        config(
            nats_server,
            nats_names,
            source={
                "cluster": "default-cluster",
                "type_header": "eventtype",
                "id_header": "eventid",
                "headers": ["x-request-id", "eventtype"],
                "subject_types": {f"{p}.builds.*": "com.example.build"},
            },
        ),
        env={"COLLECTOR__DATABASE__URL": database_url},
    ).start()
    wait_for(started(collector), timeout=60)
    nats_server.publish(messages)

    expected = 2 + len(conformance) + 7 + 3  # the ClusterCockpit text holds 7 events
    wait_for(lambda: count(db) == expected, timeout=60)
    wait_for(settled(nats_server, nats_names), timeout=30)

    rows = {
        (r[0], r[1]): r[2:]
        for r in db.execute(
            "select family, id, type, subject, metadata, payload from api.events"
        ).fetchall()
    }
    assert {family for family, _ in rows} == {
        "cloudevents",
        "cdevents",
        "ccmessage",
        "cclog",
        "raw",
    }
    _, subject, metadata, payload = rows[("cloudevents", "ce-structured")]
    assert subject == "order-1"
    assert payload == structured
    assert metadata == {
        "subject": f"{p}.ce",
        "stream_sequence": 1,
        "delivered": 1,
        "headers": {"x-request-id": "r-1"},
    }
    event_type, _, metadata, payload = rows[("cloudevents", "ce-binary")]
    assert event_type == "com.example.order.paid"
    assert payload["data"] == {"total": 4}
    assert metadata["stream_sequence"] == 2
    for path in conformance:
        doc = json.loads(path.read_text())
        assert rows[("cdevents", doc["context"]["id"])] is not None
    assert count(db, "select count(*) from api.events where family = 'cdevents'") == len(
        conformance
    )
    cc_types = db.execute(
        "select type, source from api.events where family in ('ccmessage', 'cclog')"
        " order by type, source"
    ).fetchall()
    assert ("org.clustercockpit.event.start_job", "/clusters/default-cluster") in cc_types
    assert ("org.clustercockpit.event.start_job", "/clusters/fritz/hosts/f0101") in cc_types
    assert (
        "org.clustercockpit.log.application_log",
        "/clusters/default-cluster/hosts/node001",
    ) in (cc_types)
    event_type, _, metadata, payload = rows[("raw", "ocis-1")]
    assert event_type == "events.SpaceCreated"
    assert payload["SpaceID"] == "space-1"
    assert metadata["headers"] == {"eventtype": "events.SpaceCreated"}
    assert metadata["subject"] == f"{p}.ocis"
    event_type, _, metadata, payload = rows[("raw", "ocis-2")]  # as oCIS publishes: no headers
    assert (event_type, payload) == ("events.UploadReady", {"UploadID": "u1"})
    assert metadata["gomicro"]["Topic"] == "main-queue"
    (build,) = [
        v
        for (family, _), v in rows.items()
        if family == "raw" and v[0] not in ("events.SpaceCreated", "events.UploadReady")
    ]
    assert build[0] == "com.example.build"

    # The three bad ClusterCockpit lines are rejected alone; the rest of the message is stored.
    rejected = db.execute(
        "select location, reason, metadata->>'subject' from api.rejected_events order by location"
    ).fetchall()
    assert [(r[0], r[2]) for r in rejected] == [
        ("line 10", f"{p}.cc.fritz"),
        ("line 11", f"{p}.cc.fritz"),
        ("line 12", f"{p}.cc.fritz"),
    ]
    assert collector.stop() == 0
    (stopped,) = log_events(collector, "nats_source_stopped")
    assert stopped["metrics_skipped"] == 2
    assert stopped["received"] == len(messages)
    assert "nats_disconnected" not in collector.logs()  # a normal stop is not an outage


def test_invalid_payloads_are_stored_as_rejected_then_terminated(
    collector_process: MakeCollector,
    database_url: str,
    db: psycopg.Connection[Any],
    nats_server: NatsServer,
    nats_names: NatsNames,
) -> None:
    p = nats_names.prefix
    bad: list[Message] = [
        (f"{p}.bad", b'{"specversion": "1.0", "id": ', None),
        (f"{p}.bad", b'{"context": {"id": "x"}}', None),
        (f"{p}.bad", b'{"no": "type"}', None),
        (f"{p}.bad", b"garbage that is no line protocol", None),
        (f"{p}.bad", b"", None),  # read as line protocol (format auto), holding nothing
    ]
    good = cdevent_messages(nats_names, 5, seed=11)
    good.append((f"{p}.cc", b"# only a comment\n", None))  # nothing wrong, nothing to store
    # ack_wait is short, so a message left unacknowledged would be redelivered during the test.
    collector = collector_process(
        config(nats_server, nats_names, source={"ack_wait_s": 1}),
        env={"COLLECTOR__DATABASE__URL": database_url},
    ).start()
    wait_for(started(collector), timeout=60)
    nats_server.publish([*bad, *good])

    wait_for(lambda: count(db) == len(good) - 1, timeout=60)
    wait_for(settled(nats_server, nats_names), timeout=30)
    time.sleep(2.5)  # past ack_wait twice: nothing may come back
    info = nats_server.consumer(nats_names.stream, nats_names.durable)
    assert (info.num_redelivered, info.num_ack_pending, info.num_pending) == (0, 0, 0)
    assert info.delivered is not None
    assert info.delivered.stream_seq == len(bad) + len(good)
    rejected = db.execute(
        "select reason, raw, metadata->>'stream_sequence' from api.rejected_events order by seq"
    ).fetchall()
    assert sorted(r[1] for r in rejected) == sorted(m[1].decode() for m in bad)
    reasons = {r[1]: r[0] for r in rejected}
    assert reasons['{"no": "type"}'].startswith("type: plain JSON carries no event type")
    assert reasons['{"context": {"id": "x"}}'] == "context.source: missing"
    assert reasons[""] == "empty message: no event, no line of line protocol"
    assert {r[2] for r in rejected} == {"1", "2", "3", "4", "5"}
    assert collector.stop() == 0
    (stopped,) = log_events(collector, "nats_source_stopped")
    assert stopped["terminated"] == len(bad)
    assert stopped["comments_only"] == 1


def test_database_outage_holds_messages_then_delivers_everything_once(
    collector_process: MakeCollector,
    private_postgres: EmbeddedPostgres,
    nats_server: NatsServer,
    nats_names: NatsNames,
) -> None:
    server = private_postgres
    collector = collector_process(
        config(
            nats_server,
            nats_names,
            database_url=server.url,
            source={"ack_wait_s": 2, "fetch_batch": 100},
            pipeline={"batch_size": 100},
        )
    ).start()
    wait_for(started(collector), timeout=60)
    first = cdevent_messages(nats_names, 500, seed=21)
    nats_server.publish(first)

    def stored() -> int:
        try:
            with psycopg.connect(server.url, connect_timeout=2) as conn:
                return count(conn)
        except psycopg.OperationalError:
            return -1

    wait_for(lambda: stored() == len(first), timeout=60)
    server.stop()
    second = cdevent_messages(nats_names, 1_500, seed=22)
    nats_server.publish(second)
    wait_for(lambda: "database_unavailable" in collector.logs(), timeout=60)
    time.sleep(3)  # longer than ack_wait: JetStream redelivers what is not acknowledged
    info = nats_server.consumer(nats_names.stream, nats_names.durable)
    assert info.ack_floor is not None
    assert info.ack_floor.stream_seq <= len(first)  # nothing acknowledged during the outage
    assert collector.proc is not None
    assert collector.proc.poll() is None

    server.start()
    total = len(first) + len(second)
    wait_for(lambda: stored() == total, timeout=120)
    wait_for(settled(nats_server, nats_names), timeout=60)
    with psycopg.connect(server.url) as conn:
        assert count(conn, "select count(distinct (source, type, id)) from api.events") == total
        assert count(conn, "select count(*) from api.rejected_events") == 0
    assert collector.stop() == 0
    assert "Traceback" not in collector.logs()
    # The source stopped pulling while the database was down: what it held was redelivered
    # at most once (fetching redeliveries during the outage would multiply them).
    duplicates = sum(e["duplicates"] for e in log_events(collector, "batch_stored"))
    assert duplicates < len(second)


def test_collector_waits_for_nats_at_start_and_survives_a_nats_restart(
    collector_process: MakeCollector,
    database_url: str,
    db: psycopg.Connection[Any],
    nats_names: NatsNames,
    tmp_path: Path,
) -> None:
    broker = PrivateNats(tmp_path / "nats")
    (tmp_path / "nats").mkdir()
    server = NatsServer(broker.url)
    collector = collector_process(
        config(server, nats_names, source={"ack_wait_s": 5}),
        env={"COLLECTOR__DATABASE__URL": database_url},
    ).start()
    wait_for(lambda: "nats_unavailable" in collector.logs(), timeout=60)
    broker.start()  # NATS comes up after collector: it connects, creates the stream, consumes
    try:
        wait_for(started(collector), timeout=60)
        first = cdevent_messages(nats_names, 1_000, seed=81)
        server.publish(first)
        wait_for(lambda: count(db) == len(first), timeout=60)

        broker.stop()
        wait_for(lambda: "nats_disconnected" in collector.logs(), timeout=30)
        broker.start()  # same port, same JetStream store: the stream and consumer are back
        wait_for(lambda: "nats_reconnected" in collector.logs(), timeout=60)
        second = cdevent_messages(nats_names, 1_000, seed=82)
        server.publish(second)
        wait_for(lambda: count(db) == len(first) + len(second), timeout=60)
        wait_for(settled(server, nats_names), timeout=30)
        assert collector.stop() == 0
    finally:
        broker.stop()
    assert count(db, "select count(distinct id) from api.events") == len(first) + len(second)
    assert "Traceback" not in collector.logs()


def test_core_mode_with_a_queue_group_delivers_while_running(
    collector_process: MakeCollector,
    database_url: str,
    db: psycopg.Connection[Any],
    nats_server: NatsServer,
    nats_names: NatsNames,
) -> None:
    collector = collector_process(
        config(nats_server, nats_names, source={"mode": "core", "queue_group": "collectors"}),
        env={"COLLECTOR__DATABASE__URL": database_url},
    ).start()
    wait_for(started(collector, "nats_subscribed"), timeout=60)
    messages = cdevent_messages(nats_names, 300, seed=31)
    nats_server.publish(messages)
    wait_for(lambda: count(db) == len(messages), timeout=60)
    subjects = {s for (s,) in db.execute("select distinct metadata->>'subject' from api.events")}
    assert subjects == {f"{nats_names.prefix}.cd.{i}" for i in range(7)}
    assert count(db, "select count(*) from api.events where metadata ? 'stream_sequence'") == 0
    assert collector.stop() == 0


def test_kill_9_mid_stream_then_restart_stores_every_event_exactly_once(
    collector_process: MakeCollector,
    database_url: str,
    db: psycopg.Connection[Any],
    nats_server: NatsServer,
    nats_names: NatsNames,
) -> None:
    nats_server.create_stream(nats_names)
    total = nats_server.publish(cdevent_messages(nats_names, 20_000, seed=41))
    wait_for(lambda: nats_server.stream_messages(nats_names.stream) == total, timeout=60)
    settings = config(
        nats_server,
        nats_names,
        source={"ack_wait_s": 3, "fetch_batch": 500},
        pipeline={"batch_size": 500},
    )
    env = {"COLLECTOR__DATABASE__URL": database_url}
    first = collector_process(settings, env=env).start()
    wait_for(lambda: count(db) >= total // 5, timeout=60)
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    at_kill = count(db)
    assert at_kill < total, "ingest finished before the kill: the test proves nothing"
    info = nats_server.consumer(nats_names.stream, nats_names.durable)
    assert (info.num_ack_pending or 0) + (info.num_pending or 0) > 0

    again = collector_process(settings, env=env).start()
    wait_for(lambda: count(db) == total, timeout=120)
    wait_for(settled(nats_server, nats_names), timeout=60)
    assert count(db, "select count(distinct (source, type, id)) from api.events") == total
    assert count(db, "select count(*) from api.rejected_events") == 0
    assert again.stop() == 0


def test_three_collectors_on_one_durable_consumer_one_killed_halfway(
    collector_process: MakeCollector,
    database_url: str,
    db: psycopg.Connection[Any],
    nats_server: NatsServer,
    nats_names: NatsNames,
    tmp_path: Path,
) -> None:
    total = 50_000
    nats_server.create_stream(nats_names)
    settings = config(
        nats_server,
        nats_names,
        source={"ack_wait_s": 3, "fetch_batch": 500, "fetchers": 1},
        pipeline={"batch_size": 1000},
    )
    env = {"COLLECTOR__DATABASE__URL": database_url}
    collectors = [
        collector_process(settings, env=env, workdir=tmp_path / f"c{i}").start() for i in range(3)
    ]
    for collector in collectors:
        wait_for(started(collector), timeout=60)
    nats_server.publish(cdevent_messages(nats_names, total, seed=51))

    wait_for(lambda: count(db) >= total // 2, timeout=120)
    victim = collectors[0]
    assert victim.proc is not None
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    assert count(db) < total, "ingest finished before the kill: the test proves nothing"

    wait_for(lambda: count(db) == total, timeout=120)
    wait_for(settled(nats_server, nats_names), timeout=60)
    assert count(db, "select count(distinct (source, type, id)) from api.events") == total
    # The work was shared: each surviving collector stored some of it.
    for survivor in collectors[1:]:
        assert survivor.stop() == 0
        assert sum(e["stored"] for e in log_events(survivor, "batch_stored")) > 0


def test_chain_folder_to_nats_to_postgres(
    collector_process: MakeCollector,
    database_url: str,
    db: psycopg.Connection[Any],
    nats_server: NatsServer,
    nats_names: NatsNames,
    tmp_path: Path,
) -> None:
    """Collector A (folder → nats sink, no database) feeds collector B (nats → postgres)."""
    nats_server.create_stream(nats_names)
    inbox = tmp_path / "a" / "inbox"
    inbox.mkdir(parents=True)
    bridge = to_toml(
        {
            "pipeline": {"batch_size": 200, "linger_ms": 5},
            "sources": {
                "inbox": {
                    "type": "folder",
                    "path": str(inbox),
                    "settle_s": 0,
                    "poll_interval_s": 0.05,
                    "event_type": "com.example.plain",
                }
            },
            "sinks": {
                "bus": {
                    "type": "nats",
                    "servers": [nats_server.url],
                    "subject": nats_names.prefix + ".{family}.{type}",
                    "jetstream": True,
                    "required": True,
                }
            },
        }
    )
    # No database settings at all: a bridge must not start or need one.
    a = collector_process(bridge, env={"COLLECTOR__DATABASE__URL": ""}, workdir=tmp_path / "a")
    b = collector_process(
        config(nats_server, nats_names),
        env={"COLLECTOR__DATABASE__URL": database_url},
        workdir=tmp_path / "b",
    )
    a.start()
    b.start()
    wait_for(started(b), timeout=60)

    expected: set[tuple[str, str, str]] = set()
    for path in sorted((SPEC / "v0.5.1" / "conformance").glob("*.json")):
        doc = json.loads(path.read_text())
        expected.add((doc["context"]["source"], doc["context"]["type"], doc["context"]["id"]))
        (inbox / path.name).write_bytes(path.read_bytes())
    lines = cdevent_payloads(300, seed=61)
    (inbox / "bulk.jsonl.tmp").write_bytes(b"\n".join(lines))
    (inbox / "bulk.jsonl.tmp").rename(inbox / "bulk.jsonl")
    for line in lines:
        ctx = orjson.loads(line)["context"]
        expected.add((ctx["source"], ctx["type"], ctx["id"]))
    (inbox / "plain.json").write_text('{"hello": "world"}')

    wait_for(lambda: count(db) == len(expected) + 1, timeout=60)
    stored = set(db.execute("select source, type, id from api.events where family = 'cdevents'"))
    assert stored == expected
    plain = db.execute(
        "select type, family, metadata->>'subject' from api.events where family <> 'cdevents'"
    ).fetchall()
    assert plain == [
        ("com.example.plain", "cloudevents", f"{nats_names.prefix}.raw.com.example.plain")
    ]
    wait_for(lambda: len(list((inbox / "done").iterdir())) == 47, timeout=30)
    assert not list((inbox / "failed").iterdir())
    assert a.stop() == 0
    assert b.stop() == 0
    assert not log_events(a, "database")  # the bridge started no database


def delete(server: NatsServer, names: NatsNames, what: str) -> None:
    """Delete the stream, or only the durable consumer, as an operator might."""

    async def work(client: Client) -> None:
        js = client.jetstream()
        if what == "stream":
            await js.delete_stream(names.stream)
        else:
            await js.delete_consumer(names.stream, names.durable)

    server.run(work)


def test_a_deleted_consumer_or_stream_is_created_again(
    nats_server: NatsServer,
    nats_names: NatsNames,  # first: the collector ends before the stream is deleted
    collector_process: MakeCollector,
    database_url: str,
    db: psycopg.Connection[Any],
) -> None:
    collector = collector_process(
        config(nats_server, nats_names), env={"COLLECTOR__DATABASE__URL": database_url}
    ).start()
    wait_for(started(collector), timeout=60)
    stored = 0
    for seed, (what, created) in enumerate(
        [("consumer", "nats_consumer_recreated"), ("stream", "nats_stream_recreated")]
    ):
        delete(nats_server, nats_names, what)
        wait_for(lambda: created in collector.logs(), timeout=30)  # noqa: B023
        stored += nats_server.publish(cdevent_messages(nats_names, 20, seed=90 + seed))
        wait_for(lambda: count(db) == stored, timeout=60)  # noqa: B023
    assert collector.stop() == 0
    assert [e["level"] for e in log_events(collector, "nats_stream_recreated")] == ["warning"]
    assert "Traceback" not in collector.logs()


def test_without_create_a_deleted_stream_is_reported_not_ready_until_it_is_back(
    nats_server: NatsServer,
    nats_names: NatsNames,  # first: the collector ends before the stream is deleted
    collector_process: MakeCollector,
    database_url: str,
    db: psycopg.Connection[Any],
) -> None:
    nats_server.create_stream(nats_names)
    port = free_port()
    collector = collector_process(
        config(nats_server, nats_names, source={"create": False}, http_port=port),
        env={"COLLECTOR__DATABASE__URL": database_url},
    ).start()
    wait_for(started(collector), timeout=60)
    readyz = f"http://127.0.0.1:{port}/readyz"
    assert httpx.get(readyz, timeout=10).status_code == 200

    delete(nats_server, nats_names, "stream")
    wait_for(lambda: "nats_source_stalled" in collector.logs(), timeout=30)
    (stalled,) = log_events(collector, "nats_source_stalled")  # once, not once per pull
    assert stalled["level"] == "error"
    answer = httpx.get(readyz, timeout=10)
    assert answer.status_code == 503
    (problem,) = answer.json()["problems"]
    assert problem == (
        f"source bus: config: sources.bus.stream: stream {nats_names.stream!r} does not exist "
        "and sources.bus.create is false"
    )

    nats_server.create_stream(nats_names)  # the producer creates its stream again
    wait_for(lambda: "nats_source_resumed" in collector.logs(), timeout=30)
    assert httpx.get(readyz, timeout=10).status_code == 200
    sent = nats_server.publish(cdevent_messages(nats_names, 20, seed=95))
    wait_for(lambda: count(db) == sent, timeout=60)
    assert collector.stop() == 0


def refused(proc: CollectorProcess) -> str:
    """Why collector refused to go on (exit status 1, no traceback)."""
    assert proc.proc is not None
    assert proc.proc.wait(60) == 1, proc.logs()
    assert "Traceback" not in proc.logs()
    (said,) = [line for line in proc.logs().splitlines() if line.startswith("collector: ")]
    return said


def test_a_push_consumer_is_refused_at_start_naming_it(
    nats_server: NatsServer,
    nats_names: NatsNames,
    collector_process: MakeCollector,
    database_url: str,
) -> None:
    nats_server.create_stream(nats_names)

    async def push_consumer(client: Client) -> None:
        config = js_api.ConsumerConfig(
            durable_name=nats_names.durable, deliver_subject=f"{nats_names.prefix}-deliver"
        )
        await client.jetstream().add_consumer(nats_names.stream, config=config)

    nats_server.run(push_consumer)
    collector = collector_process(
        config(nats_server, nats_names), env={"COLLECTOR__DATABASE__URL": database_url}
    ).start()
    assert refused(collector) == (
        f"collector: config: sources.bus.durable: consumer {nats_names.durable!r} of stream "
        f"{nats_names.stream!r} is a push consumer (it delivers to "
        f"'{nats_names.prefix}-deliver'); collector pulls: name another durable, or delete "
        "this consumer"
    )


def test_subjects_outside_an_existing_stream_are_refused_at_start_naming_both(
    nats_server: NatsServer,
    nats_names: NatsNames,
    collector_process: MakeCollector,
    database_url: str,
) -> None:
    nats_server.create_stream(nats_names)  # subjects: <prefix>.>
    elsewhere = f"x{nats_names.prefix}.>"
    collector = collector_process(
        config(nats_server, nats_names, source={"subjects": [elsewhere]}),
        env={"COLLECTOR__DATABASE__URL": database_url},
    ).start()
    assert refused(collector) == (
        f"collector: config: sources.bus.subjects: [{elsewhere!r}] is not within the subjects "
        f"of stream {nats_names.stream!r}: [{nats_names.wildcard!r}]"
    )


def test_wrong_credentials_stop_collector_with_a_clear_error(
    collector_process: MakeCollector, database_url: str, nats_names: NatsNames, tmp_path: Path
) -> None:
    (tmp_path / "nats").mkdir()
    broker = PrivateNats(tmp_path / "nats", None, "--auth", "s3cret").start()
    try:
        collector = collector_process(
            config(NatsServer(broker.url), nats_names, source={"token": "wrong"}),
            env={"COLLECTOR__DATABASE__URL": database_url},
        ).start()
        said = refused(collector)
    finally:
        broker.stop()
    assert said == f"collector: nats (bus): {broker.url}: nats: 'Authorization Violation'"
    assert "nats_unavailable" not in collector.logs()  # not retried: retrying cannot help
    assert "wrong" not in collector.logs()


def test_a_signal_while_a_nats_sink_waits_for_its_server_stops_collector_cleanly(
    collector_process: MakeCollector, tmp_path: Path
) -> None:
    (tmp_path / "inbox").mkdir()
    bridge = to_toml(
        {
            "sources": {"inbox": {"type": "folder", "path": str(tmp_path / "inbox")}},
            "sinks": {
                "bus": {
                    "type": "nats",
                    "servers": [f"nats://127.0.0.1:{free_port()}"],  # nobody listens
                    "subject": "events",
                    "required": True,
                }
            },
        }
    )
    collector = collector_process(bridge, env={"COLLECTOR__DATABASE__URL": ""}).start()
    wait_for(lambda: "nats_unavailable" in collector.logs(), timeout=60)
    assert collector.stop() == 0
    assert [e["signal"] for e in log_events(collector, "shutdown_requested")] == ["SIGTERM"]
    assert log_events(collector, "collector_stopped")

"""Decoding NATS messages as they come off a real JetStream consumer.

Each test publishes messages (with headers) to its own stream, fetches them through a durable
pull consumer as the nats source does, and checks what `NatsSource.decode` makes of them:
every payload format, the transport metadata, and ClusterCockpit messages as the
ClusterCockpit documentation shows them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from collector.settings import NatsSourceSettings
from collector.sources.nats import Decoded, NatsSource
from tests.conftest import SPEC
from tests.nats_fixtures import CLUSTERCOCKPIT, Message, NatsNames, NatsServer, ocis_event

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def source(server: NatsServer, names: NatsNames, **settings: Any) -> NatsSource:
    config = NatsSourceSettings(
        type="nats",
        servers=[server.url],
        subjects=[names.wildcard],
        stream=names.stream,
        durable=names.durable,
        **settings,
    )
    return NatsSource("bus", config)


def decode_via_nats(
    server: NatsServer, names: NatsNames, messages: list[Message], **settings: Any
) -> tuple[NatsSource, list[Decoded]]:
    """Publish, fetch them back from a durable pull consumer, decode each in order."""
    nats_source = source(server, names, **settings)
    server.create_stream(names)
    server.publish(messages)

    async def fetch(client: Client) -> list[Decoded]:
        subscription = await client.jetstream().pull_subscribe(
            names.wildcard, durable=names.durable, stream=names.stream
        )
        fetched: list[Msg] = []
        while len(fetched) < len(messages):
            fetched.extend(await subscription.fetch(len(messages) - len(fetched), timeout=5))
        for message in fetched:
            await message.ack()
        return [nats_source.decode(m, NOW) for m in fetched]

    return nats_source, server.run(fetch)


def one(decoded: list[Decoded]) -> Decoded:
    assert len(decoded) == 1
    return decoded[0]


def test_structured_cloudevent_keeps_subject_sequence_delivery_count_and_chosen_headers(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    event = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/shop",
        "type": "com.example.order.placed",
        "subject": "order-7",
        "time": "2025-05-31T10:00:00Z",
        "data": {"total": 12.5},
    }
    subject = f"{nats_names.prefix}.orders"
    headers = {"X-Trace": "abc", "X-Secret": "not kept", "content-type": "application/json"}
    _, decoded = decode_via_nats(
        nats_server,
        nats_names,
        [(subject, orjson.dumps(event), headers)],
        headers=["x-trace", "Content-Type"],
    )
    result = one(decoded)
    assert not result.rejected
    (stored,) = result.events
    assert (stored.id, stored.source, stored.type, stored.subject, stored.family) == (
        "ce-1",
        "/shop",
        "com.example.order.placed",
        "order-7",
        "cloudevents",
    )
    assert stored.time == datetime(2025, 5, 31, 10, tzinfo=UTC)
    assert orjson.loads(stored.payload) == event
    assert stored.metadata == {
        "subject": subject,
        "stream_sequence": 1,
        "delivered": 1,
        "headers": {"x-trace": "abc", "Content-Type": "application/json"},
    }


def test_binary_cloudevent_from_ce_headers_with_json_text_and_cdevent_data(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    cdevent = json.loads((SPEC / "v0.5.1" / "conformance" / "build_started.json").read_text())
    subject = f"{nats_names.prefix}.binary"

    def ce(event_id: str, event_type: str, **more: str) -> dict[str, str]:
        return {
            "ce-specversion": "1.0",
            "ce-id": event_id,
            "ce-source": "/ci",
            "ce-type": event_type,
            **more,
        }

    messages: list[Message] = [
        (
            subject,
            b'{"branch": "main"}',
            {
                **ce("b-1", "com.example.push", **{"ce-subject": "repo-1"}),
                "content-type": "application/json",
            },
        ),
        (subject, b"plain words", {**ce("b-2", "com.example.note"), "content-type": "text/plain"}),
        (subject, orjson.dumps(cdevent), ce("b-3", cdevent["context"]["type"])),
        (
            subject,
            b"{broken",
            {**ce("b-4", "com.example.push"), "content-type": "application/json"},
        ),
    ]
    _, decoded = decode_via_nats(nats_server, nats_names, messages)

    push, note, carried, broken = decoded
    assert push.events[0].family == "cloudevents"
    assert push.events[0].subject == "repo-1"
    assert orjson.loads(push.events[0].payload) == {
        "specversion": "1.0",
        "id": "b-1",
        "source": "/ci",
        "type": "com.example.push",
        "subject": "repo-1",
        "datacontenttype": "application/json",
        "data": {"branch": "main"},
    }
    assert orjson.loads(note.events[0].payload)["data"] == "plain words"
    # A CDEvent in binary mode is stored as the CDEvent, the CloudEvent attributes as metadata.
    (cd,) = carried.events
    assert (cd.family, cd.id, cd.type) == (
        "cdevents",
        cdevent["context"]["id"],
        cdevent["context"]["type"],
    )
    assert cd.metadata["cloudevent"]["id"] == "b-3"
    assert cd.metadata["stream_sequence"] == 3
    assert broken.invalid
    assert broken.rejected[0].reason.startswith("data: not valid JSON")
    assert broken.rejected[0].raw == b"{broken"


def test_cdevents_conformance_examples(nats_server: NatsServer, nats_names: NatsNames) -> None:
    paths = sorted((SPEC / "v0.5.1" / "conformance").glob("*.json"))
    messages: list[Message] = [
        (f"{nats_names.prefix}.cd.{p.stem}", p.read_bytes(), None) for p in paths
    ]
    _, decoded = decode_via_nats(nats_server, nats_names, messages)
    for path, result in zip(paths, decoded, strict=True):
        doc = json.loads(path.read_text())
        assert not result.rejected, (path.name, result.rejected)
        (stored,) = result.events
        assert stored.family == "cdevents"
        assert (stored.source, stored.type, stored.id) == (
            doc["context"]["source"],
            doc["context"]["type"],
            doc["context"]["id"],
        )
        assert stored.subject == doc["subject"]["id"]
        subject_type, predicate = path.stem.split("_")
        assert (stored.subject_type, stored.predicate) == (subject_type, predicate)
        assert orjson.loads(stored.payload) == doc
        assert stored.metadata["subject"] == f"{nats_names.prefix}.cd.{path.stem}"


def test_raw_json_takes_type_and_id_from_ocis_headers_or_the_subject_mapping(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    p = nats_names.prefix
    messages: list[Message] = [
        (
            f"{p}.main-queue",
            b'{"Executant": {"opaque_id": "u1"}, "SpaceID": "s1"}',
            {"eventtype": "events.SpaceCreated", "eventid": "ocis-1"},
        ),
        (f"{p}.builds.eu", b'{"build": 1}', None),
        (f"{p}.other", b'{"build": 2}', None),
        (f"{p}.builds.eu", b'[{"build": 3}, 7, {"build": 4}]', None),
        (f"{p}.builds.eu", b'[{"build": 5}, {"build": 6}]', {"eventid": "one-for-two"}),
    ]
    _, decoded = decode_via_nats(
        nats_server,
        nats_names,
        messages,
        type_header="eventtype",
        id_header="eventid",
        subject_types={f"{p}.builds.*": "com.example.build"},
        event_source="ocis",
        headers=["eventtype", "eventid"],
    )
    ocis, mapped, unmapped, array, shared = decoded
    (space,) = ocis.events
    assert (space.family, space.type, space.id, space.source) == (
        "raw",
        "events.SpaceCreated",
        "ocis-1",
        "ocis",
    )
    assert space.metadata["headers"] == {"eventtype": "events.SpaceCreated", "eventid": "ocis-1"}
    assert space.time == NOW
    (build,) = mapped.events
    assert build.type == "com.example.build"
    assert len(build.id) == 64  # no id header: a content hash
    assert unmapped.invalid
    assert unmapped.rejected[0].reason == (
        f"type: the eventtype header is missing, and no subject_types pattern matches '{p}.other'"
    )
    # An array: each element is an event; a bad element is rejected alone, by index.
    assert [orjson.loads(e.payload) for e in array.events] == [{"build": 3}, {"build": 4}]
    assert [e.metadata["index"] for e in array.events] == [0, 2]
    assert [(r.location, r.reason) for r in array.rejected] == [
        ("index 1", "an event must be a JSON object, not a number")
    ]
    assert not array.invalid
    # A header's id names one event: the events of an array get their content hash instead
    # (with one id, the second would count as a replay of the first, and be lost).
    assert [len(e.id) for e in shared.events] == [64, 64]
    assert shared.events[0].id != shared.events[1].id


def test_ocis_events_are_read_as_ocis_publishes_them(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    # oCIS sends no NATS headers: type and id travel in the go-micro event's Metadata.
    subject = f"{nats_names.prefix}.main-queue"
    inner = b'{"Executant": {"opaque_id": "einstein"}, "SpaceID": "s1"}'
    messages: list[Message] = [
        (subject, ocis_event(inner, event_type="events.SpaceCreated"), None),
        (subject, ocis_event(b"no json", event_id="bad-1"), None),
    ]
    _, (created, bad) = decode_via_nats(
        nats_server, nats_names, messages, format="json", event_source="ocis"
    )
    (space,) = created.events
    assert (space.family, space.type, space.id, space.source) == (
        "raw",
        "events.SpaceCreated",
        "5b0f7e1c-1d2e-4f3a-9b8c-7d6e5f4a3b2c",
        "ocis",
    )
    assert space.payload == inner
    assert space.time == datetime(2025, 6, 10, 10, 34, 56, 123456, tzinfo=UTC)
    assert space.metadata["subject"] == subject
    assert space.metadata["gomicro"]["Metadata"]["eventtype"] == "events.SpaceCreated"
    assert bad.invalid
    assert bad.rejected[0].reason.startswith("Payload: not JSON")


def test_invalid_payloads_are_rejected_with_their_bytes(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    subject = f"{nats_names.prefix}.bad"
    messages: list[Message] = [
        (subject, b'{"specversion": "1.0", "id": ', None),
        (subject, b'{"specversion": "2.0", "id": "x", "source": "s", "type": "t"}', None),
        (subject, b"\xff\xfe not text", None),
    ]
    _, decoded = decode_via_nats(nats_server, nats_names, messages)
    assert all(d.invalid for d in decoded)
    reasons = [d.rejected[0].reason for d in decoded]
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1] == "specversion: '2.0' is not supported (use '1.0')"
    assert reasons[2].startswith("not UTF-8 text")
    assert [d.rejected[0].raw for d in decoded] == [m[1] for m in messages]
    assert decoded[2].rejected[0].metadata["subject"] == subject


def test_clustercockpit_examples_parse_as_the_specification_says(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    subject = f"{nats_names.prefix}.fritz.events"
    nats_source, decoded = decode_via_nats(
        nats_server,
        nats_names,
        [(subject, CLUSTERCOCKPIT.encode(), None)],
        format="lineprotocol",
        cluster="default-cluster",
    )
    result = one(decoded)
    events = {(e.type, e.metadata["line"]): e for e in result.events}
    assert sorted(events) == [
        ("org.clustercockpit.event.node_down", 5),
        ("org.clustercockpit.event.socket_hot", 13),
        ("org.clustercockpit.event.start_job", 1),
        ("org.clustercockpit.event.start_job", 3),
        ("org.clustercockpit.event.stop_job", 2),
        ("org.clustercockpit.event.stop_job", 4),
        ("org.clustercockpit.log.application_log", 6),
    ]
    # Job events in both spellings get one shape: the type of the function, the job as data.
    job_start = events[("org.clustercockpit.event.start_job", 1)]
    measured_start = events[("org.clustercockpit.event.start_job", 3)]
    for started in (job_start, measured_start):
        payload = orjson.loads(started.payload)
        assert payload["name"] == "start_job"
        assert payload["kind"] == "event"
        assert payload["data"]["jobId"] == 1001
        assert started.family == "ccmessage"
    # cluster: the tag when there is one, else the configured default.
    assert orjson.loads(job_start.payload)["tags"] == {
        "function": "start_job",
        "cluster": "default-cluster",
    }
    assert job_start.source == "/clusters/default-cluster"
    assert job_start.time == datetime(2009, 2, 13, 23, 31, 30, tzinfo=UTC)
    job_stop = events[("org.clustercockpit.event.stop_job", 2)]
    assert job_stop.time == datetime.fromtimestamp(1234567990, tz=UTC)  # µs, by its size
    assert orjson.loads(job_stop.payload)["data"]["jobState"] == "completed"
    assert measured_start.source == "/clusters/fritz/hosts/f0101"
    assert measured_start.subject == "f0101"
    assert measured_start.time == datetime.fromtimestamp(1700000000, tz=UTC)
    down = events[("org.clustercockpit.event.node_down", 5)]
    assert orjson.loads(down.payload)["fields"] == {"event": "Node node001 is unreachable"}
    assert down.time != NOW  # no timestamp: when the stream stored it, not the receive time
    log = events[("org.clustercockpit.log.application_log", 6)]
    assert orjson.loads(log.payload)["tags"]["level"] == "error"
    assert log.time == datetime.fromtimestamp(1700000200, tz=UTC)
    assert all(e.metadata["subject"] == subject for e in result.events)

    # Metric lines are counted and skipped; control messages are skipped; bad lines are
    # rejected alone, by line number, with the reason.
    assert nats_source.metrics_skipped == 2
    assert [(r.location, r.reason) for r in result.rejected] == [
        (
            "line 10",
            "not line protocol: expected 'measurement[,tag=value…] field=value[,…] [timestamp]'",
        ),
        (
            "line 11",
            "tag type: 'gpu' is not one of node, socket, die, memoryDomain, llc, core, "
            "hwthread, accelerator",
        ),
        ("line 12", "tag type-id: missing (type=socket needs the socket's id)"),
    ]
    assert result.rejected[0].raw == b"invalid line protocol format"
    assert not result.invalid


def test_clustercockpit_cluster_is_required_when_no_tag_no_default_and_no_json(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    # The last line as cc-backend's NATS API documents a stop: no tags, the cluster in the JSON.
    lines = (
        'node_down,hostname=n1 event="x"\nnode_up,cluster=alex,hostname=n1 event="y"\n'
        'job,function=stop_job event="{\\"jobId\\":1001,\\"cluster\\":\\"fritz\\",'
        '\\"stopTime\\":1234569000,\\"jobState\\":\\"completed\\"}" 1234569000000000000'
    )
    _, decoded = decode_via_nats(
        nats_server, nats_names, [(f"{nats_names.prefix}.cc", lines.encode(), None)]
    )  # format auto: not JSON, so line protocol
    result = one(decoded)
    assert [e.source for e in result.events] == ["/clusters/alex/hosts/n1", "/clusters/fritz"]
    assert [(r.location, r.reason) for r in result.rejected] == [
        (
            "line 1",
            "tag cluster: missing (add the tag, ?cluster=<name>, or configure cluster)",
        )
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('e,hostname=n1,type=Node,type-id=0 event="x"', "tag type: 'Node' is not one of"),
        ('e,hostname=a/b event="x"', "tag hostname: 'a/b' is not a hostname"),
        ('e,cluster=\\ ,hostname=n1 event="x"', "tag cluster: ' ' is not a cluster"),
        ('e,hostname=n1 event="x" 99999999999999999999999', "timestamp"),
        ("e,hostname=n1 count=3i", "no ClusterCockpit field"),
    ],
)
def test_clustercockpit_tag_and_line_checks(
    nats_server: NatsServer, nats_names: NatsNames, line: str, reason: str
) -> None:
    _, decoded = decode_via_nats(
        nats_server,
        nats_names,
        [(f"{nats_names.prefix}.cc", line.encode(), None)],
        format="lineprotocol",
        cluster="c1",
    )
    result = one(decoded)
    assert result.invalid
    assert result.rejected[0].reason.startswith(reason), result.rejected[0].reason

"""NatsSource.decode_all without a server: the CDEvents fast path decides as normalise does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from nats.aio.msg import Msg

from collector import demo_events
from collector import events as events_module
from collector.events import Origin, cdevent_from_json
from collector.settings import NatsSourceSettings
from collector.sources import nats as nats_source
from collector.sources.nats import NatsSource
from tests.conftest import SPEC

RECEIVED = datetime(2025, 1, 2, tzinfo=UTC)
CONFORMANCE = sorted((SPEC / "v0.5.1" / "conformance").glob("*.json"))
REPLY = "$JS.ACK.EVENTS.collector.1.{seq}.{seq}.1748779200000000000.0"


def source(**settings: Any) -> NatsSource:
    return NatsSource("bus", NatsSourceSettings(type="nats", **settings))


def message(data: bytes, seq: int, headers: dict[str, str] | None = None) -> Msg:
    return Msg(
        _client=None,  # type: ignore[arg-type]
        subject=f"events.cd.{seq % 3}",
        reply=REPLY.format(seq=seq),
        data=data,
        headers=headers,
    )


def cdevent(number: int) -> dict[str, Any]:
    return {
        "context": {
            "id": f"e{number}",
            "source": "/ci",
            "type": "dev.cdevents.build.started.0.2.0",
            "timestamp": "2024-05-06T07:08:09Z",
        },
        "subject": {"id": "build/1"},
    }


def edited(number: int, edit: str) -> bytes:
    doc = cdevent(number)
    if edit == "no id":
        del doc["context"]["id"]
    elif edit == "unknown type":
        doc["context"]["type"] = "dev.cdevents.nothing.happened.0.1.0"
    elif edit == "no offset":
        doc["context"]["timestamp"] = "2024-05-06T07:08:09"
    elif edit == "lower-case t":
        doc["context"]["timestamp"] = "2024-05-06t07:08:09z"
    elif edit == "escaped NUL":
        doc["customData"] = {"text": "a\u0000b"}
    elif edit == "no subject":
        del doc["subject"]
    return orjson.dumps(doc)


def payloads() -> list[bytes]:
    demo = [orjson.dumps(e) for e in demo_events.generate(100, seed=5, now=RECEIVED)]
    edits = ["no id", "unknown type", "no offset", "lower-case t", "escaped NUL", "no subject"]
    return [
        *demo,
        *(path.read_bytes() for path in CONFORMANCE),  # some are CloudEvents-bound
        *(edited(n, edit) for n, edit in enumerate(edits)),
        b'{"context": {"id": ',  # invalid JSON
        orjson.dumps([cdevent(1), cdevent(2)]),  # an array of CDEvents
        b'{"specversion": "1.0", "id": "c1", "source": "/s", "type": "t", "data": {"a": 1}}',
        b'{"reading": 3}',  # plain JSON
        b"\xef\xbb\xbf" + orjson.dumps(cdevent(3)),  # a byte-order mark
    ]


@pytest.mark.parametrize("settings", [{}, {"event_type": "com.example.reading"}])
def test_the_cdevents_fast_path_makes_what_normalise_makes(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any]
) -> None:
    messages = [message(data, seq) for seq, data in enumerate(payloads(), start=1)]
    messages.append(message(orjson.dumps(cdevent(9)), 999, {"X-Trace": "t1"}))
    nats = source(headers=["X-Trace"], **settings)

    origin = Origin("bus", RECEIVED)
    assert sum(cdevent_from_json(m.data, origin, {}) is not None for m in messages) > 100

    fast, fast_invalid = nats.decode_all(messages, RECEIVED)
    monkeypatch.setattr(events_module, "cdevent_from_json", lambda *args: None)
    slow, slow_invalid = nats.decode_all(messages, RECEIVED)

    assert fast.events == slow.events
    assert fast.rejected == slow.rejected
    assert fast_invalid == slow_invalid
    assert len(fast.events) > 100
    assert len(fast.rejected) >= 6
    assert fast.events[0].metadata == {
        "subject": "events.cd.1",
        "stream_sequence": 1,
        "delivered": 1,
    }
    assert fast.events[-1].metadata["headers"] == {"X-Trace": "t1"}


LINE = b'node_down,cluster=fritz,hostname=n1 event="unreachable"'


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.EVENTS.collector.{delivered}.7.7.1748779200000000000.0",
        "$JS.ACK.hub.ACCOUNTHASH.EVENTS.collector.{delivered}.7.7.1748779200000000000.0.r4nd",
    ],
)
def test_a_line_without_timestamp_has_its_stream_time_on_every_delivery(reply: str) -> None:
    nats = source()
    deliveries = [
        Msg(_client=None, subject="cc", reply=reply.format(delivered=n), data=LINE)  # type: ignore[arg-type]
        for n in (1, 2)
    ]
    first, again = (nats.decode(m, RECEIVED).events for m in deliveries)
    assert [(e.id, e.time) for e in first] == [(e.id, e.time) for e in again]
    assert first[0].time == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)  # the reply's stream time
    assert (first[0].metadata["delivered"], again[0].metadata["delivered"]) == (1, 2)


def test_identical_core_messages_in_one_batch_are_two_events() -> None:
    # Core NATS has no stream time and no redelivery: each message is an event of its own.
    core = [Msg(_client=None, subject="cc", data=LINE) for _ in range(2)]  # type: ignore[arg-type]
    delivery, _ = source().decode_all(core, RECEIVED)
    assert len({e.id for e in delivery.events}) == 2


def test_plain_json_without_the_type_header_is_rejected_naming_the_header() -> None:
    ocis = source(type_header="eventtype", id_header="eventid")
    plain = b'{"SpaceID": "space-1"}'
    cloudevent = b'{"specversion": "1.0", "id": "c1", "source": "/s", "type": "t"}'
    missing, typed, structured = (
        ocis.decode(message(data, 1, headers), RECEIVED)
        for data, headers in [
            (plain, None),
            (plain, {"eventtype": "events.SpaceCreated"}),
            (cloudevent, None),  # carries its own type: the header is not needed
        ]
    )
    assert [r.reason for r in missing.rejected] == ["type: the eventtype header is missing"]
    assert [e.type for e in typed.events] == ["events.SpaceCreated"]
    assert [e.type for e in structured.events] == ["t"]


@pytest.mark.parametrize(
    ("subjects", "wider", "within"),
    [
        ("a.b", "a.b", True),
        ("a.b", "a.*", True),
        ("a.*", "a.*", True),
        ("a.b.c", "a.>", True),
        ("a.>", "a.>", True),
        ("a.*.c", "a.>", True),
        ("a", "a.>", False),
        ("a.>", "a.*", False),
        ("a.*", "a.b", False),
        ("xa.>", "a.>", False),
        ("a.b", "a.b.c", False),
        (">", "a.>", False),
        ("a.b.c", ">", True),
    ],
)
def test_subjects_within_a_stream(subjects: str, wider: str, within: bool) -> None:
    assert nats_source._within(subjects, wider) is within

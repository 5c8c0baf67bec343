"""normalise(): CDEvents, CloudEvents, plain JSON become Events; a rejection names its field."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector import cdevents, demo_events
from collector.events import (
    MAX_KEY_BYTES,
    Event,
    Invalid,
    Origin,
    RejectedEvent,
    binary_cdevent,
    binary_cloudevent,
    cdevent_from_json,
    events_from_json,
    events_from_lines,
    normalise,
)
from tests.conftest import SPEC
from tests.nats_fixtures import ocis_event

RECEIVED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ORIGIN = Origin(received_via="inbox", received_at=RECEIVED)
PLAIN = Origin(received_via="inbox", received_at=RECEIVED, default_type="com.example.reading.v1")

CONFORMANCE = sorted(
    path
    for version in ("v0.4.1", "v0.5.1")
    for path in (SPEC / version / "conformance").glob("*.json")
)


def cdevent() -> dict[str, Any]:
    return {
        "context": {
            "specversion": "0.4.1",
            "id": "run-1",
            "source": "/ci/jenkins",
            "type": "dev.cdevents.pipelinerun.started.0.2.0",
            "timestamp": "2024-05-06T07:08:09.123456Z",
        },
        "subject": {"id": "pipeline/42", "content": {"pipelineName": "build"}},
    }


def cloudevent(**attributes: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/shop/orders",
        "type": "com.example.order.created",
        **attributes,
    }


def rejection(doc: Any, origin: Origin = ORIGIN, raw: bytes | None = None) -> str:
    with pytest.raises(Invalid) as caught:
        normalise(doc, raw, origin, {})
    return str(caught.value)


# -- CDEvents ---------------------------------------------------------------------------------


def test_the_conformance_examples_are_there() -> None:
    versions = {path.parent.parent.name for path in CONFORMANCE}
    assert versions == {"v0.4.1", "v0.5.1"}
    assert len(CONFORMANCE) >= 80


@pytest.mark.parametrize(
    "path", CONFORMANCE, ids=[f"{p.parent.parent.name}/{p.stem}" for p in CONFORMANCE]
)
def test_conformance_example_normalises(path: Path) -> None:
    raw = path.read_bytes()
    doc = orjson.loads(raw)
    context = doc["context"]
    # What the file name and the document say, worked out without the code under test.
    subject_type, predicate = path.stem.split("_")
    version = context["type"].split(".", 4)[4]
    when = datetime.strptime(context["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z")

    event = normalise(doc, raw, ORIGIN, {"file": path.name})

    assert event.id == context["id"]
    assert event.source == context["source"]
    assert event.type == context["type"]
    assert event.time == when
    assert event.time.utcoffset() == timedelta(0)
    assert event.subject == doc["subject"]["id"]
    assert (event.subject_type, event.predicate, event.type_version) == (
        subject_type,
        predicate,
        version,
    )
    assert event.family == "cdevents"
    assert event.payload == raw
    assert (event.received_at, event.received_via) == (RECEIVED, "inbox")
    assert event.metadata == {"file": path.name}


def test_cdevent_without_raw_bytes_stores_the_document_as_json() -> None:
    doc = cdevent()

    event = normalise(doc, None, ORIGIN, {})

    assert orjson.loads(event.payload) == doc


def test_cdevent_timestamp_keeps_its_offset() -> None:
    doc = cdevent()
    doc["context"]["timestamp"] = "2024-05-06T09:08:09+02:00"

    event = normalise(doc, None, ORIGIN, {})

    assert event.time == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert event.time.utcoffset() == timedelta(hours=2)


def test_custom_cdevent_type_is_accepted() -> None:
    doc = cdevent()
    doc["context"]["type"] = "dev.cdeventsx.acme-widget.polished.0.1.0-draft"

    event = normalise(doc, None, ORIGIN, {})

    assert (event.subject_type, event.predicate, event.type_version) == (
        "acme-widget",
        "polished",
        "0.1.0-draft",
    )


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = doc
        for key in parents:
            target = target[key]
        target[last] = value

    return mutate


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = doc
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


UNKNOWN = "is not a known CDEvents type"
MALFORMED = "is not a CDEvents type (expected dev.cdevents.<subject>.<predicate>.<version>)"
NUL_TEXT = "contains a NUL character, which PostgreSQL text cannot store"
NOT_RFC3339 = "is not an RFC 3339 timestamp (like 2024-05-01T12:00:00Z)"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_drop("context.id"), "context.id: missing"),
        (_set("context.id", None), "context.id: missing"),
        (_set("context.id", ""), "context.id: must be a non-empty string"),
        (_set("context.id", 42), "context.id: must be a non-empty string"),
        (_set("context.id", ["a"]), "context.id: must be a non-empty string"),
        (_drop("context.source"), "context.source: missing"),
        (_set("context.source", ""), "context.source: must be a non-empty string"),
        (_drop("context.type"), "context.type: missing"),
        (
            _set("context.type", "dev.cdevents.spaceship.launched.0.1.0"),
            f"context.type 'dev.cdevents.spaceship.launched.0.1.0' {UNKNOWN}: "
            "no subject 'spaceship' with predicate 'launched' "
            "(custom events use dev.cdeventsx.<subject>.<predicate>.<version>)",
        ),
        (
            _set("context.type", "dev.cdevents.build.exploded.0.1.0"),
            f"context.type 'dev.cdevents.build.exploded.0.1.0' {UNKNOWN}: "
            "no subject 'build' with predicate 'exploded' "
            "(custom events use dev.cdeventsx.<subject>.<predicate>.<version>)",
        ),
        (_set("context.type", "build.started"), f"context.type 'build.started' {MALFORMED}"),
        (
            _set("context.type", "dev.cdevents.build.started"),
            f"context.type 'dev.cdevents.build.started' {MALFORMED}",
        ),
        (
            _set("context.type", "dev.cdevents.build.started.1"),
            f"context.type 'dev.cdevents.build.started.1' {MALFORMED}",
        ),
        (
            _set("context.type", "dev.cdevents.Build.started.0.1.0"),
            f"context.type 'dev.cdevents.Build.started.0.1.0' {MALFORMED}",
        ),
        (_drop("context.timestamp"), "context.timestamp: missing"),
        (
            _set("context.timestamp", "yesterday"),
            f"context.timestamp: 'yesterday' {NOT_RFC3339}",
        ),
        (
            _set("context.timestamp", "2024-13-01T00:00:00Z"),
            f"context.timestamp: '2024-13-01T00:00:00Z' {NOT_RFC3339}",
        ),
        (
            _set("context.timestamp", "2024-05-06T07:08:09"),
            "context.timestamp: '2024-05-06T07:08:09' has no UTC offset (add 'Z' or '+00:00')",
        ),
        (
            _set("context.timestamp", "20240506T070809Z"),
            f"context.timestamp: '20240506T070809Z' {NOT_RFC3339}",
        ),
        (
            _set("context.timestamp", "2024-05-06 07:08:09Z"),
            f"context.timestamp: '2024-05-06 07:08:09Z' {NOT_RFC3339}",
        ),
        (
            _set("context.timestamp", "2024-05-06T07:08Z"),
            f"context.timestamp: '2024-05-06T07:08Z' {NOT_RFC3339}",
        ),
        (
            _set("context.timestamp", "2024-W19-1T07:08:09Z"),
            f"context.timestamp: '2024-W19-1T07:08:09Z' {NOT_RFC3339}",
        ),
        (
            _set("context.timestamp", 1714979289),
            "context.timestamp: must be an RFC 3339 timestamp string",
        ),
        (_drop("subject"), "subject: missing or not an object"),
        (_set("subject", "pipeline/42"), "subject: missing or not an object"),
        (_drop("subject.id"), "subject.id: missing"),
        (_set("subject.id", 7), "subject.id: must be a non-empty string"),
        (_set("context.id", "run\x001"), f"context.id: {NUL_TEXT}"),
        (_set("context.source", "/ci\x00"), f"context.source: {NUL_TEXT}"),
        (_set("subject.id", "pipe\x00line"), f"subject.id: {NUL_TEXT}"),
        (
            _set("subject.content.log", "a\x00b"),
            "payload: contains \\u0000, which PostgreSQL jsonb cannot store",
        ),
        (
            _set("context.id", "x" * (MAX_KEY_BYTES + 1)),
            f"context.id: longer than {MAX_KEY_BYTES} bytes",
        ),
        (
            _set("context.source", "é" * (MAX_KEY_BYTES // 2 + 1)),
            f"context.source: longer than {MAX_KEY_BYTES} bytes",
        ),
        (
            _set("subject.id", "x" * (MAX_KEY_BYTES + 1)),
            f"subject.id: longer than {MAX_KEY_BYTES} bytes",
        ),
        (_set("context", "run-1"), "context: must be an object (a CDEvent's context)"),
    ],
)
def test_invalid_cdevent_is_rejected_naming_the_field(
    mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    doc = cdevent()
    mutate(doc)

    assert rejection(doc) == expected
    # The same verdict when the original bytes travel along.
    assert rejection(doc, raw=orjson.dumps(doc)) == expected


@pytest.mark.parametrize("value", ["x" * MAX_KEY_BYTES, "é" * (MAX_KEY_BYTES // 2)])
def test_ids_up_to_the_limit_are_accepted(value: str) -> None:
    assert len(value.encode()) == MAX_KEY_BYTES
    doc = cdevent()
    doc["context"]["id"] = value

    assert normalise(doc, None, ORIGIN, {}).id == value


def test_escaped_nul_in_raw_bytes_is_rejected() -> None:
    raw = orjson.dumps(cdevent())[:-1] + b',"note":"\\u0000"}'

    assert rejection(orjson.loads(raw), raw=raw) == (
        "payload: contains \\u0000, which PostgreSQL jsonb cannot store"
    )


@pytest.mark.parametrize(
    ("doc", "kind"),
    [
        ([cdevent()], "an array"),
        (42, "a number"),
        (4.2, "a number"),
        ("event", "a string"),
        (None, "null"),
        (True, "a boolean"),
    ],
)
def test_top_level_must_be_an_object(doc: Any, kind: str) -> None:
    assert rejection(doc) == f"an event must be a JSON object, not {kind}"


# -- CloudEvents ------------------------------------------------------------------------------


def test_structured_cloudevent_with_time_and_subject() -> None:
    doc = cloudevent(time="2024-05-06T07:08:09+02:00", subject="order/7", data={"total": 3})
    raw = orjson.dumps(doc)

    event = normalise(doc, raw, ORIGIN, {"line": 1})

    assert (event.id, event.source, event.type) == (
        "ce-1",
        "/shop/orders",
        "com.example.order.created",
    )
    assert event.time == datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    assert event.subject == "order/7"
    assert event.family == "cloudevents"
    assert (event.subject_type, event.predicate, event.type_version) == (None, None, None)
    assert event.payload == raw
    assert event.metadata == {"line": 1}


def test_cloudevent_without_time_or_subject_gets_the_receive_time() -> None:
    event = normalise(cloudevent(), None, ORIGIN, {})

    assert event.time == RECEIVED
    assert event.subject is None


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            cloudevent(specversion="0.3"),
            "specversion: '0.3' is not supported (use '1.0')",
        ),
        (cloudevent(specversion=1.0), "specversion: 1.0 is not supported (use '1.0')"),
        (cloudevent(specversion=None), "specversion: None is not supported (use '1.0')"),
        ({**cloudevent(), "id": None}, "id: missing"),
        (cloudevent(id=""), "id: must be a non-empty string"),
        (cloudevent(source=3), "source: must be a non-empty string"),
        ({k: v for k, v in cloudevent().items() if k != "type"}, "type: missing"),
        (cloudevent(subject=["a"]), "subject: must be a string"),
        (cloudevent(subject="order\x00"), f"subject: {NUL_TEXT}"),
        (cloudevent(id="ce\x00"), f"id: {NUL_TEXT}"),
        (cloudevent(time="noon"), f"time: 'noon' {NOT_RFC3339}"),
        (cloudevent(time="20240506T070809Z"), f"time: '20240506T070809Z' {NOT_RFC3339}"),
        (
            cloudevent(time="2024-05-06T07:08:09"),
            "time: '2024-05-06T07:08:09' has no UTC offset (add 'Z' or '+00:00')",
        ),
        (
            cloudevent(data={"note": "\x00"}),
            "payload: contains \\u0000, which PostgreSQL jsonb cannot store",
        ),
    ],
)
def test_invalid_cloudevent_is_rejected_naming_the_field(
    doc: dict[str, Any], expected: str
) -> None:
    assert rejection(doc) == expected


def test_cloudevent_wrapping_a_cdevent_becomes_the_cdevent() -> None:
    inner = cdevent()
    doc = cloudevent(
        id="envelope-9",
        source="/bridge",
        type="dev.cdevents.pipelinerun.started.0.2.0",
        time="2030-01-01T00:00:00Z",
        data=inner,
    )

    event = normalise(doc, orjson.dumps(doc), ORIGIN, {"file": "x.json"})

    assert event.family == "cdevents"
    assert (event.id, event.source, event.type) == (
        "run-1",
        "/ci/jenkins",
        "dev.cdevents.pipelinerun.started.0.2.0",
    )
    assert event.time == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert event.subject == "pipeline/42"
    assert (event.subject_type, event.predicate) == ("pipelinerun", "started")
    assert orjson.loads(event.payload) == inner
    assert event.metadata == {
        "file": "x.json",
        "cloudevent": {
            "specversion": "1.0",
            "id": "envelope-9",
            "source": "/bridge",
            "type": "dev.cdevents.pipelinerun.started.0.2.0",
            "time": "2030-01-01T00:00:00Z",
        },
    }


def test_cloudevent_wrapping_an_invalid_cdevent_names_the_cdevent_field() -> None:
    inner = cdevent()
    del inner["context"]["timestamp"]
    doc = cloudevent(type="dev.cdevents.pipelinerun.started.0.2.0", data=inner)

    assert rejection(doc) == "context.timestamp: missing"


def test_cloudevent_wrapping_a_context_that_is_no_object_is_rejected() -> None:
    doc = cloudevent(type="dev.cdevents.pipelinerun.started.0.2.0", data={"context": "run-1"})

    assert rejection(doc) == "data.context: must be an object (a CDEvent's context)"


def test_cloudevent_wrapping_a_cdevent_rejects_nul_in_its_attributes() -> None:
    doc = cloudevent(
        type="dev.cdevents.pipelinerun.started.0.2.0", traceparent="00\x00", data=cdevent()
    )

    assert rejection(doc) == "attributes: contain \\u0000, which PostgreSQL jsonb cannot store"


def test_cloudevent_of_a_cdevents_type_without_a_cdevent_stays_a_cloudevent() -> None:
    doc = cloudevent(type="dev.cdevents.pipelinerun.started.0.2.0", data={"run": 1})

    event = normalise(doc, None, ORIGIN, {})

    assert event.family == "cloudevents"
    assert event.id == "ce-1"
    assert event.subject_type is None


# -- plain JSON -------------------------------------------------------------------------------


def test_plain_json_needs_a_default_type() -> None:
    assert rejection({"temperature": 21}) == (
        "type: plain JSON carries no event type; set event_type on source 'inbox', "
        "or send a CloudEvent or CDEvent"
    )


def test_plain_json_becomes_a_raw_event() -> None:
    raw = b'{"temperature": 21, "room": "lab"}'

    event = normalise(orjson.loads(raw), raw, PLAIN, {"line": 3})

    assert event.family == "raw"
    assert event.type == "com.example.reading.v1"
    assert event.source == "collector/inbox"
    assert event.time == RECEIVED
    assert event.subject is None
    assert event.payload == raw
    assert event.metadata == {"line": 3}
    assert len(event.id) == 64
    assert int(event.id, 16) >= 0


def test_plain_json_uses_the_configured_source() -> None:
    origin = Origin("inbox", RECEIVED, default_type="t", default_source="/sensors")

    assert normalise({"a": 1}, None, origin, {}).source == "/sensors"


def test_plain_json_id_is_a_content_hash_independent_of_key_order() -> None:
    one = {"b": 1, "a": {"y": [1, 2], "x": "é"}}
    same = {"a": {"x": "é", "y": [1, 2]}, "b": 1}
    assert list(orjson.dumps(one)) != list(orjson.dumps(same))

    first = normalise(one, orjson.dumps(one), PLAIN, {})
    second = normalise(same, orjson.dumps(same), PLAIN, {})
    later = normalise(copy.deepcopy(one), None, Origin("other", RECEIVED, "t"), {"x": 1})

    assert first.id == second.id == later.id
    assert normalise({"b": 1, "a": {"y": [2, 1], "x": "é"}}, None, PLAIN, {}).id != first.id
    assert normalise({"b": 2, "a": {"y": [1, 2], "x": "é"}}, None, PLAIN, {}).id != first.id


def test_a_context_that_is_no_object_is_not_taken_for_plain_json() -> None:
    assert rejection({"context": None}, PLAIN) == (
        "context: must be an object (a CDEvent's context)"
    )


def test_an_id_header_names_one_event_not_each_of_several() -> None:
    origin = PLAIN._replace(default_id="delivery-1")
    (alone,), _ = events_from_json(b'[{"a": 1}]', origin, {})
    several, _ = events_from_json(b'[{"a": 1}, {"a": 2}]', origin, {})
    lines: list[Event] = []
    events_from_lines([b'{"a": 1}', b"", b'{"a": 2}'], 1, origin, {}, lines, [])
    line: list[Event] = []
    events_from_lines([b'{"a": 1}', b""], 1, origin, {}, line, [])

    assert alone.id == line[0].id == "delivery-1"
    # Each gets its content hash: one id for all would keep the first and count the rest
    # as its replays.
    assert [e.id for e in several] == [e.id for e in lines]
    assert len({e.id for e in several}) == 2
    assert all(len(e.id) == 64 for e in several)


# -- go-micro events (oCIS, reva) -------------------------------------------------------------


def test_a_go_micro_event_is_unwrapped_as_ocis_publishes_it() -> None:
    # What reva's events.Publish sends through go-micro's natsjs stream: the event's JSON
    # (Go field names) base64-encoded in Payload, its type and id in Metadata.
    inner = b'{"SpaceOwner":{"idp":"https://ocis","opaque_id":"einstein"},"Failed":false}'
    raw = ocis_event(inner)

    event = normalise(orjson.loads(raw), raw, ORIGIN, {"subject": "main-queue"})

    assert (event.family, event.id, event.type, event.source) == (
        "raw",
        "5b0f7e1c-1d2e-4f3a-9b8c-7d6e5f4a3b2c",
        "events.UploadReady",
        "collector/inbox",
    )
    assert event.time == datetime(2025, 6, 10, 10, 34, 56, 123456, tzinfo=UTC)
    assert event.payload == inner  # what eventhistory hands out: the event itself, as sent
    assert event.metadata == {
        "subject": "main-queue",
        "gomicro": {
            "ID": "9d2c7a0e-go-micro",
            "Topic": "main-queue",
            "Timestamp": "2025-06-10T12:34:56.123456789+02:00",
            "Metadata": {
                "eventtype": "events.UploadReady",
                "eventid": "5b0f7e1c-1d2e-4f3a-9b8c-7d6e5f4a3b2c",
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            },
        },
    }


def test_a_go_micro_event_without_eventid_or_eventtype_takes_its_id_and_the_default_type() -> None:
    raw = ocis_event(b'{"a": 1}', metadata={})

    event = normalise(orjson.loads(raw), raw, PLAIN, {})

    assert (event.id, event.type) == ("9d2c7a0e-go-micro", "com.example.reading.v1")
    assert rejection(orjson.loads(raw)) == (
        "Metadata.eventtype: missing: a go-micro event without one needs event_type on "
        "source 'inbox'"
    )


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ({"Payload": "not base64!"}, "Payload: not base64"),
        ({"Payload": base64.b64encode(b"not json").decode()}, "Payload: not JSON: "),
        ({"Payload": None}, "Payload: not base64"),
        ({"Metadata": {"eventtype": 7}}, "Metadata.eventtype: must be a non-empty string"),
        ({"Metadata": []}, "Metadata: must be an object"),
        ({"Timestamp": "yesterday"}, f"Timestamp: 'yesterday' {NOT_RFC3339}"),
        ({"Payload": base64.b64encode(b'{"a": "\\u0000"}').decode()}, "payload: contains"),
    ],
)
def test_an_invalid_go_micro_event_is_rejected_naming_the_field(
    edit: dict[str, Any], reason: str
) -> None:
    doc = {**orjson.loads(ocis_event(b"{}")), **edit}
    assert rejection(doc, PLAIN).startswith(reason)


def test_json_with_other_fields_than_a_go_micro_event_stays_plain_json() -> None:
    doc = {**orjson.loads(ocis_event(b"{}")), "extra": 1}
    assert normalise(doc, None, PLAIN, {}).payload == orjson.dumps(doc)


# -- the CDEvents vocabulary ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "parsed"),
    [
        ("dev.cdevents.service.deployed.0.3.0", ("service", "deployed", "0.3.0")),
        ("dev.cdevents.testcase.queued.0.1.0", ("testcase", "queued", "0.1.0")),
        ("dev.cdeventsx.acme.polished.1.0.0", ("acme", "polished", "1.0.0")),
        ("dev.cdeventsx.my-tool.run-done.0.1.0-rc.1", ("my-tool", "run-done", "0.1.0-rc.1")),
        ("dev.cdeventsx.build.exploded.0.1.0", ("build", "exploded", "0.1.0")),
    ],
)
def test_parse_type(event_type: str, parsed: tuple[str, str, str]) -> None:
    assert cdevents.parse_type(event_type) == parsed


@pytest.mark.parametrize(
    "event_type",
    [
        "dev.cdeventsx.Acme.polished.1.0.0",
        "dev.cdeventsx.acme.polished",
        "dev.cdeventsx.acme.polished.1.0",
        "dev.cdeventsy.acme.polished.1.0.0",
        "dev.cdeventsx.acme.polished.1.0.0 ",
        "dev.cdevents.build.started.0.1.0\n",
        "xdev.cdevents.build.started.0.1.0",
    ],
)
def test_parse_type_refuses_malformed_types(event_type: str) -> None:
    with pytest.raises(cdevents.UnknownType, match="is not a CDEvents type"):
        cdevents.parse_type(event_type)


def test_parse_type_refuses_an_unknown_standard_type() -> None:
    with pytest.raises(cdevents.UnknownType, match="no subject 'acme' with predicate 'polished'"):
        cdevents.parse_type("dev.cdevents.acme.polished.0.1.0")


# -- RejectedEvent ----------------------------------------------------------------------------


def test_rejected_event_text_is_bounded_and_storable() -> None:
    raw = b"\x00bad\xff" + b"x" * 70_000
    rejected = RejectedEvent("invalid JSON", raw, RECEIVED, "inbox", "line 2")

    assert rejected.raw_text.startswith("\\x00bad\\xff")
    assert "\x00" not in rejected.raw_text
    assert len(rejected.raw_text) < 64 * 1024 + 16
    assert rejected.message == "line 2: invalid JSON"
    assert RejectedEvent("r", b"", RECEIVED, "inbox").message == "r"


# -- the fast way for one JSON text (cdevent_from_json) -----------------------------------------


def slow_way(raw: bytes, origin: Origin = ORIGIN) -> Event | str:
    """What normalise makes of the text: the Event, or the reason it is refused."""
    try:
        return normalise(orjson.loads(raw), raw, origin, {"line": 1})
    except orjson.JSONDecodeError as exc:
        return f"invalid JSON: {exc}"
    except Invalid as exc:
        return str(exc)


def demo_lines(n: int) -> list[bytes]:
    return [orjson.dumps(e) for e in demo_events.generate(n, seed=3, now=RECEIVED)]


def test_the_fast_way_makes_the_event_normalise_makes() -> None:
    lines = [*demo_lines(200), *(path.read_bytes() for path in CONFORMANCE)]
    for raw in lines:
        raw = raw.strip()
        expected = slow_way(raw)
        if isinstance(expected, Event):  # a few conformance files are CloudEvents-bound
            assert cdevent_from_json(raw, ORIGIN, {"line": 1}) == expected


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["context"].pop("id"),
        lambda d: d["context"].update(id=7),
        lambda d: d["context"].update(id=""),
        lambda d: d["context"].update(id="x" * (MAX_KEY_BYTES + 1)),
        lambda d: d["context"].update(id="é" * (MAX_KEY_BYTES // 2)),  # 2 bytes each: fits
        lambda d: d["context"].update(source="a\x00b"),
        lambda d: d["context"].update(type="dev.cdevents.nothing.happened.0.1.0"),
        lambda d: d["context"].update(type="dev.cdeventsx.anything.happened.0.1.0"),
        lambda d: d["context"].update(timestamp="2024-05-06t07:08:09z"),
        lambda d: d["context"].update(timestamp="2024-05-06T07:08:09"),
        lambda d: d["context"].update(timestamp="yesterday"),
        lambda d: d["context"].update(timestamp=None),
        lambda d: d.update(context="not an object"),
        lambda d: d.update(subject=["a"]),
        lambda d: d.pop("subject"),
        lambda d: d["subject"].update(id=None),
        lambda d: d.update(specversion="1.0"),  # a context object makes it a CDEvent still
        lambda d: d.update(customData={"text": "a\u0000b"}),
        lambda d: d.update(customData={"text": "a\\u0000b"}),
        lambda d: d.update(customData={"deep": [[[[1.5e300, -0.0, None, True]]]]}),
    ],
)
def test_the_fast_way_agrees_with_normalise_or_leaves_it_the_decision(
    edit: Callable[[dict[str, Any]], Any],
) -> None:
    doc = cdevent()
    edit(doc)
    raw = orjson.dumps(doc)
    fast = cdevent_from_json(raw, ORIGIN, {"line": 1})
    assert fast is None or fast == slow_way(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"null",
        b'{"context": {}',
        b"\xef\xbb\xbf" + orjson.dumps(cdevent()),  # a byte-order mark
        orjson.dumps(cdevent()) + b" x",
        orjson.dumps(cdevent())[:-1] + b', "bad": "\xff"}',  # not UTF-8
        orjson.dumps(cdevent())[:-1] + b', "bad": "\\ud800"}',  # a lone surrogate
        orjson.dumps(cdevent())[:-1] + b', "bad": "a\tb"}',  # a raw control character
        orjson.dumps(cdevent())[:-1] + b', "bad": NaN}',
        orjson.dumps(cdevent())[:-1] + b', "deep": ' + b"[" * 2000 + b"]" * 2000 + b"}",
    ],
)
def test_what_the_fast_way_cannot_read_is_left_to_normalise(raw: bytes) -> None:
    assert cdevent_from_json(raw, ORIGIN, {"line": 1}) is None
    assert not isinstance(slow_way(raw), Event)


def test_the_fast_way_takes_a_number_beyond_a_double_that_orjson_refuses() -> None:
    # jsonb stores such a number exactly (numeric); orjson alone would refuse the event.
    raw = orjson.dumps(cdevent())[:-1] + b', "big": 1e400}'
    assert cdevent_from_json(raw, ORIGIN, {"line": 1}) is not None
    assert str(slow_way(raw)).startswith("invalid JSON: number is infinity")


# -- the fast way for a binary-mode CloudEvent carrying a CDEvent (binary_cdevent) --------------


def binary_headers(doc: dict[str, Any], **extra: str) -> dict[str, str]:
    context = doc.get("context") or {}
    return {
        "ce-specversion": "1.0",
        "ce-id": str(context.get("id", "e-1")),
        "ce-source": "/ci/jenkins%2Fmain",
        "ce-type": str(context.get("type", "dev.cdevents.pipelinerun.started.0.2.0")),
        "content-type": "application/json",
        **extra,
    }


def slow_binary(headers: dict[str, str], data: bytes) -> Event | str:
    try:
        doc, text = binary_cloudevent(headers, data, percent_encoded=True)
        return normalise(doc, text, ORIGIN, {"line": 1}, data_raw=data)
    except Invalid as exc:
        return str(exc)


def test_the_binary_fast_way_makes_the_event_normalise_makes() -> None:
    taken = 0
    for raw in [*demo_lines(100), *(path.read_bytes() for path in CONFORMANCE)]:
        doc = orjson.loads(raw)
        headers = binary_headers(doc)
        expected = slow_binary(headers, raw)
        fast = binary_cdevent(headers, raw, ORIGIN, {"line": 1}, percent_encoded=True)
        if isinstance(expected, Event) and expected.family == "cdevents":
            assert fast == expected
            taken += 1
        else:
            assert fast is None
    assert taken > 100


@pytest.mark.parametrize(
    "extra",
    [
        {"ce-specversion": "0.3"},
        {"ce-id": ""},
        {"ce-id": "x" * (MAX_KEY_BYTES + 1)},
        {"ce-source": "a%00b"},  # percent-decoded to a NUL
        {"ce-subject": "a\\u0000b"},  # the escape itself, kept in metadata (jsonb)
        {"ce-type": "com.example.not.a.cdevent"},
        {"content-type": "text/plain"},
        {"content-type": "application/cloudevents+json"},
        {"content-type": ""},
        {"ce-time": "yesterday"},
    ],
)
def test_the_binary_fast_way_agrees_with_normalise_or_leaves_it_the_decision(
    extra: dict[str, str],
) -> None:
    raw = orjson.dumps(cdevent())
    headers = binary_headers(cdevent(), **extra)
    fast = binary_cdevent(headers, raw, ORIGIN, {"line": 1}, percent_encoded=True)
    assert fast is None or fast == slow_binary(headers, raw)


def test_the_binary_fast_way_keeps_the_attributes_and_the_body_as_sent() -> None:
    raw = orjson.dumps(cdevent(), option=orjson.OPT_INDENT_2)
    event = binary_cdevent(binary_headers(cdevent()), raw, ORIGIN, {}, percent_encoded=True)
    assert event is not None
    assert event.payload == raw
    assert event.metadata["cloudevent"]["source"] == "/ci/jenkins/main"
    assert event.metadata["cloudevent"]["datacontenttype"] == "application/json"
    assert event.subject == "pipeline/42"


def test_a_binary_cloudevent_keeps_its_json_data_as_sent() -> None:
    data = b'{"n": 123456789012345678901234567890, "d": 0.10000000000000000001}'
    headers = {"ce-specversion": "1.0", "ce-id": "n-1", "ce-source": "/s", "ce-type": "t"}
    doc, text = binary_cloudevent(headers, data)
    assert text is not None
    assert orjson.loads(text) == doc
    event = normalise(doc, text, ORIGIN, {}, data_raw=data)
    assert event.payload.endswith(b'"data":' + data + b"}")
    text_headers = {**headers, "content-type": "text/plain"}
    assert binary_cloudevent(text_headers, b"plain")[1] is None  # a string: nothing to keep


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"data": {"a": 1}, "data_base64": "AAE="}, "data_base64: a CloudEvent carries data or"),
        ({"data_base64": "not base64!"}, "data_base64: not a base64 string"),
        ({"data_base64": 7}, "data_base64: not a base64 string"),
    ],
)
def test_data_base64_is_checked(extra: dict[str, Any], reason: str) -> None:
    doc = {"specversion": "1.0", "id": "b-1", "source": "/s", "type": "t", **extra}
    with pytest.raises(Invalid, match=reason):
        normalise(doc, None, ORIGIN, {})
    good = {"specversion": "1.0", "id": "b-1", "source": "/s", "type": "t", "data_base64": "AAE="}
    assert normalise(good, None, ORIGIN, {}).family == "cloudevents"

"""The forwarding sinks against real receivers: an HTTP server that fails first, a NATS server
with JetStream, and a folder read back by the folder source."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from nats.aio.client import Client
from pydantic import SecretStr
from structlog.testing import capture_logs

from collector import ccmessage
from collector.events import Event, Origin, binary_cloudevent, normalise
from collector.pipeline import Pipeline, PipelineLimits
from collector.ports import Batch, BatchResult
from collector.settings import (
    SUBJECT_PLACEHOLDERS,
    FolderSinkSettings,
    FolderSourceSettings,
    HttpSinkSettings,
    NatsSinkSettings,
)
from collector.sinks.folder import FolderSink
from collector.sinks.http import HttpSink, HttpSinkError
from collector.sinks.memory import MemorySink
from collector.sinks.nats import NatsSink, NatsSinkError
from collector.sources.folder import FolderSource
from tests.conftest import SPEC
from tests.http_receiver import REFUSAL, Receiver
from tests.nats_fixtures import NatsNames, NatsServer

pytestmark = pytest.mark.anyio

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SECRET = "s3cret"


def events() -> list[Event]:
    """One event of every family, as the sources make them."""
    origin = Origin(received_via="test", received_at=NOW, default_type="com.example.raw")
    cdevent = (SPEC / "v0.5.1" / "conformance" / "build_started.json").read_bytes()
    cloudevent = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/shop",
        "type": "com.example.order",
        "subject": "order-1",
        "time": "2025-05-31T10:00:00Z",
        "datacontenttype": "text/plain",
        "data": "ünïcode text",
    }
    cc = ccmessage.decode(
        'node_down,cluster=fritz,hostname=f0101 event="unreachable" 1700000000', origin
    )
    return [
        normalise(orjson.loads(cdevent), cdevent, origin, {}),
        normalise(cloudevent, None, origin, {}),
        normalise({"build": 7}, None, origin, {}),
        *cc.events,
    ]


def identity(e: Event) -> tuple[str, str, str]:
    return (e.source, e.type, e.id)


# -- http ----------------------------------------------------------------------------------


def http_sink(receiver: Receiver, **settings: Any) -> HttpSink:
    return HttpSink(
        "forward",
        HttpSinkSettings(
            type="http",
            url=receiver.url,
            hmac_secret=SecretStr(SECRET),
            backoff_s=0.01,
            **settings,
        ),
    )


def signed(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["x-hub-signature-256"], expected)


async def write(sink: Any, batch: Batch) -> Any:
    await sink.open()
    try:
        return await sink.write(batch)
    finally:
        await sink.close()


async def test_http_sink_retries_503s_then_every_event_arrives_signed(
    receiver: Receiver,
) -> None:
    receiver.fail_first = 3
    sent = events()
    result = await write(http_sink(receiver, retries=5), Batch(sent))
    assert result.stored == len(sent)
    assert len(receiver.requests) == 3 + len(sent)
    assert all(signed(h, b) for h, b in receiver.requests)
    delivered = [orjson.loads(b) for h, b in receiver.requests[3:]]
    assert all(h["content-type"] == "application/cloudevents+json" for h, _ in receiver.requests)
    assert [(d["source"], d["type"], d["id"]) for d in delivered] == [identity(e) for e in sent]
    # The first event's three failed attempts carried the same body as its success.
    assert {b for _, b in receiver.requests[:4]} == {receiver.requests[3][1]}


async def test_http_sink_binary_mode_puts_attributes_in_headers(receiver: Receiver) -> None:
    sent = events()
    await write(http_sink(receiver, mode="binary"), Batch(sent))
    (cd_h, cd_b), (ce_h, ce_b), (_raw_h, raw_b), (cc_h, _cc_b) = receiver.requests
    assert cd_h["ce-type"] == "dev.cdevents.build.started.0.3.0"
    assert cd_h["ce-specversion"] == "1.0"
    assert cd_h["content-type"] == "application/json"
    assert orjson.loads(cd_b)["context"]["type"] == cd_h["ce-type"]
    assert (ce_h["ce-id"], ce_h["ce-subject"], ce_h["content-type"]) == (
        "ce-1",
        "order-1",
        "text/plain",
    )
    assert ce_b == "ünïcode text".encode()  # text data is the body as is, not a JSON string
    assert orjson.loads(raw_b) == {"build": 7}
    assert cc_h["ce-source"] == "/clusters/fritz/hosts/f0101"
    assert all(signed(h, b) for h, b in receiver.requests)


async def test_http_sink_binary_mode_writes_what_the_http_binding_reads(
    receiver: Receiver,
) -> None:
    # What the binding says a sender must do: percent-encode space, '"', '%' and non-ASCII;
    # canonical strings for other types; a null attribute is absent; bytes are not JSON.
    origin = Origin(received_via="test", received_at=NOW)
    base = {"specversion": "1.0", "source": "/shop", "type": "com.example.order"}
    odd = {
        **base,
        "id": "odd",
        "subject": 'zoë\'s order #1 "x" 100%',
        "priority": 5,
        "urgent": True,
        "nothing": None,
        "data": {"n": 1},
    }
    blob = {**base, "id": "blob", "data_base64": base64.b64encode(b"\x00\xff").decode()}
    bare = {**base, "id": "bare"}
    # A CDEvent that came in a CloudEvent (Tekton's, through a Knative broker) goes on as the
    # CDEvent, with the extensions of the CloudEvent it came in: the trace goes on too.
    cdevent = orjson.loads((SPEC / "v0.5.1" / "conformance" / "build_started.json").read_bytes())
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    carried = {
        **base,
        "id": "random-uuid",
        "type": cdevent["context"]["type"],
        "traceparent": trace,
        "data": cdevent,
    }
    await write(
        http_sink(receiver, mode="binary"),
        Batch([normalise(d, None, origin, {}) for d in (odd, blob, bare, carried)]),
    )
    (odd_h, _), (blob_h, blob_b), (bare_h, bare_b), (cd_h, cd_b) = receiver.requests
    assert (cd_h["ce-id"], cd_h["ce-traceparent"]) == (cdevent["context"]["id"], trace)
    assert orjson.loads(cd_b) == cdevent
    assert odd_h["ce-subject"] == "zo%C3%AB's%20order%20#1%20%22x%22%20100%25"
    assert (odd_h["ce-priority"], odd_h["ce-urgent"], "ce-nothing" in odd_h) == ("5", "true", False)
    assert (blob_h["content-type"], blob_b) == ("application/octet-stream", b"\x00\xff")
    assert ("content-type" in bare_h, bare_b) == (False, b"")
    # Read back as a collector's http source reads the binding: the same event.
    read = [binary_cloudevent(h, b, percent_encoded=True)[0] for h, b in receiver.requests[:3]]
    expected = {k: v for k, v in odd.items() if v is not None}
    assert read[0] == {
        **expected,
        "priority": "5",
        "urgent": "true",
        "datacontenttype": "application/json",
    }
    assert read[1] == {**blob, "datacontenttype": "application/octet-stream"}
    assert read[2] == bare


async def test_http_sink_batch_mode_sends_one_request(receiver: Receiver) -> None:
    sent = events()
    await write(http_sink(receiver, mode="batch"), Batch(sent))
    ((headers, body),) = receiver.requests
    assert headers["content-type"] == "application/cloudevents-batch+json"
    assert [(d["source"], d["type"], d["id"]) for d in orjson.loads(body)] == [
        identity(e) for e in sent
    ]
    assert signed(headers, body)


def poisoned() -> list[Event]:
    """Six CloudEvents; the receiver refuses the third one (its data is "poison")."""
    origin = Origin(received_via="test", received_at=NOW)
    return [
        normalise(
            {
                "specversion": "1.0",
                "id": f"p-{i}",
                "source": "/shop",
                "type": "com.example.order",
                "data": "poison" if i == 2 else f"p-{i}",
            },
            None,
            origin,
            {},
        )
        for i in range(6)
    ]


def ids(bodies: list[bytes]) -> list[str]:
    """The event ids in request bodies, in order (a batch body holds several)."""
    docs = [orjson.loads(b) for b in bodies]
    return [d["id"] for doc in docs for d in (doc if isinstance(doc, list) else [doc])]


@pytest.mark.parametrize("mode", ["structured", "batch"])
async def test_http_sink_sends_the_rest_when_the_receiver_refuses_one_event(
    receiver: Receiver, mode: str
) -> None:
    receiver.poison = b"poison"
    sink = http_sink(receiver, retries=5, mode=mode)
    with capture_logs() as logs:
        result = await write(sink, Batch(poisoned()))

    assert result.stored == 5
    assert sink.refused == 1
    assert sink.healthy
    # Refused once, never sent again; the events after it were sent all the same. (A batch
    # is refused as a whole first, then sent again one event per request.)
    first = ids(receiver.bodies(400)[:1]) if mode == "batch" else []
    assert first == ([f"p-{i}" for i in range(6)] if mode == "batch" else [])
    assert ids(receiver.bodies(400))[len(first) :] == ["p-2"]
    assert ids(receiver.bodies(202)) == ["p-0", "p-1", "p-3", "p-4", "p-5"]
    [log] = [e for e in logs if e["event"] == "http_sink_refused"]
    assert (log["sink"], log["id"], log["refused_total"]) == ("forward", "p-2", 1)
    assert "HTTP 400: " + REFUSAL.decode() in log["error"]


async def test_http_sink_binary_mode_sends_the_rest_when_one_is_refused(
    receiver: Receiver,
) -> None:
    receiver.poison = b"poison"
    sink = http_sink(receiver, mode="binary")
    result = await write(sink, Batch(poisoned()))

    assert (result.stored, sink.refused) == (5, 1)
    assert receiver.bodies(400) == [b'"poison"']
    assert receiver.bodies(202) == [f'"p-{i}"'.encode() for i in (0, 1, 3, 4, 5)]


@pytest.mark.parametrize("status", [401, 404, 408])
async def test_http_sink_retries_4xx_about_the_sink_not_the_event(
    receiver: Receiver, status: int
) -> None:
    receiver.status = status
    sink = http_sink(receiver, retries=2)
    with pytest.raises(HttpSinkError, match=f"failed 3 times: HTTP {status}"):
        await write(sink, Batch(poisoned()))
    assert len(receiver.requests) == 3  # the first event, three times: the batch failed
    assert sink.refused == 0
    assert sink.healthy  # giving up leaves it ready for the next write


async def test_http_sink_errors_show_the_url_masked(receiver: Receiver) -> None:
    receiver.url = receiver.url.replace("http://", "http://u:pw-SECRET@") + "?token=t-SECRET&x=1"
    masked = receiver.url.replace("pw-SECRET", "***").replace("t-SECRET", "***")
    receiver.status = 400
    with capture_logs() as logs:
        await write(http_sink(receiver, retries=0), Batch(events()[:1]))
    [log] = [e for e in logs if e["event"] == "http_sink_refused"]
    assert log["error"].startswith(f"http sink forward: {masked} refused: HTTP 400")
    receiver.status = 503
    with pytest.raises(HttpSinkError) as gave_up:
        await write(http_sink(receiver, retries=0), Batch(events()[:1]))
    assert str(gave_up.value).startswith(f"http sink forward: {masked} failed 1 times: HTTP 503")
    assert "SECRET" not in repr(logs) + str(gave_up.value)


async def test_http_sink_gives_up_after_its_retries(receiver: Receiver) -> None:
    receiver.fail_first = 100
    with capture_logs() as logs, pytest.raises(HttpSinkError, match="failed 4 times: HTTP 503"):
        await write(http_sink(receiver, retries=3, max_backoff_s=0.015), Batch(events()[:1]))
    assert len(receiver.requests) == 4
    # The delay doubles up to max_backoff_s: many retries never mean hours of waiting.
    assert [e["retry_in_s"] for e in logs if e["event"] == "http_sink_retry"] == [
        0.01,
        0.015,
        0.015,
    ]


# -- nats ----------------------------------------------------------------------------------


async def test_nats_sink_publishes_structured_cloudevents_with_jetstream_acks(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    await anyio.to_thread.run_sync(nats_server.create_stream, nats_names)
    sink = NatsSink(
        "bus",
        NatsSinkSettings(
            type="nats",
            servers=[nats_server.url],
            subject=nats_names.prefix + ".{family}.{type}",
            jetstream=True,
        ),
    )
    sent = events()
    await write(sink, Batch(sent))

    async def read(client: Client) -> list[tuple[str, dict[str, Any]]]:
        subscription = await client.jetstream().pull_subscribe(
            nats_names.wildcard, stream=nats_names.stream
        )
        messages = await subscription.fetch(len(sent), timeout=5)
        return [(m.subject, orjson.loads(m.data)) for m in messages]

    received = await anyio.to_thread.run_sync(nats_server.run, read)
    p = nats_names.prefix
    assert [s for s, _ in received] == [
        f"{p}.cdevents.dev.cdevents.build.started.0.3.0",
        f"{p}.cloudevents.com.example.order",
        f"{p}.raw.com.example.raw",
        f"{p}.ccmessage.org.clustercockpit.event.node_down",
    ]
    assert [(d["source"], d["type"], d["id"]) for _, d in received] == [identity(e) for e in sent]
    cd = received[0][1]
    assert cd["data"] == json.loads(
        (SPEC / "v0.5.1" / "conformance" / "build_started.json").read_text()
    )


async def test_nats_sink_publishes_again_without_copies_in_the_stream(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    # A publish whose ack was lost is published again: its message id lets the stream drop it.
    await anyio.to_thread.run_sync(nats_server.create_stream, nats_names)
    sink = nats_sink(nats_server, nats_names.prefix + ".{family}.{type}")
    sent = events()
    await write(sink, Batch(sent))
    await write(sink, Batch(sent))
    stored = await anyio.to_thread.run_sync(nats_server.stream_messages, nats_names.stream)
    assert stored == len(sent)


def nats_sink(nats_server: NatsServer, subject: str, **settings: Any) -> NatsSink:
    return NatsSink(
        "bus",
        NatsSinkSettings(
            type="nats", servers=[nats_server.url], subject=subject, jetstream=True, **settings
        ),
    )


async def test_nats_sink_without_a_stream_retries_with_backoff_then_names_the_subject(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    sink = nats_sink(
        nats_server, nats_names.prefix + ".{type}", retries=3, backoff_s=0.01, max_backoff_s=0.03
    )
    with capture_logs() as logs, pytest.raises(NatsSinkError) as failure:
        await write(sink, Batch(events()[:1]))

    subject = f"{nats_names.prefix}.dev.cdevents.build.started.0.3.0"
    assert str(failure.value) == (
        f"nats sink bus: no JetStream stream captures subject {subject}: create one, or set "
        "jetstream = false (1 of 1 events not published after 4 attempts)"
    )
    retries = [e for e in logs if e["event"] == "nats_sink_retry"]
    assert [(e["attempt"], e["retry_in_s"]) for e in retries] == [(1, 0.01), (2, 0.02), (3, 0.03)]
    assert sink.healthy  # giving up leaves it ready for the next write


async def test_nats_sink_publishes_again_only_what_failed(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    """A stream that captures one of four subjects: that event is published at once, the
    other three once the stream captures them too — and none twice."""
    p = nats_names.prefix
    order = f"{p}.cloudevents.com.example.order"
    await anyio.to_thread.run_sync(
        lambda: nats_server.run(
            lambda c: c.jetstream().add_stream(name=nats_names.stream, subjects=[order])
        )
    )
    sink = nats_sink(nats_server, p + ".{family}.{type}", retries=10, backoff_s=0.2)
    sent = events()
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(write, sink, Batch(sent))
            with anyio.fail_after(10):
                while not any(e["event"] == "nats_sink_retry" for e in logs):
                    await anyio.sleep(0.01)
            assert not sink.healthy  # while retrying
            await anyio.to_thread.run_sync(
                lambda: nats_server.run(
                    lambda c: c.jetstream().update_stream(
                        name=nats_names.stream, subjects=[nats_names.wildcard]
                    )
                )
            )

    first_retry = next(e for e in logs if e["event"] == "nats_sink_retry")
    assert first_retry["unpublished"] == 3
    assert sink.healthy
    assert await anyio.to_thread.run_sync(nats_server.stream_messages, nats_names.stream) == 4


def test_nats_sink_subjects_never_get_wildcards_or_empty_tokens() -> None:
    sink = NatsSink("bus", NatsSinkSettings(type="nats", subject="ev.{type}.{subject}"))
    event = events()[1]
    event.type = "a..b * > c."
    event.subject = ""
    assert sink.subject(event) == "ev.a.b_____c._"


def test_nats_sink_fills_every_placeholder_the_settings_allow() -> None:
    template = ".".join(f"{{{name}}}" for name in SUBJECT_PLACEHOLDERS)
    sink = NatsSink("bus", NatsSinkSettings(type="nats", subject=template))
    event = events()[1]
    assert sink.subject(event) == "cloudevents.com.example.order./shop.order-1.ce-1"


# -- folder --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["batch", "event"])
async def test_folder_sink_writes_what_a_folder_source_reads(tmp_path: Path, layout: str) -> None:
    out = tmp_path / "out"
    sent = events()
    await write(
        FolderSink("files", FolderSinkSettings(type="folder", path=out, layout=layout)),
        Batch(sent),
    )
    written = sorted(p for p in out.iterdir())
    assert not [p for p in written if p.name.startswith(".")]  # no temporary files left
    assert len(written) == (1 if layout == "batch" else len(sent))

    reader = FolderSource("files", FolderSourceSettings(type="folder", path=out), 100)
    read: list[Event] = []
    for path in written:
        found, rejected = reader.decode(path.read_bytes(), path.name, NOW)
        assert not rejected
        read.extend(found)
    assert sorted(map(identity, read)) == sorted(map(identity, sent))
    by_identity = {identity(e): e for e in read}
    for original in sent:
        back = by_identity[identity(original)]
        assert back.time == original.time
        if original.family in ("cdevents", "cloudevents"):
            assert back.family == original.family
            assert orjson.loads(back.payload) == orjson.loads(original.payload)
        else:  # others travel as CloudEvents carrying the original document as data
            assert orjson.loads(back.payload)["data"] == orjson.loads(original.payload)


# Ids a folder source would skip or could not claim, were they copied into a file name as
# they are: hidden (a leading '.'), partial-file suffixes, a claim's '~', paths, and ids too
# long for a name in bytes (non-ASCII) or in characters; some alike once made safe.
AWKWARD_IDS = [
    "../../etc/passwd",
    ".hidden",
    "..",
    "-rf",
    "~backup~",
    "x.tmp",
    "x.part",
    "a/b",
    "a:b",
    "é" * 150,
    "x" * 200,
    "x" * 200 + "y",
]


async def test_folder_sink_names_are_read_by_a_folder_source_whatever_the_id(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    template = events()[2]  # a raw event: sent wrapped in a CloudEvent with its id
    sent = [replace(template, id=event_id) for event_id in AWKWARD_IDS]
    sink = FolderSink("files", FolderSinkSettings(type="folder", path=out, layout="event"))
    await write(sink, Batch(sent))
    await write(sink, Batch(sent))  # the same ids again: new files, none overwritten

    names = [p.name for p in out.iterdir()]
    assert len(names) == 2 * len(sent)
    assert not [n for n in names if n.startswith((".", "-")) or len(n.encode()) > 255]

    # The folder source finds, claims and reads every file, with every id intact.
    stored = CountingSink()
    pipeline = Pipeline([stored], [], PipelineLimits())
    reader = FolderSource(
        "files", FolderSourceSettings(type="folder", path=out, settle_s=0, after="delete"), 100
    )
    stop = anyio.Event()
    with anyio.fail_after(60):  # a file the source skips fails the test here
        async with anyio.create_task_group() as tg:
            await tg.start(pipeline.run)
            tg.start_soon(reader.run, pipeline, stop)
            while stored.written < len(names) or [p for p in out.iterdir() if p.is_file()]:
                await anyio.sleep(0.05)
            stop.set()
            await pipeline.close()
    assert not stored.rejected
    assert sorted(key[2] for key in stored.events) == sorted(AWKWARD_IDS)


class CountingSink(MemorySink):
    """Counts every event and rejection written, duplicates included."""

    def __init__(self) -> None:
        super().__init__("db")
        self.written = 0

    async def write(self, batch: Batch) -> BatchResult:
        self.written += len(batch.events) + len(batch.rejected)
        return await super().write(batch)

"""The NATS source: JetStream (durable, acked after commit) or core NATS (at-most-once).

JetStream: a durable pull consumer (the stream and consumer are created when missing, or
bound when present); each fetched batch becomes one delivery; messages are acked once the
required sinks committed, nak'ed with a delay when they could not, and an invalid payload is
stored as rejected, then terminated. `max_ack_pending` bounds what is in flight, so a slow
database backpressures the stream instead of filling memory. Several collectors on one
durable consumer share the work; the database dedups redeliveries.

Core NATS has no acknowledgements: a message is delivered at most once, and lost if
collector is down or too slow (the subscription's pending limit drops it).
"""

from __future__ import annotations

import contextlib
import fnmatch
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import nats.errors
import nats.js.errors
import orjson
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api as js_api

from collector import ccmessage
from collector.errors import DeliveryFailed, PipelineClosed
from collector.events import (
    Event,
    Invalid,
    Origin,
    RejectedEvent,
    binary_cloudevent,
    normalise,
)
from collector.natsconn import connect
from collector.ports import Delivery, Intake
from collector.settings import NatsSourceSettings

log = structlog.get_logger("collector.sources.nats")

CE_PREFIX = "ce-"


@dataclass
class Decoded:
    events: list[Event] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)

    @property
    def invalid(self) -> bool:
        """Nothing usable in the message: store its rejection, then terminate it."""
        return bool(self.rejected) and not self.events


class NatsSource:
    def __init__(self, name: str, settings: NatsSourceSettings) -> None:
        self.name = name
        self.settings = settings
        self.received = 0
        self.metrics_skipped = 0

    async def run(self, intake: Intake, stop: anyio.Event) -> None:
        client = await connect(self.settings, self.name)
        try:
            if self.settings.mode == "jetstream":
                await self._run_jetstream(client, intake, stop)
            else:
                await self._run_core(client, intake, stop)
        finally:
            # Acks are already published: flush them, then close. (drain() would wait for
            # the pull subscription's outstanding fetch requests, up to its 30 s timeout.)
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                if client.is_connected:
                    with contextlib.suppress(nats.errors.Error, TimeoutError):
                        await client.flush(timeout=2)
                await client.close()

    # -- JetStream -------------------------------------------------------------------------

    async def _run_jetstream(self, client: Client, intake: Intake, stop: anyio.Event) -> None:
        s = self.settings
        js = client.jetstream()
        await self._ensure_stream(js)
        config = js_api.ConsumerConfig(
            durable_name=s.durable,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            ack_wait=s.ack_wait_s,
            max_ack_pending=s.max_ack_pending,
            filter_subjects=list(s.subjects) if len(s.subjects) > 1 else None,
            filter_subject=s.subjects[0] if len(s.subjects) == 1 else None,
        )
        subscription = await js.pull_subscribe(
            s.subjects[0], durable=s.durable, stream=s.stream, config=config
        )
        log.info(
            "nats_consuming",
            source=self.name,
            stream=s.stream,
            durable=s.durable,
            subjects=s.subjects,
        )
        async with anyio.create_task_group() as tg:
            for _ in range(s.fetchers):
                tg.start_soon(self._fetch_loop, subscription, intake, stop)

    async def _ensure_stream(self, js: Any) -> None:
        s = self.settings
        try:
            await js.stream_info(s.stream)
            return
        except nats.js.errors.NotFoundError:
            if not s.create:
                raise PipelineClosed(
                    f"nats ({self.name}): stream {s.stream!r} does not exist and "
                    f"sources.{self.name}.create is false"
                ) from None
        await js.add_stream(
            name=s.stream,
            subjects=list(s.subjects),
            storage=js_api.StorageType(s.storage),
            retention=js_api.RetentionPolicy(s.retention),
        )
        log.info("nats_stream_created", source=self.name, stream=s.stream, subjects=s.subjects)

    async def _fetch_loop(self, subscription: Any, intake: Intake, stop: anyio.Event) -> None:
        while not stop.is_set():
            try:
                messages: list[Msg] = await subscription.fetch(self.settings.fetch_batch, timeout=1)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.ConnectionClosedError:
                return
            except nats.errors.Error as exc:
                log.warning("nats_fetch_failed", source=self.name, error=str(exc))
                await anyio.sleep(1)
                continue
            await self._deliver_messages(messages, intake)

    async def _deliver_messages(self, messages: list[Msg], intake: Intake) -> None:
        received_at = datetime.now(UTC)
        decoded = [self.decode(m, received_at) for m in messages]
        delivery = Delivery(
            events=[e for d in decoded for e in d.events],
            rejected=[r for d in decoded for r in d.rejected],
        )
        self.received += len(messages)
        try:
            with anyio.CancelScope(shield=True):  # a delivery in flight finishes even on stop
                await intake.deliver(delivery)
        except (DeliveryFailed, PipelineClosed) as exc:
            log.warning("nats_nak", source=self.name, messages=len(messages), error=str(exc))
            for message in messages:
                await _quietly(message.nak(delay=self.settings.nak_delay_s))
            return
        for message, result in zip(messages, decoded, strict=True):
            # Acks are best effort: a lost ack means a redelivery, which is a duplicate.
            await _quietly(message.term() if result.invalid else message.ack())

    # -- core NATS -------------------------------------------------------------------------

    async def _run_core(self, client: Client, intake: Intake, stop: anyio.Event) -> None:
        send, receive = anyio.create_memory_object_stream[Msg](self.settings.fetch_batch * 4)

        async def on_message(message: Msg) -> None:
            try:
                send.send_nowait(message)
            except anyio.WouldBlock:
                log.warning("nats_core_dropped", source=self.name, subject=message.subject)

        for subject in self.settings.subjects:
            await client.subscribe(subject, queue=self.settings.queue_group or "", cb=on_message)
        log.info(
            "nats_subscribed",
            source=self.name,
            subjects=self.settings.subjects,
            queue_group=self.settings.queue_group,
        )
        async with receive:
            while not stop.is_set():
                batch: list[Msg] = []
                with anyio.move_on_after(1):
                    batch.append(await receive.receive())
                while batch and len(batch) < self.settings.fetch_batch:
                    try:
                        batch.append(receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
                if batch:
                    received_at = datetime.now(UTC)
                    decoded = [self.decode(m, received_at) for m in batch]
                    delivery = Delivery(
                        events=[e for d in decoded for e in d.events],
                        rejected=[r for d in decoded for r in d.rejected],
                    )
                    self.received += len(batch)
                    try:
                        await intake.deliver(delivery)
                    except (DeliveryFailed, PipelineClosed) as exc:
                        log.error(
                            "nats_core_lost", source=self.name, messages=len(batch), error=str(exc)
                        )

    # -- decoding --------------------------------------------------------------------------

    def decode(self, message: Msg, received_at: datetime) -> Decoded:
        """One message → its events and rejections (line protocol may hold several)."""
        s = self.settings
        headers = {k.lower(): v for k, v in (message.headers or {}).items()}
        metadata: dict[str, Any] = {"subject": message.subject}
        if _is_js(message):
            delivery_info = message.metadata
            metadata["stream_sequence"] = delivery_info.sequence.stream
            metadata["delivered"] = delivery_info.num_delivered
        kept = {h: headers[h.lower()] for h in s.headers if h.lower() in headers}
        if kept:
            metadata["headers"] = kept
        origin = Origin(
            received_via=self.name,
            received_at=received_at,
            default_type=self._type_for(message.subject, headers),
            default_source=s.event_source or f"nats://{message.subject}",
            default_id=headers.get(s.id_header.lower()) if s.id_header else None,
        )
        result = Decoded()
        data: bytes = message.data
        fmt = s.format
        try:
            if headers.get("ce-specversion") and fmt in ("auto", "cloudevents"):
                attributes = {
                    k[len(CE_PREFIX) :]: v for k, v in headers.items() if k.startswith(CE_PREFIX)
                }
                doc = binary_cloudevent(attributes, headers.get("content-type"), data)
                result.events.append(normalise(doc, None, origin, metadata))
            elif fmt == "lineprotocol" or (fmt == "auto" and not _looks_like_json(data)):
                text = data.decode()
                cc = ccmessage.decode(text, origin, cluster=s.cluster, metadata=metadata)
                result.events.extend(cc.events)
                result.rejected.extend(cc.rejected)
                self.metrics_skipped += cc.metrics_skipped
            else:
                doc = orjson.loads(data)
                if isinstance(doc, list):
                    for index, item in enumerate(doc):
                        meta = {**metadata, "index": index}
                        try:
                            result.events.append(normalise(item, None, origin, meta))
                        except Invalid as exc:
                            result.rejected.append(
                                RejectedEvent(
                                    str(exc),
                                    orjson.dumps(item),
                                    received_at,
                                    self.name,
                                    f"index {index}",
                                    meta,
                                )
                            )
                else:
                    result.events.append(normalise(doc, data, origin, metadata))
        except orjson.JSONDecodeError as exc:
            result.rejected.append(
                RejectedEvent(f"invalid JSON: {exc}", data, received_at, self.name, None, metadata)
            )
        except UnicodeDecodeError as exc:
            result.rejected.append(
                RejectedEvent(
                    f"not UTF-8 text: {exc}", data, received_at, self.name, None, metadata
                )
            )
        except Invalid as exc:
            result.rejected.append(
                RejectedEvent(str(exc), data, received_at, self.name, None, metadata)
            )
        return result

    def _type_for(self, subject: str, headers: dict[str, str]) -> str | None:
        s = self.settings
        if s.type_header and headers.get(s.type_header.lower()):
            return headers[s.type_header.lower()]
        for pattern, event_type in s.subject_types.items():
            if _subject_matches(pattern, subject):
                return event_type
        return s.event_type


def _subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcards: `*` one token, `>` the rest."""
    parts, wanted = subject.split("."), pattern.split(".")
    for index, part in enumerate(wanted):
        if part == ">":
            return len(parts) > index
        if index >= len(parts) or (part != "*" and not fnmatch.fnmatchcase(parts[index], part)):
            return False
    return len(parts) == len(wanted)


def _looks_like_json(data: bytes) -> bool:
    head = data.lstrip()[:1]
    return head in (b"{", b"[")


def _is_js(message: Msg) -> bool:
    return bool(message.reply) and message.reply.startswith("$JS.ACK")


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except (nats.errors.Error, nats.js.errors.Error) as exc:
        log.debug("nats_ack_failed", error=str(exc))

"""The NATS source: JetStream (durable, acked after commit) or core NATS (at-most-once).

JetStream: a durable pull consumer (the stream and consumer are created when missing, or
bound when present, and again when they go away), pulled in batches by `fetchers` loops;
what arrives is decoded and queued as one delivery, and acked once the required sinks
committed it, nak'ed with a delay when they gave up; an invalid payload is stored as
rejected, then terminated. Nothing is pulled while the pipeline accepts nothing (queue full,
database down), and the queue and `max_ack_pending` bound what is in flight. Several
collectors on one durable consumer share the work; the database dedups redeliveries.

Core NATS has no acknowledgements: a message is delivered at most once, and lost if
collector is down or too slow (dropped, counted and logged when there is no room for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import nats.errors
import nats.js.errors
import orjson
import structlog
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api as js_api

from collector import ccmessage
from collector.errors import ConfigError, PipelineClosed
from collector.events import (
    BOM,
    Event,
    Invalid,
    Origin,
    RejectedEvent,
    binary_cdevent,
    binary_cloudevent,
    events_from_json,
    normalise,
)
from collector.metrics import Metrics
from collector.natsconn import NatsUnavailable, connect, describe
from collector.ports import Delivery, Intake
from collector.settings import NatsSourceSettings

log = structlog.get_logger("collector.sources.nats")

STATUS_HEADER = js_api.Header.STATUS.value
DESCRIPTION_HEADER = js_api.Header.DESCRIPTION.value
FETCH_TIMEOUT_S = 1.0  # a pull request expires after this long; stop is checked in between
PAUSE_S = 0.05  # while the pipeline accepts nothing, look again this often
MIN_BACKOFF_S, MAX_BACKOFF_S = 0.1, 5.0  # between pull requests that end unusually
STREAM_GONE_S = 1.0  # before creating a deleted stream again
NO_ANSWER = "no answer"  # a pull request that ended here, past its expiry
NOT_A_SUBSET = 10093  # JetStream: consumer filter subject is not a valid subset of the stream


@dataclass
class Decoded:
    events: list[Event] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)

    @property
    def invalid(self) -> bool:
        """Nothing usable in the message: store its rejection, then terminate it."""
        return bool(self.rejected) and not self.events


class Puller:
    """Pull requests on a consumer, one at a time, answered on our own inbox.

    Messages arrive through a subscription callback and are handed over as they come
    (nats-py's fetch() creates a task per message, which costs more than decoding it); the
    next request goes out once this one is complete, so at most `batch` messages are in
    transit per puller. A request ends when `batch` messages arrived, or with a status
    (408 expired, 409 e.g. consumer deleted), or locally one second past its expiry (a
    request lost with a dropped connection, or sent to a consumer that no longer exists).
    Each request has its own reply subject, so the late status of a request that ended here
    already cannot end the next one.
    """

    def __init__(self, client: Client, stream: str, consumer: str, batch: int) -> None:
        self.client = client
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.inbox = client.new_inbox()
        self.batch = batch
        self.problem: str | None = None  # the status that ended the last request, if unusual
        self._subscription: Any = None
        self._buffer: list[Msg] = []
        # asyncio's own event and timer: an anyio Event and cancel scope per wait cost ~3% of
        # the collector's CPU in bench nats (collector runs on asyncio only).
        self._arrived = asyncio.Event()
        self._requests = 0
        self._reply = ""  # the current request's reply subject
        self._expected = 0
        self._ended = True
        self._expiry: asyncio.TimerHandle | None = None

    async def open(self) -> None:
        self._subscription = await self.client.subscribe(f"{self.inbox}.*", cb=self._on_message)

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()

    async def request(self, expires_s: float) -> None:
        self._requests += 1
        self._reply = f"{self.inbox}.{self._requests}"
        self._expected, self._ended, self.problem = self.batch, False, None
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = asyncio.get_running_loop().call_later(expires_s + 1, self._expire)
        body = orjson.dumps({"batch": self.batch, "expires": int(expires_s * 1e9)})
        await self.client.publish(self.subject, body, reply=self._reply)

    async def next_messages(self) -> list[Msg]:
        """What arrived since the last call (waiting for something); [] once the request is
        complete."""
        while not self._buffer and not self._ended:
            self._arrived.clear()
            await self._arrived.wait()
        messages, self._buffer = self._buffer, []
        return messages

    def _expire(self) -> None:
        if self._ended:  # it ended with an answer; only the timer was left
            return
        self._ended = True
        self.problem = NO_ANSWER  # a dropped connection, or a consumer that is gone
        self._arrived.set()

    async def _on_message(self, message: Msg) -> None:
        headers = message.headers
        if not message.reply and headers and STATUS_HEADER in headers:
            status = headers[STATUS_HEADER]
            if status == "100" or message.subject != self._reply:
                return  # an idle heartbeat, or the end of a request that ended here already
            if status not in ("404", "408"):  # no messages, expired: the normal endings
                self.problem = f"{status} {headers.get(DESCRIPTION_HEADER, '')}".strip()
            self._ended = True
        else:
            self._buffer.append(message)
            self._expected -= 1
            if self._expected <= 0:
                self._ended = True
        self._arrived.set()


class NatsSource:
    def __init__(
        self, name: str, settings: NatsSourceSettings, metrics: Metrics | None = None
    ) -> None:
        self.name = name
        self.settings = settings
        self.counts = (metrics or Metrics()).source(name)  # collector_events_received_total
        self.received = 0
        self.metrics_skipped = 0
        self.naked = 0
        self.terminated = 0
        self.comments_only = 0  # line protocol messages holding nothing but comments
        self.dropped = 0  # core NATS: messages that arrived while there was no room
        self._dropped_logged, self._drops_logged_at = 0, -1.0
        if metrics is not None and settings.mode == "core":
            metrics.read_source_dropped(name, lambda: self.dropped)
        self._clock = 0
        # Why it cannot consume now (the stream deleted, and create is false): /readyz shows it.
        self.problem: str | None = None
        self._checking = anyio.Lock()

    async def run(self, intake: Intake, stop: anyio.Event) -> None:
        try:
            client = await connect(self.settings, self.name, stop=stop)
        except NatsUnavailable:
            if stop.is_set():  # stopped before NATS ever answered: nothing was received
                return
            raise
        try:
            if self.settings.mode == "jetstream":
                await self._run_jetstream(client, intake, stop)
            else:
                await self._run_core(client, intake, stop)
        finally:
            # Acks are already published: flush them, then close. (drain() would wait for
            # outstanding pull requests to expire.)
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                if client.is_connected:
                    with contextlib.suppress(nats.errors.Error, TimeoutError):
                        await client.flush(timeout=2)
                await client.close()
            log.info(
                "nats_source_stopped",
                source=self.name,
                received=self.received,
                metrics_skipped=self.metrics_skipped,
                naked=self.naked,
                terminated=self.terminated,
                comments_only=self.comments_only,
                dropped=self.dropped,
            )

    # -- JetStream -------------------------------------------------------------------------

    async def _run_jetstream(self, client: Client, intake: Intake, stop: anyio.Event) -> None:
        s = self.settings
        js = client.jetstream()
        await self._bind(js)
        log.info(
            "nats_consuming",
            source=self.name,
            stream=s.stream,
            durable=s.durable,
            subjects=s.subjects,
        )
        # Settling tasks outlive the pull loops: after stop, what is queued still commits.
        async with anyio.create_task_group() as settling, anyio.create_task_group() as pulling:
            for _ in range(s.fetchers):
                puller = Puller(client, s.stream, s.durable, s.fetch_batch)
                pulling.start_soon(self._pull_loop, puller, js, intake, stop, settling)

    async def _bind(self, js: Any, again: bool = False) -> None:
        """Bind the stream and the durable pull consumer, creating what is missing (the
        stream only with `create`); ConfigError when they cannot be used as configured.
        `again`: they were there and went away while running."""
        stream_subjects = await self._ensure_stream(js, again)
        await self._ensure_consumer(js, stream_subjects, again)

    async def _ensure_stream(self, js: Any, again: bool) -> list[str]:
        """The stream's subjects, once it exists."""
        s = self.settings
        try:
            info = await js.stream_info(s.stream)
            return list(info.config.subjects or [])
        except nats.js.errors.NotFoundError:
            if not s.create:
                raise ConfigError(
                    [
                        f"config: sources.{self.name}.stream: stream {s.stream!r} does not "
                        f"exist and sources.{self.name}.create is false"
                    ]
                ) from None
        if again:
            # nats-server removes a deleted stream's files after answering: a stream of the
            # same name created meanwhile loses its messages (2.9 and 2.15 alike). Wait.
            await anyio.sleep(STREAM_GONE_S)
        try:
            await js.add_stream(
                name=s.stream,
                subjects=list(s.subjects),
                storage=js_api.StorageType(s.storage),
                retention=js_api.RetentionPolicy(s.retention),
            )
        except nats.js.errors.BadRequestError as exc:  # e.g. subjects of another stream
            raise ConfigError(
                [
                    f"config: sources.{self.name}.stream: cannot create stream {s.stream!r} "
                    f"with subjects {list(s.subjects)}: {exc.description}"
                ]
            ) from None
        if again:
            log.warning("nats_stream_recreated", source=self.name, stream=s.stream)
        else:
            log.info("nats_stream_created", source=self.name, stream=s.stream, subjects=s.subjects)
        return list(s.subjects)

    async def _ensure_consumer(self, js: Any, stream_subjects: list[str], again: bool) -> None:
        """Bind the durable consumer, or create it (creating an identical one is a no-op, so
        replicas starting together agree)."""
        s = self.settings
        try:
            info = await js.consumer_info(s.stream, s.durable)
        except nats.js.errors.NotFoundError:
            pass
        else:
            if info.config.deliver_subject:
                raise ConfigError(
                    [
                        f"config: sources.{self.name}.durable: consumer {s.durable!r} of "
                        f"stream {s.stream!r} is a push consumer (it delivers to "
                        f"{info.config.deliver_subject!r}); collector pulls: name another "
                        "durable, or delete this consumer"
                    ]
                )
            return
        outside = [f for f in s.subjects if not any(_within(f, w) for w in stream_subjects)]
        if outside and stream_subjects:  # nats-server 2.10+ would make a consumer of nothing
            raise ConfigError(
                [
                    f"config: sources.{self.name}.subjects: {list(s.subjects)} is not within "
                    f"the subjects of stream {s.stream!r}: {stream_subjects}"
                ]
            )
        config = js_api.ConsumerConfig(
            durable_name=s.durable,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            ack_wait=s.ack_wait_s,
            max_ack_pending=s.max_ack_pending,
            filter_subjects=list(s.subjects) if len(s.subjects) > 1 else None,
            filter_subject=s.subjects[0] if len(s.subjects) == 1 else None,
        )
        try:
            await js.add_consumer(s.stream, config=config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code == NOT_A_SUBSET:
                problem = (
                    f"config: sources.{self.name}.subjects: {list(s.subjects)} is not within "
                    f"the subjects of stream {s.stream!r}: {stream_subjects}"
                )
            else:
                problem = (
                    f"config: sources.{self.name}.durable: cannot create consumer "
                    f"{s.durable!r} on stream {s.stream!r}: {exc.description}"
                )
            raise ConfigError([problem]) from None
        if again:
            log.warning("nats_consumer_recreated", source=self.name, durable=s.durable)
        else:
            log.info("nats_consumer_created", source=self.name, stream=s.stream, durable=s.durable)

    async def _pull_loop(
        self,
        puller: Puller,
        js: Any,
        intake: Intake,
        stop: anyio.Event,
        settling: TaskGroup,
    ) -> None:
        """Pull, decode, queue; the commit is awaited (then acked) by a separate task, so the
        next pull overlaps the database work. The pipeline's bounded queue, one pull request
        at a time and max_ack_pending bound what is in flight."""
        await puller.open()
        backoff = 0.0
        ended: str | None = None  # how the last request ended, if unusually
        try:
            while not stop.is_set():
                if not intake.accepting:
                    # Queue full or a required sink retrying (database down): pull nothing,
                    # so messages wait in the stream (or go to another collector) instead of
                    # being held past ack_wait, redelivered and fetched again.
                    await anyio.sleep(PAUSE_S)
                    continue
                try:
                    await puller.request(FETCH_TIMEOUT_S)
                except nats.errors.ConnectionClosedError:
                    return
                except nats.errors.Error as exc:
                    log.warning("nats_fetch_failed", source=self.name, error=str(exc))
                    await anyio.sleep(1)
                    continue
                # Hand over what arrives as it arrives, until the request is complete.
                while messages := await puller.next_messages():
                    await self._hand_over(puller.client, messages, intake, settling)
                ended, last = puller.problem, ended
                if ended is None:
                    backoff = 0.0
                    continue
                if not puller.client.is_connected:
                    continue  # the outage explains it; the client reconnects
                if ended != last:  # once, not once per request
                    log.warning("nats_pull_ended", source=self.name, status=ended)
                await self._check(js)
                if ended != NO_ANSWER:  # a status such as 409 comes back at once: wait
                    backoff = min(max(backoff * 2, MIN_BACKOFF_S), MAX_BACKOFF_S)
                    with anyio.move_on_after(backoff):
                        await stop.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await puller.close()

    async def _check(self, js: Any) -> None:
        """After a pull request ended unusually (the consumer deleted, its stream deleted, no
        answer): bind again, creating what went away; while that fails, /readyz says why."""
        if self._checking.locked():  # another puller is at it: its answer is ours
            async with self._checking:
                return
        async with self._checking:
            try:
                await self._bind(js, again=True)
            except ConfigError as exc:
                if self.problem != exc.problems[0]:
                    log.error("nats_source_stalled", source=self.name, error=exc.problems[0])
                self.problem = exc.problems[0]
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("nats_check_failed", source=self.name, error=describe(exc))
            else:
                if self.problem is not None:
                    log.info("nats_source_resumed", source=self.name)
                self.problem = None

    async def _hand_over(
        self, client: Client, messages: list[Msg], intake: Intake, settling: TaskGroup
    ) -> None:
        delivery, invalid = self.decode_all(messages, datetime.now(UTC))
        self.received += len(messages)
        self.counts.received(len(delivery.events) + len(delivery.rejected))
        try:
            await intake.enqueue(delivery)  # waits for room: backpressure
        except PipelineClosed as exc:
            await self._nak(messages, str(exc))
            return
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self._nak(messages, "shutdown", delay=0)
            raise
        settling.start_soon(self._settle, client, messages, invalid, delivery)

    async def _settle(
        self, client: Client, messages: list[Msg], invalid: list[bool], delivery: Delivery
    ) -> None:
        """Ack once the required sinks committed; nak with a delay when they gave up."""
        try:
            await delivery.done.wait()
        except BaseException:
            # Cancelled past the shutdown timeout: let another collector take them now
            # (should this one still commit them, the copies are counted as duplicates).
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self._nak(messages, "shutdown timeout", delay=0)
            raise
        if delivery.error is not None:
            await self._nak(messages, str(delivery.error))
            return
        # Acks are best effort: a lost ack means a redelivery, which is a duplicate.
        if any(invalid):
            for message, unusable in zip(messages, invalid, strict=True):
                if unusable:
                    self.terminated += 1
                    await _quietly(message.term())
                else:
                    await _quietly(message.ack())
        else:
            await _ack_all(client, messages)

    async def _nak(self, messages: list[Msg], reason: str, delay: float | None = None) -> None:
        log.warning("nats_nak", source=self.name, messages=len(messages), error=reason)
        self.naked += len(messages)
        wait = self.settings.nak_delay_s if delay is None else delay
        for message in messages:
            await _quietly(message.nak(delay=wait or None))

    # -- core NATS -------------------------------------------------------------------------

    async def _run_core(self, client: Client, intake: Intake, stop: anyio.Event) -> None:
        """At most once: what arrives is queued (waiting for room), never acknowledged; what
        finds no room while the pipeline is full is dropped, counted and logged."""
        send, receive = anyio.create_memory_object_stream[Msg](self.settings.fetch_batch * 4)

        async def on_message(message: Msg) -> None:
            try:
                send.send_nowait(message)
            except anyio.WouldBlock:
                self.dropped += 1
                self._report_drops()

        subscriptions = [
            await client.subscribe(subject, queue=self.settings.queue_group or "", cb=on_message)
            for subject in self.settings.subjects
        ]
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
                await self._queue_core(batch, receive, intake)
                self._report_drops()  # the last of a burst, too
            # Stop receiving, then queue what already arrived: it is not lost on a clean stop.
            for subscription in subscriptions:
                with contextlib.suppress(nats.errors.Error):
                    await subscription.unsubscribe()
            await self._queue_core([], receive, intake)

    def _report_drops(self) -> None:
        """Log drops not logged yet, at most once a second (with how many since the last
        line), so that a burst of drops is neither hidden nor a line per message."""
        now = time.monotonic()
        if self.dropped > self._dropped_logged and now - self._drops_logged_at >= 1:
            log.warning(
                "nats_core_dropped",
                source=self.name,
                dropped=self.dropped - self._dropped_logged,
                dropped_total=self.dropped,
            )
            self._dropped_logged, self._drops_logged_at = self.dropped, now

    async def _queue_core(
        self, batch: list[Msg], receive: MemoryObjectReceiveStream[Msg], intake: Intake
    ) -> None:
        while True:
            while len(batch) < self.settings.fetch_batch:
                try:
                    batch.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            if not batch:
                return
            delivery, _ = self.decode_all(batch, datetime.now(UTC))
            self.received += len(batch)
            self.counts.received(len(delivery.events) + len(delivery.rejected))
            try:
                await intake.enqueue(delivery)
            except PipelineClosed as exc:
                log.error("nats_core_lost", source=self.name, messages=len(batch), error=str(exc))
                return
            if len(batch) < self.settings.fetch_batch:
                return
            batch = []

    # -- decoding --------------------------------------------------------------------------

    def decode_all(self, messages: list[Msg], received_at: datetime) -> tuple[Delivery, list[bool]]:
        """A batch as one delivery, and for each message whether nothing in it was usable
        (to be terminated once its rejection is stored). Messages with the same subject and
        headers share one Origin."""
        origins: dict[tuple[str, str | None, str | None], Origin] = {}
        events: list[Event] = []
        rejected: list[RejectedEvent] = []
        invalid: list[bool] = []
        for message in messages:
            before = len(events), len(rejected)
            self._decode_into(message, received_at, origins, events, rejected)
            invalid.append(len(events) == before[0] and len(rejected) > before[1])
        return Delivery(events=events, rejected=rejected), invalid

    def decode(self, message: Msg, received_at: datetime) -> Decoded:
        """One message → its events and rejections (line protocol may hold several)."""
        result = Decoded()
        self._decode_into(message, received_at, {}, result.events, result.rejected)
        return result

    def _decode_into(
        self,
        message: Msg,
        received_at: datetime,
        origins: dict[tuple[str, str | None, str | None], Origin],
        events: list[Event],
        rejected: list[RejectedEvent],
    ) -> None:
        s = self.settings
        raw_headers = message.headers
        headers = {k.lower(): v for k, v in raw_headers.items()} if raw_headers else {}
        subject = message.subject
        metadata: dict[str, Any] = {"subject": subject}
        delivery = _delivery_info(message.reply)
        message_time_ns: int | None = None
        if delivery is not None:
            metadata["stream_sequence"], metadata["delivered"], message_time_ns = delivery
        if headers and s.headers:
            kept = {h: headers[h.lower()] for h in s.headers if h.lower() in headers}
            if kept:
                metadata["headers"] = kept
        type_header = headers.get(s.type_header.lower()) if s.type_header and headers else None
        id_header = headers.get(s.id_header.lower()) if s.id_header and headers else None
        key = (subject, type_header, id_header)
        origin = origins.get(key)
        if origin is None:
            origin = Origin(
                received_via=self.name,
                received_at=received_at,
                default_type=type_header or self._type_for(subject),
                default_source=s.event_source or f"nats://{subject}",
                default_id=id_header,
                no_type=self._no_type(subject) if type_header is None else None,
            )
            origins[key] = origin
        data: bytes = message.data
        fmt = s.format
        try:
            if headers.get("ce-specversion") and fmt in ("auto", "cloudevents"):
                event = binary_cdevent(headers, data, origin, metadata)
                if event is None:
                    doc, structured = binary_cloudevent(headers, data)
                    event = normalise(doc, structured, origin, metadata, data_raw=data)
                events.append(event)
            elif fmt == "lineprotocol" or (fmt == "auto" and not _looks_like_json(data)):
                if not data.strip():
                    raise Invalid("empty message: no event, no line of line protocol")
                if message_time_ns is None:  # core NATS: the messages of one batch stay apart
                    message_time_ns = self._receive_clock()
                cc = ccmessage.decode(
                    data,
                    origin,
                    cluster=s.cluster,
                    metadata=metadata,
                    message_time_ns=message_time_ns,
                )
                events.extend(cc.events)
                rejected.extend(cc.rejected)
                self.metrics_skipped += cc.metrics_skipped
                if not (cc.events or cc.rejected or cc.metrics_skipped or cc.other_skipped):
                    self.comments_only += 1  # nothing to store, nothing wrong: acked
            else:
                decoded, refused = events_from_json(data, origin, metadata)
                events.extend(decoded)
                rejected.extend(refused)
        except Invalid as exc:
            rejected.append(origin.reject(str(exc), data, None, metadata))

    def _no_type(self, subject: str) -> str | None:
        """Why plain JSON without the type header has no type (when the header is expected)."""
        s = self.settings
        if not s.type_header:
            return None
        why = f"type: the {s.type_header} header is missing"
        if s.subject_types:
            why += f", and no subject_types pattern matches {subject!r}"
        return why

    def _receive_clock(self) -> int:
        """Now in ns since the epoch, never the same twice: a core NATS message's time for
        its lines without a timestamp (part of their id), distinct within a batch."""
        self._clock = max(time.time_ns(), self._clock + 1)
        return self._clock

    def _type_for(self, subject: str) -> str | None:
        s = self.settings
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


def _within(subjects: str, wider: str) -> bool:
    """Whether every subject `subjects` matches (wildcards included) also matches `wider`."""
    parts, outer = subjects.split("."), wider.split(".")
    for index, part in enumerate(outer):
        if part == ">":
            return len(parts) > index
        if index >= len(parts) or parts[index] == ">":
            return False
        if part not in ("*", parts[index]):
            return False
    return len(parts) == len(outer)


def _looks_like_json(data: bytes) -> bool:
    head = data.removeprefix(BOM).lstrip()[:1]
    return head in (b"{", b"[")


def _delivery_info(reply: str) -> tuple[int, int, int] | None:
    """(stream sequence, delivery count, stream time in ns) from a JetStream reply subject,
    else None. The stream time is when the stream stored the message: the same on every
    redelivery.

    `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`,
    or with `<domain>.<account hash>` after `$JS.ACK` (and a token at the end) since 2.9.
    """
    if not reply.startswith("$JS.ACK."):
        return None
    tokens = reply.split(".")
    offset = 0 if len(tokens) == 9 else 2
    try:
        return int(tokens[5 + offset]), int(tokens[4 + offset]), int(tokens[7 + offset])
    except (IndexError, ValueError):
        return None


async def _ack_all(client: Client, messages: list[Msg]) -> None:
    """Ack the messages with one write to the connection.

    Through nats-py, every ack is a publish: subject checks, a pending-buffer append and a
    flush kick, ~6 µs each (9% of the collector's CPU in bench nats). Here the same PUB
    frames (an empty payload is an ack) are queued at once on the client's pending buffer,
    which its flusher task writes. A reconnecting client takes the public path.
    """
    send = getattr(client, "_send_command", None)
    flush = getattr(client, "_flush_pending", None)
    if send is None or flush is None or not client.is_connected:
        for message in messages:  # the public way, one by one (and reconnect buffering)
            await _quietly(message.ack())
        return
    frames = b"".join([b"PUB %s 0\r\n\r\n" % m.reply.encode() for m in messages])
    try:
        await send(frames)
        await flush()
    except (nats.errors.Error, OSError) as exc:
        log.debug("nats_ack_failed", error=str(exc))


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except (nats.errors.Error, nats.js.errors.Error) as exc:
        log.debug("nats_ack_failed", error=str(exc))

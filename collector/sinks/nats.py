"""The nats sink: each event as a structured CloudEvent on a subject made from a template,
published on core NATS (flushed per batch) or with JetStream acknowledgements; what failed is
published again with exponential backoff, up to the retries."""

from __future__ import annotations

import hashlib
import re

import anyio
import nats.errors
import nats.js.errors
import orjson
import structlog
from nats.aio.client import Client

from collector.errors import CollectorError
from collector.events import Event, to_cloudevent
from collector.natsconn import connect, describe
from collector.ports import Batch, BatchResult
from collector.settings import NatsSinkSettings

log = structlog.get_logger("collector.sinks.nats")


class NatsSinkError(CollectorError):
    """Publishing failed (no stream for the subject, a timeout, no connection)."""


Message = tuple[str, bytes, str]  # subject, data, JetStream message id (of the identity)

HEADERS = {"content-type": "application/cloudevents+json"}
_NOT_IN_TOKEN = re.compile(r"[\s*>]")
_EMPTY_TOKENS = re.compile(r"\.{2,}")
PUBLISH_CONCURRENCY = 256


class NatsSink:
    def __init__(self, name: str, settings: NatsSinkSettings) -> None:
        self.name = name
        self.settings = settings
        self.buffer = settings.buffer
        self.healthy = True
        self._client: Client | None = None

    async def open(self) -> None:
        self._client = await connect(self.settings, self.name, self._connection_changed)

    def _connection_changed(self, connected: bool) -> None:
        # Health follows the connection, not the last write: a failed write must not leave
        # the sink unhealthy (sources would stop and never give it another write).
        self.healthy = connected

    async def close(self) -> None:
        if self._client is not None and self._client.is_connected:
            await self._client.drain()

    async def _publish(self, messages: list[Message]) -> tuple[list[Message], str]:
        """Publish; the messages left to publish again, and why ("" when none are left)."""
        assert self._client is not None, "open() first"
        client = self._client
        if not self.settings.jetstream:
            sent = 0
            try:
                for subject, data, _ in messages:
                    await client.publish(subject, data, headers=HEADERS)
                    sent += 1
                await client.flush()
            except (nats.errors.Error, TimeoutError) as exc:
                # What the client took stays in its buffer and goes out once it reconnects:
                # publish again only the rest (none: the next attempt only flushes).
                return messages[sent:], describe(exc)
            return [], ""
        # JetStream: many publishes in flight, each acknowledged; after a failure the rest
        # are not tried (they would most likely fail the same way).
        js = client.jetstream()
        limiter = anyio.Semaphore(PUBLISH_CONCURRENCY)
        left: list[Message] = []
        problems: list[str] = []

        async def publish(message: Message) -> None:
            async with limiter:
                if problems:
                    left.append(message)
                    return
                subject, data, msg_id = message
                try:
                    # The id lets the stream drop a copy of a publish whose ack was lost.
                    await js.publish(subject, data, headers={**HEADERS, "Nats-Msg-Id": msg_id})
                except nats.js.errors.NoStreamResponseError:
                    left.append(message)
                    problems.append(
                        f"no JetStream stream captures subject {subject}: "
                        "create one, or set jetstream = false"
                    )
                except (nats.errors.Error, TimeoutError) as exc:
                    left.append(message)
                    problems.append(f"subject {subject}: {describe(exc)}")

        async with anyio.create_task_group() as tg:
            for message in messages:
                tg.start_soon(publish, message)
        return left, problems[0] if problems else ""

    def subject(self, event: Event) -> str:
        parts = {
            "family": event.family,
            "type": event.type,
            "source": event.source,
            "subject": event.subject or "_",
            "id": event.id,
        }
        # Values never add wildcards, whitespace or empty tokens: the server would refuse
        # the subject (and a bad type must not be able to break the connection).
        return self.settings.subject.format_map(
            {
                k: _EMPTY_TOKENS.sub(".", _NOT_IN_TOKEN.sub("_", v)).strip(".") or "_"
                for k, v in parts.items()
            }
        )

    async def write(self, batch: Batch) -> BatchResult:
        assert self._client is not None, "open() first"
        s = self.settings
        messages = [
            (self.subject(e), orjson.dumps(to_cloudevent(e)), _message_id(e)) for e in batch.events
        ]
        left = messages
        delay = min(s.backoff_s, s.max_backoff_s)
        attempts = 0
        try:
            while True:
                left, problem = await self._publish(left)
                attempts += 1
                if not problem:
                    return BatchResult(stored=len(messages), duplicates=frozenset(), rejected=0)
                if attempts > s.retries:
                    what = (
                        f"{len(left)} of {len(messages)} events not published"
                        if left
                        else f"{len(messages)} events not confirmed by the server"
                    )
                    raise NatsSinkError(
                        f"nats sink {self.name}: {problem} ({what} after {attempts} attempts)"
                    )
                # Unhealthy while retrying: sources hold back, as for the http sink.
                self.healthy = False
                log.warning(
                    "nats_sink_retry",
                    sink=self.name,
                    attempt=attempts,
                    retry_in_s=delay,
                    unpublished=len(left),
                    error=problem,
                )
                await anyio.sleep(delay)
                delay = min(delay * 2, s.max_backoff_s)
        finally:
            self.healthy = self._client.is_connected


def _message_id(event: Event) -> str:
    """A header-safe id of the event's identity (source, type, id)."""
    identity = "\n".join((event.source, event.type, event.id)).encode()
    return hashlib.sha256(identity).hexdigest()

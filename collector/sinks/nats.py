"""The nats sink: each event as a structured CloudEvent on a subject made from a template,
published on core NATS (flushed per batch) or with JetStream acknowledgements."""

from __future__ import annotations

import re

import anyio
import nats.errors
import orjson
import structlog
from nats.aio.client import Client

from collector.errors import CollectorError
from collector.events import Event, to_cloudevent
from collector.natsconn import connect
from collector.ports import Batch, BatchResult
from collector.settings import NatsSinkSettings

log = structlog.get_logger("collector.sinks.nats")


class NatsSinkError(CollectorError):
    """Publishing failed (no stream for the subject, a timeout, no connection)."""


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

    async def _publish_acked(
        self, client: Client, messages: list[tuple[str, bytes]], headers: dict[str, str]
    ) -> None:
        """JetStream publishes, many in flight; the first failure fails the batch."""
        js = client.jetstream()
        limiter = anyio.Semaphore(PUBLISH_CONCURRENCY)
        failures: list[BaseException] = []

        async def publish(subject: str, data: bytes) -> None:
            async with limiter:
                if failures:
                    return
                try:
                    await js.publish(subject, data, headers=headers)
                except (nats.errors.Error, TimeoutError) as exc:
                    failures.append(exc)

        async with anyio.create_task_group() as tg:
            for subject, data in messages:
                tg.start_soon(publish, subject, data)
        if failures:
            raise failures[0]

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
        client = self._client
        messages = [(self.subject(e), orjson.dumps(to_cloudevent(e))) for e in batch.events]
        headers = {"content-type": "application/cloudevents+json"}
        try:
            if self.settings.jetstream:
                await self._publish_acked(client, messages, headers)
            else:
                for subject, data in messages:
                    await client.publish(subject, data, headers=headers)
                await client.flush()
        except (nats.errors.Error, TimeoutError) as exc:
            raise NatsSinkError(f"nats sink {self.name}: {str(exc) or type(exc).__name__}") from exc
        return BatchResult(stored=len(messages), duplicates=frozenset(), rejected=0)

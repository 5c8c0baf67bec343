"""The JetStream source in-process against a real server: nak with delay when a required sink
gives up, and what happens to messages in flight at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import nats
import orjson
import pytest
from nats.aio.msg import Msg
from nats.js import api as js_api
from psycopg import Connection
from structlog.testing import capture_logs

from collector.demo_events import payloads as cdevent_payloads
from collector.metrics import Metrics
from collector.pipeline import Pipeline, PipelineLimits
from collector.ports import Batch, BatchResult, Sink
from collector.settings import NatsSourceSettings
from collector.sinks.memory import MemorySink
from collector.sinks.postgres import PostgresSink
from collector.sources.nats import FETCH_TIMEOUT_S, NatsSource
from tests.nats_fixtures import NatsNames, NatsServer

pytestmark = pytest.mark.anyio


def source(
    server: NatsServer, names: NatsNames, metrics: Metrics | None = None, **settings: Any
) -> NatsSource:
    config = NatsSourceSettings(
        type="nats",
        servers=[server.url],
        subjects=[names.wildcard],
        stream=names.stream,
        durable=names.durable,
        **settings,
    )
    return NatsSource("bus", config, metrics=metrics)


@asynccontextmanager
async def running(
    nats_source: NatsSource, *sinks: Sink, limits: PipelineLimits | None = None
) -> AsyncIterator[tuple[anyio.Event, anyio.CancelScope]]:
    """Pipeline and source running (the sinks all required); yields the source's stop event
    and cancel scope.

    On exit the source is stopped and awaited, then the pipeline is torn down."""
    limits = limits or PipelineLimits(batch_size=100, linger_s=0.005)
    pipeline = Pipeline(list(sinks), [], limits)
    stop, finished = anyio.Event(), anyio.Event()
    scope = anyio.CancelScope()

    async def run_source() -> None:
        try:
            with scope:
                await nats_source.run(pipeline, stop)
        finally:
            finished.set()

    async with anyio.create_task_group() as tg:
        await tg.start(pipeline.run)
        tg.start_soon(run_source)
        yield stop, scope
        stop.set()
        await finished.wait()
        await pipeline.close()
        tg.cancel_scope.cancel()


async def until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


async def test_a_failed_delivery_is_naked_then_redelivered_and_stored_once(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    await anyio.to_thread.run_sync(nats_server.create_stream, nats_names)
    payloads = cdevent_payloads(50, seed=71)
    await anyio.to_thread.run_sync(
        nats_server.publish, [(f"{nats_names.prefix}.cd", p, None) for p in payloads]
    )
    sink = FailingOnce()  # the first write fails: the required sink gave up on that batch
    nats_source = source(nats_server, nats_names, nak_delay_s=0.3, fetch_batch=100)
    async with running(nats_source, sink) as (stop, _):
        await until(lambda: len(sink.events) == len(payloads))
        stop.set()
    # The messages of the failed write (all 50, or the first of them when they arrived in
    # several pieces) were naked, delivered again and stored then; each event is stored once.
    assert 0 < nats_source.naked == len(sink.failed)
    delivered = {e.id: e.metadata["delivered"] for e in sink.events.values()}
    assert {delivered[i] for i in sink.failed} == {2}
    ids = {orjson.loads(p)["context"]["id"] for p in payloads}
    assert delivered.keys() == ids
    info = await anyio.to_thread.run_sync(
        nats_server.consumer, nats_names.stream, nats_names.durable
    )
    assert (info.num_pending, info.num_ack_pending) == (0, 0)


class FailingOnce(MemorySink):
    """Its first write fails; it remembers the ids that write carried."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = 1
        self.failed: set[str] = set()

    async def write(self, batch: Batch) -> BatchResult:
        if self.fail_next:
            self.failed = {e.id for e in batch.events}
        return await super().write(batch)


class StuckSink:
    """A required sink that never commits (a database that hangs)."""

    name = "stuck"
    buffer = 0
    healthy = True

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def write(self, batch: Batch) -> BatchResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def test_past_the_shutdown_timeout_messages_in_flight_are_handed_back(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    await anyio.to_thread.run_sync(nats_server.create_stream, nats_names)
    payloads = cdevent_payloads(30, seed=72)
    await anyio.to_thread.run_sync(
        nats_server.publish, [(f"{nats_names.prefix}.cd", p, None) for p in payloads]
    )
    nats_source = source(nats_server, nats_names, ack_wait_s=300)

    def consumer() -> Any:
        return nats_server.consumer(nats_names.stream, nats_names.durable)

    async with running(nats_source, StuckSink()) as (stop, scope):
        await until(lambda: nats_source.received == len(payloads))
        stop.set()  # the source stops fetching but waits for the commit that never comes
        # Its fetch loops end once their last pull request expired; a request still open at
        # the nak would get the messages back (and lose them to a closed connection until
        # ack_wait).
        await anyio.sleep(FETCH_TIMEOUT_S + 0.5)
        info = await anyio.to_thread.run_sync(consumer)
        assert info.num_ack_pending == len(payloads)
        scope.cancel()  # what collector does once shutdown_timeout_s has passed
    # Nak'ed without delay: another consumer gets them at once, long before ack_wait (300 s).
    assert nats_source.naked == len(payloads)

    async def fetch_again(client: Any) -> list[int]:
        subscription = await client.jetstream().pull_subscribe_bind(
            durable=nats_names.durable, stream=nats_names.stream
        )
        messages = await subscription.fetch(len(payloads), timeout=5)
        for message in messages:
            await message.ack()
        return [m.metadata.num_delivered for m in messages]

    redelivered = await anyio.to_thread.run_sync(nats_server.run, fetch_again)
    assert redelivered == [2] * len(payloads)


async def test_line_protocol_without_timestamps_is_stored_once_however_often_delivered(
    nats_server: NatsServer, nats_names: NatsNames, database_url: str, db: Connection[Any]
) -> None:
    await anyio.to_thread.run_sync(nats_server.create_stream, nats_names)
    down = 'node_down,cluster=fritz,hostname=n1 event="unreachable"'
    text = f'{down}\n{down}\nnode_up,cluster=fritz,hostname=n1 event="back"\n'
    await anyio.to_thread.run_sync(
        nats_server.publish, [(f"{nats_names.prefix}.cc", text.encode(), None)]
    )
    # The first delivery is committed, then fails (as when the ack is lost or the other
    # required sink gave up): it is naked and delivered again, the same lines a second time.
    sink = CommitsThenFails("db", database_url, pool_size=1)
    nats_source = source(nats_server, nats_names, nak_delay_s=0.1)
    async with running(nats_source, sink):
        await until(lambda: len(sink.stored) == 2)
    assert nats_source.naked == 1
    rows = db.execute(
        "select id, time, metadata->>'delivered' from api.events order by metadata->>'line'"
    ).fetchall()
    # Two identical lines are two events, each stored once: the second delivery had the
    # same ids (the message's stream time, not the receive time, is in them).
    assert len(rows) == 3
    assert [(r.stored, len(r.duplicates)) for r in sink.stored] == [(3, 0), (0, 3)]
    assert {r[2] for r in rows} == {"1"}
    assert len({r[1] for r in rows}) == 1  # the time the stream stored the message


class CommitsThenFails(PostgresSink):
    """Its first write commits, then fails; it remembers the results of its writes."""

    def __init__(self, name: str, url: str, pool_size: int) -> None:
        super().__init__(name, url, pool_size)
        self.stored: list[BatchResult] = []

    async def write(self, batch: Batch) -> BatchResult:
        result = await super().write(batch)
        self.stored.append(result)
        if len(self.stored) == 1:
            raise ConnectionError("committed, but the answer was lost")
        return result


async def test_pull_requests_refused_at_once_are_not_repeated_at_once(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    # An existing consumer takes one waiting pull request: the second fetcher's requests are
    # refused at once (409 Exceeded MaxWaiting), each time it asks.
    await anyio.to_thread.run_sync(nats_server.create_stream, nats_names)
    consumer = js_api.ConsumerConfig(
        durable_name=nats_names.durable, ack_policy=js_api.AckPolicy.EXPLICIT, max_waiting=1
    )
    requests = 0

    async def count(message: Msg) -> None:
        nonlocal requests
        requests += 1

    client = await nats.connect(nats_server.url)
    try:
        await client.jetstream().add_consumer(nats_names.stream, config=consumer)
        await client.subscribe(
            f"$JS.API.CONSUMER.MSG.NEXT.{nats_names.stream}.{nats_names.durable}", cb=count
        )
        nats_source = source(nats_server, nats_names, fetchers=2)
        with capture_logs() as logs:
            async with running(nats_source, MemorySink()):
                await until(lambda: any(e["event"] == "nats_pull_ended" for e in logs))
                await anyio.sleep(3)
    finally:
        await client.close()
    (ended,) = [e for e in logs if e["event"] == "nats_pull_ended"]  # once, not per request
    assert ended["status"].startswith("409 Exceeded MaxWaiting")
    # Without a pause between them, such requests went out thousands of times a second.
    assert requests < 50


class GatedSink(MemorySink):
    """A required sink that commits nothing until its gate opens (a slow database)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()

    async def write(self, batch: Batch) -> BatchResult:
        await self.gate.wait()
        return await super().write(batch)


async def test_core_drops_are_logged_while_they_happen_counted_and_reported_at_stop(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    metrics = Metrics()
    config = NatsSourceSettings(
        type="nats",
        servers=[nats_server.url],
        subjects=[nats_names.wildcard],
        mode="core",
        fetch_batch=1,
    )
    nats_source = NatsSource("bus", config, metrics=metrics)
    sink = GatedSink()
    payloads = cdevent_payloads(50, seed=73)
    limits = PipelineLimits(queue_size=1, batch_size=1, linger_s=0)
    with capture_logs() as logs:
        async with running(nats_source, sink, limits=limits):
            await until(lambda: any(e["event"] == "nats_subscribed" for e in logs))
            # The pipeline holds one, the source a few: most of the 50 find no room.
            await anyio.to_thread.run_sync(
                nats_server.publish, [(f"{nats_names.prefix}.cd", p, None) for p in payloads]
            )
            await until(lambda: nats_source.dropped >= 40)
            sink.gate.set()
            await until(lambda: nats_source.dropped + nats_source.received == len(payloads))

            def logged() -> int:
                return sum(e["dropped"] for e in logs if e["event"] == "nats_core_dropped")

            await until(lambda: logged() == nats_source.dropped)  # the burst's end too
    assert len(sink.events) == nats_source.received == len(payloads) - nats_source.dropped
    (stopped,) = [e for e in logs if e["event"] == "nats_source_stopped"]
    assert stopped["dropped"] == nats_source.dropped
    body, _ = metrics.render()
    assert f'collector_source_dropped_total{{source="bus"}} {nats_source.dropped}.0' in (
        body.decode()
    )
    received = f'collector_events_received_total{{source="bus"}} {nats_source.received}.0'
    assert received in body.decode()


async def test_jetstream_counts_the_events_it_received(
    nats_server: NatsServer, nats_names: NatsNames
) -> None:
    # collector_events_received_total, as for the other sources: valid events and rejections
    # handed to the pipeline (a metric line is neither).
    await anyio.to_thread.run_sync(nats_server.create_stream, nats_names)
    lines = b'a,cluster=c event="x" 1\nb,cluster=c log="y" 2\ncpu,cluster=c value=1 3\nbad\n'
    await anyio.to_thread.run_sync(nats_server.publish, [(f"{nats_names.prefix}.cc", lines, None)])
    metrics = Metrics()
    sink = MemorySink()
    async with running(source(nats_server, nats_names, metrics), sink) as (stop, _):
        await until(lambda: len(sink.events) == 2)
        stop.set()
    body, _ = metrics.render()
    assert 'collector_events_received_total{source="bus"} 3.0' in body.decode()

"""The pipeline: a bounded queue of deliveries, batched into group commits, fanned out to sinks.

A source awaits `deliver()`; it returns once every required sink committed the delivery (the
source may then ack), or raises DeliveryFailed. Optional sinks get a copy through a bounded
buffer and never block: what does not fit is dropped and counted. A sink that can never
deliver again (SinkClosed) stops the pipeline if required, and is switched off if optional.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from dataclasses import dataclass

import anyio
import structlog

from collector.errors import DeliveryFailed, PipelineClosed, SinkClosed
from collector.metrics import Metrics
from collector.ports import Batch, BatchResult, Delivery, Sink

log = structlog.get_logger("collector.pipeline")


@dataclass(frozen=True)
class PipelineLimits:
    queue_size: int = 20_000
    batch_size: int = 2_000
    linger_s: float = 0.02
    # Batches written at once. `collector run` uses settings.pipeline.writers (default 2): while
    # one batch waits for its commit (the WAL flush), the next one is already on its way.
    writers: int = 1


class Signal:
    """Wakes every task waiting on it. The pipeline's state changes between awaits only (one
    event loop thread), so no lock guards it: an anyio.Condition took its lock with a trip
    through the event loop for every delivery, ~15 µs per single-event HTTP request. The event
    is made only when someone waits: a notify with nobody waiting (a writer busy writing while
    requests arrive) costs nothing; an asyncio.Event, as anyio.Event() costs ~10 µs to make."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def notify_all(self) -> None:
        event = self._event
        if event is not None:
            self._event = None
            event.set()

    async def wait(self) -> None:
        event = self._event
        if event is None:
            event = self._event = asyncio.Event()
        await event.wait()


class Pipeline:
    def __init__(
        self,
        required: list[Sink],
        optional: list[Sink],
        limits: PipelineLimits,
        metrics: Metrics | None = None,
    ) -> None:
        if not required:
            raise ValueError("a pipeline needs at least one required sink")
        self.required = required
        self.optional = [OptionalSink(s) for s in optional]
        self.limits = limits
        self.metrics = metrics or Metrics()
        self.metrics.read_queue_depth(lambda: self._queued)
        for optional_sink in self.optional:
            self.metrics.read_dropped(optional_sink.sink.name, optional_sink.read_dropped)
        self._queue: deque[Delivery] = deque()
        self._queued = 0  # events + rejections waiting
        # Writers wait for deliveries, senders in enqueue() for room: two signals, so that an
        # offer wakes a writer only when it matters (the first delivery, or a full batch), not
        # once per request while the writer lingers for the batch to fill.
        self._arrived = Signal()
        self._room = Signal()
        self._closing = False
        self._stopped_by: SinkClosed | None = None  # a required sink closed for good
        self._writing: list[int] = []  # the sizes of the batches being written now

    @property
    def depth(self) -> int:
        return self._queued

    @property
    def saturated(self) -> bool:
        """True while the queue is full: new deliveries would wait."""
        return self._queued >= self.limits.queue_size

    @property
    def healthy(self) -> bool:
        """False while a required sink cannot commit, or once closing."""
        return not self._closing and all(s.healthy for s in self.required)

    @property
    def accepting(self) -> bool:
        """False while the queue is full or a required sink cannot commit."""
        return not self.saturated and self.healthy

    async def deliver(self, delivery: Delivery) -> Delivery:
        """Queue a delivery (waiting for room) and return once required sinks committed it."""
        await self.enqueue(delivery)
        return await wait_committed(delivery)

    def offer(self, delivery: Delivery) -> bool:
        """Queue a delivery if there is room now, without waiting; False if it would wait."""
        if self._closing:
            raise PipelineClosed("collector is shutting down")
        # A delivery larger than the queue is let in alone, so it cannot wait forever.
        if self._queued > 0 and self._queued + delivery.size > self.limits.queue_size:
            return False
        queue = self._queue
        queue.append(delivery)
        self._queued += delivery.size
        if (
            len(queue) == 1
            or self._queued >= self.limits.batch_size
            or (self._writing and self._queued >= max(self._writing))
        ):
            self._arrived.notify_all()
        return True

    async def enqueue(self, delivery: Delivery) -> None:
        """Queue a delivery, waiting for room; cancelling the wait leaves nothing queued."""
        while not self.offer(delivery):
            await self._room.wait()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Open the sinks, write batches until close() and the queue is empty, close the sinks.
        Raises SinkClosed when a required sink can never deliver again."""
        for sink in [*self.required, *(o.sink for o in self.optional)]:
            await sink.open()
        try:
            async with anyio.create_task_group() as tg:
                for optional in self.optional:
                    tg.start_soon(optional.run)
                task_status.started()
                await self._write_batches()
                for optional in self.optional:
                    optional.close()
        finally:
            for sink in [*self.required, *(o.sink for o in self.optional)]:
                with anyio.CancelScope(shield=True):
                    await sink.close()
        if self._stopped_by is not None:
            raise self._stopped_by

    async def close(self) -> None:
        """Stop accepting deliveries; run() returns once everything queued is written."""
        self._closing = True
        self._arrived.notify_all()
        self._room.notify_all()

    async def _write_batches(self) -> None:
        if self.limits.writers == 1:
            await self._writer()
            return
        async with anyio.create_task_group() as tg:
            for _ in range(self.limits.writers):
                tg.start_soon(self._writer)

    async def _writer(self) -> None:
        while True:
            deliveries = await self._next_batch()
            if not deliveries:
                return
            await self._write(deliveries)

    async def _next_batch(self) -> list[Delivery]:
        """The deliveries of the next batch; [] only when closing with nothing left."""
        limits = self.limits
        while True:
            while not self._queue and not self._closing:
                await self._arrived.wait()
            if not self._queue:
                return []
            # Group commit: while another batch is being written, wait up to linger for this
            # one to fill — to the batch size, or to the size of the largest batch in flight,
            # whichever comes first. With no write in flight the database is idle and waiting
            # would only add latency: take what is there. So a lone request is written at
            # once; under load, batches fill while others commit, and two writers overlap
            # (each commit's WAL flush hidden behind the other's work) with batches of about
            # the same size instead of taking turns.
            deadline = time.monotonic() + limits.linger_s
            while (
                self._queue
                and self._writing
                and self._queued < min(limits.batch_size, max(self._writing))
                and not self._closing
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                with anyio.move_on_after(remaining):
                    await self._arrived.wait()
            if self._queue:
                break
            # Another writer lingering on the same queue took it all: wait for more. (An
            # empty answer here used to end this writer for good: `writers = 2` became 1.)
        # Take what is queued, up to a batch. (Idle writers used to share it, a batch each:
        # under single-event HTTP load that halved batches that had just filled, ~21 events a
        # commit instead of ~30, for more commits and less throughput. The other writer
        # lingers instead, and its batch fills while this one commits.)
        taken: list[Delivery] = []
        size = 0
        while self._queue and (not taken or size + self._queue[0].size <= limits.batch_size):
            delivery = self._queue.popleft()
            taken.append(delivery)
            size += delivery.size
        self._queued -= size
        self._room.notify_all()  # for senders waiting in enqueue()
        if self._queue:  # left over for the other writers
            self._arrived.notify_all()
        return taken

    async def _write(self, deliveries: list[Delivery]) -> None:
        size = sum(d.size for d in deliveries)
        self._writing.append(size)
        try:
            await self._write_batch(deliveries)
        finally:
            self._writing.remove(size)
            self._arrived.notify_all()  # a writer lingering for this write to end can go

    async def _write_batch(self, deliveries: list[Delivery]) -> None:
        batch = Batch()
        for delivery in deliveries:
            batch.events.extend(delivery.events)
            batch.rejected.extend(delivery.rejected)
        started = time.perf_counter()
        results: dict[str, BatchResult] = {}
        error: BaseException | None = None
        try:
            if len(self.required) == 1:  # the common case, without a task group's cost
                await _write_one(self.required[0], batch, results)
            else:
                async with anyio.create_task_group() as tg:
                    for sink in self.required:
                        tg.start_soon(_write_one, sink, batch, results)
        except Exception as exc:  # a required sink gave up: fail the deliveries, keep running
            error = _sink_error(exc)
            if isinstance(error, SinkClosed):
                self._stop(error)
            else:
                log.error("batch_failed", events=len(batch.events), error=str(error))
        if error is None:
            first = results[self.required[0].name]  # the database's, when one is required
            _attribute_counts(deliveries, first)
            self._count(batch, first, time.perf_counter() - started)
            log.info(
                "batch_stored",
                events=len(batch.events),
                stored=first.stored,
                duplicates=len(first.duplicates),
                rejected=first.rejected,
                deliveries=len(deliveries),
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            for optional in self.optional:
                optional.offer(batch)
        for delivery in deliveries:
            delivery.error = error
            delivery.done.set()

    def _stop(self, error: SinkClosed) -> None:
        """A required sink can never deliver again, so nothing can be acknowledged any more:
        fail what is queued and stop; run() then raises the error, and collector exits (what
        was not acknowledged is delivered again after a restart)."""
        if self._stopped_by is None:
            self._stopped_by = error
            log.error("required_sink_closed", error=str(error))
        self._closing = True
        while self._queue:
            delivery = self._queue.popleft()
            delivery.error = error
            delivery.done.set()
        self._queued = 0
        self._arrived.notify_all()
        self._room.notify_all()

    def _count(self, batch: Batch, result: BatchResult, seconds: float) -> None:
        events = batch.events
        per_source = Counter(e.received_via for e in events)
        duplicates = Counter(events[i].received_via for i in result.duplicates)
        refused = Counter(events[i].received_via for i in result.refused)
        self.metrics.batch_committed(
            size=len(events) + len(batch.rejected),
            seconds=seconds,
            stored=per_source - duplicates - refused,
            duplicates=duplicates,
            rejected=refused + Counter(r.received_via for r in batch.rejected),
        )


async def _write_one(sink: Sink, batch: Batch, results: dict[str, BatchResult]) -> None:
    results[sink.name] = await sink.write(batch)


def _sink_error(exc: BaseException) -> BaseException:
    # The task group wraps a sink's error in an ExceptionGroup: report the sink's own error.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _attribute_counts(deliveries: list[Delivery], result: BatchResult) -> None:
    # The batch is the deliveries' events end to end: map duplicate indexes back by offset.
    duplicates, refused = result.duplicates, result.refused
    offset = 0
    for delivery in deliveries:
        count = len(delivery.events)
        delivery.duplicates = _count_within(duplicates, offset, count)
        delivery.refused = _count_within(refused, offset, count)
        delivery.stored = count - delivery.duplicates - delivery.refused
        offset += count


def _count_within(indexes: frozenset[int], offset: int, count: int) -> int:
    """How many of indexes fall in [offset, offset + count); usually none are given at all."""
    if not indexes:
        return 0
    return sum(1 for i in range(offset, offset + count) if i in indexes)


async def wait_committed(delivery: Delivery) -> Delivery:
    """Wait until required sinks committed a queued delivery; DeliveryFailed if they gave up."""
    await delivery.done.wait()
    if delivery.error is not None:
        raise DeliveryFailed(str(delivery.error)) from delivery.error
    return delivery


class OptionalSink:
    """Wraps a sink that must never block the pipeline: a bounded buffer, drops counted.
    A sink that can never deliver again (SinkClosed) is switched off with one log line."""

    def __init__(self, sink: Sink, capacity: int | None = None) -> None:
        self.sink = sink
        self.capacity = capacity or sink.buffer or 10_000
        self.dropped = 0
        self.closed = False
        self._send, self._receive = anyio.create_memory_object_stream[Batch](math.inf)
        self._buffered = 0

    def offer(self, batch: Batch) -> None:
        size = len(batch.events)
        if self.closed:  # said once, in optional_sink_closed
            self.dropped += size
            return
        # A batch larger than the buffer is let in alone (as the pipeline's queue does), or a
        # buffer smaller than a batch would drop everything.
        if self._buffered > 0 and self._buffered + size > self.capacity:
            self.dropped += size
            log.warning(
                "optional_sink_dropped",
                sink=self.sink.name,
                events=size,
                dropped_total=self.dropped,
            )
            return
        self._buffered += size
        self._send.send_nowait(batch)

    def close(self) -> None:
        self._send.close()

    def read_dropped(self) -> int:
        return self.dropped

    async def run(self) -> None:
        try:
            async with self._receive:
                async for batch in self._receive:
                    await self._write(batch)
        except anyio.get_cancelled_exc_class():
            if self._buffered:  # shutdown ran out of time before these were written
                self.dropped += self._buffered
                log.warning(
                    "optional_sink_dropped",
                    sink=self.sink.name,
                    events=self._buffered,
                    dropped_total=self.dropped,
                    reason="shutdown",
                )
            raise

    async def _write(self, batch: Batch) -> None:
        size = len(batch.events)
        self._buffered -= size
        if self.closed:
            self.dropped += size
            return
        try:
            await self.sink.write(batch)
        except SinkClosed as exc:
            self.closed = True
            self.dropped += size
            log.warning(
                "optional_sink_closed",
                sink=self.sink.name,
                error=str(exc),
                events=size,
                dropped_total=self.dropped,
            )
        except Exception as exc:
            self.dropped += size
            log.warning(
                "optional_sink_failed",
                sink=self.sink.name,
                error=str(exc),
                events=size,
                dropped_total=self.dropped,
            )

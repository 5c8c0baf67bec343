"""The pipeline with in-memory sinks: group commit, exact counts, failures, backpressure, shutdown.

Nothing here measures time: a sink that waits on an anyio.Event holds a batch open, and
`wait_all_tasks_blocked()` tells when every other task has gone as far as it can.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from anyio.abc import TaskGroup
from structlog.testing import capture_logs

from collector.app import build_sinks
from collector.errors import DeliveryFailed, PipelineClosed, SinkClosed
from collector.events import Event, RejectedEvent
from collector.pipeline import Pipeline, PipelineLimits, wait_committed
from collector.ports import Batch, BatchResult, Delivery, Done
from collector.settings import Settings
from collector.sinks.memory import MemorySink

pytestmark = pytest.mark.anyio

NOW = datetime(2025, 1, 1, tzinfo=UTC)
# A linger no test waits out: batches close because they are full or the pipeline closes.
FOREVER = 3600.0


def event(event_id: str, source: str = "/test", event_type: str = "com.example.t") -> Event:
    return Event(
        id=event_id,
        source=source,
        type=event_type,
        time=NOW,
        family="raw",
        payload=f'{{"id": "{event_id}"}}'.encode(),
        received_at=NOW,
        received_via="test",
    )


def delivery(*ids: str) -> Delivery:
    return Delivery(events=[event(i) for i in ids])


class RecordingSink(MemorySink):
    """A MemorySink that remembers the event ids of every batch it was given."""

    def __init__(self, name: str = "memory") -> None:
        super().__init__(name)
        self.batches: list[list[str]] = []

    async def write(self, batch: Batch) -> BatchResult:
        self.batches.append([e.id for e in batch.events])
        return await super().write(batch)


class BlockingSink(RecordingSink):
    """Holds every write until `release` is set."""

    def __init__(self, name: str = "memory") -> None:
        super().__init__(name)
        self.entered = anyio.Event()
        self.release = anyio.Event()

    async def write(self, batch: Batch) -> BatchResult:
        self.batches.append([e.id for e in batch.events])
        self.entered.set()
        await self.release.wait()
        return await MemorySink.write(self, batch)


class Pending:
    """A deliver() call running in the background, observable without timing."""

    def __init__(self, tg: TaskGroup, pipeline: Pipeline, delivery: Delivery) -> None:
        self.delivery = delivery
        self.finished = anyio.Event()
        self.result: Delivery | None = None
        self.error: Exception | None = None
        tg.start_soon(self._run, pipeline)

    async def _run(self, pipeline: Pipeline) -> None:
        try:
            self.result = await pipeline.deliver(self.delivery)
        except Exception as exc:
            self.error = exc
        finally:
            self.finished.set()

    async def wait(self) -> Delivery:
        await self.finished.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Running:
    def __init__(self, tg: TaskGroup, pipeline: Pipeline) -> None:
        self.tg = tg
        self.pipeline = pipeline
        self.returned = anyio.Event()

    def deliver(self, delivery: Delivery) -> Pending:
        return Pending(self.tg, self.pipeline, delivery)

    async def start(self) -> None:
        await self.tg.start(self._run)

    async def _run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        await self.pipeline.run(task_status=task_status)
        self.returned.set()


@asynccontextmanager
async def pipeline_tasks(pipeline: Pipeline, *, start: bool = True) -> AsyncIterator[Running]:
    """A task group for the pipeline and its deliveries; closes the pipeline at the end."""
    with anyio.fail_after(10):  # a deadlock fails the test instead of hanging it
        async with anyio.create_task_group() as tg:
            running = Running(tg, pipeline)
            if start:
                await running.start()
            yield running
            await pipeline.close()


def limits(queue_size: int = 1000, batch_size: int = 100, linger_s: float = 0) -> PipelineLimits:
    return PipelineLimits(queue_size=queue_size, batch_size=batch_size, linger_s=linger_s)


async def test_a_pipeline_needs_a_required_sink() -> None:
    with pytest.raises(ValueError, match="at least one required sink"):
        Pipeline([], [MemorySink()], limits())


async def test_deliver_returns_only_after_the_sink_committed() -> None:
    sink = BlockingSink()
    pipeline = Pipeline([sink], [], limits())
    async with pipeline_tasks(pipeline) as running:
        pending = running.deliver(delivery("a", "b"))
        await sink.entered.wait()
        await wait_all_tasks_blocked()

        assert not pending.finished.is_set()
        assert sink.events == {}

        sink.release.set()
        done = await pending.wait()

        assert set(sink.events) == {
            ("/test", "com.example.t", "a"),
            ("/test", "com.example.t", "b"),
        }
        assert (done.stored, done.duplicates) == (2, 0)
        assert done is pending.delivery


async def test_small_deliveries_are_grouped_into_one_batch() -> None:
    sink = RecordingSink()
    pipeline = Pipeline([sink], [], limits(batch_size=3, linger_s=FOREVER))
    async with pipeline_tasks(pipeline) as running:
        pendings = [running.deliver(delivery(str(n))) for n in range(6)]
        for pending in pendings:
            await pending.wait()

    # Each batch closed when full, never by the (hour-long) linger.
    assert [len(b) for b in sink.batches] == [3, 3]
    assert sorted(i for b in sink.batches for i in b) == [str(n) for n in range(6)]


async def test_batches_are_cut_at_batch_size() -> None:
    sink = RecordingSink()
    pipeline = Pipeline([sink], [], limits(batch_size=2))
    async with pipeline_tasks(pipeline, start=False) as running:
        pendings = [running.deliver(delivery(str(n))) for n in range(5)]
        await wait_all_tasks_blocked()
        assert pipeline.depth == 5  # all queued before the writer starts

        await running.start()
        for pending in pendings:
            await pending.wait()

    assert sink.batches == [["0", "1"], ["2", "3"], ["4"]]


async def test_a_delivery_larger_than_a_batch_is_written_alone() -> None:
    sink = RecordingSink()
    pipeline = Pipeline([sink], [], limits(batch_size=3))
    async with pipeline_tasks(pipeline, start=False) as running:
        pendings = [
            running.deliver(delivery("a")),
            running.deliver(delivery("b1", "b2", "b3", "b4", "b5")),
            running.deliver(delivery("c")),
        ]
        await wait_all_tasks_blocked()
        await running.start()
        results = [await p.wait() for p in pendings]

    assert sink.batches == [["a"], ["b1", "b2", "b3", "b4", "b5"], ["c"]]
    assert [r.stored for r in results] == [1, 5, 1]


async def test_counts_are_exact_per_delivery_within_and_across_batches() -> None:
    sink = RecordingSink()
    pipeline = Pipeline([sink], [], limits())
    async with pipeline_tasks(pipeline, start=False) as running:
        first = running.deliver(delivery("a", "b"))
        second = running.deliver(delivery("b", "c", "a", "c"))
        third = running.deliver(delivery("d"))
        await wait_all_tasks_blocked()
        await running.start()
        one, two, three = first, second, third
        results = [await one.wait(), await two.wait(), await three.wait()]

        later = await pipeline.deliver(delivery("a", "e", "d"))

    assert sink.batches[0] == ["a", "b", "b", "c", "a", "c", "d"]  # one group commit
    assert [(r.stored, r.duplicates) for r in results] == [(2, 0), (1, 3), (1, 0)]
    assert (later.stored, later.duplicates) == (1, 2)
    assert len(sink.events) == 5


async def test_identity_is_source_type_and_id() -> None:
    sink = MemorySink()
    pipeline = Pipeline([sink], [], limits())
    same_id = Delivery(
        events=[
            event("x"),
            event("x", source="/other"),
            event("x", event_type="com.example.u"),
            event("x"),
        ]
    )
    async with pipeline_tasks(pipeline):
        done = await pipeline.deliver(same_id)

    assert (done.stored, done.duplicates) == (3, 1)


async def test_rejected_events_travel_with_their_delivery() -> None:
    sink = MemorySink()
    pipeline = Pipeline([sink], [], limits())
    rejected = RejectedEvent("context.id: missing", b"{}", NOW, "test", "line 2")
    async with pipeline_tasks(pipeline):
        done = await pipeline.deliver(Delivery(events=[event("a")], rejected=[rejected]))
        only_rejected = await pipeline.deliver(Delivery(events=[], rejected=[rejected]))

    assert (done.stored, done.duplicates) == (1, 0)
    assert (only_rejected.stored, only_rejected.duplicates) == (0, 0)
    assert sink.rejected == [rejected, rejected]


async def test_a_failing_required_sink_fails_exactly_its_deliveries() -> None:
    sink = RecordingSink()
    sink.fail_next = 1
    pipeline = Pipeline([sink], [], limits(batch_size=2))
    async with pipeline_tasks(pipeline, start=False) as running:
        pendings = [running.deliver(delivery(name)) for name in ("a", "b", "c")]
        await wait_all_tasks_blocked()
        await running.start()
        for pending in pendings:
            await pending.finished.wait()

        # The pipeline keeps running: a new delivery goes through.
        after = await pipeline.deliver(delivery("d"))

    failed = [p for p in pendings if p.error is not None]
    assert [p.delivery.events[0].id for p in failed] == ["a", "b"]
    for pending in failed:
        assert isinstance(pending.error, DeliveryFailed)
        assert str(pending.error) == "memory sink: simulated failure"
        assert isinstance(pending.error.__cause__, ConnectionError)
    assert pendings[2].error is None
    assert after.stored == 1
    assert sorted(key[2] for key in sink.events) == ["c", "d"]


async def test_the_failed_delivery_can_be_delivered_again() -> None:
    sink = MemorySink()
    sink.fail_next = 1
    pipeline = Pipeline([sink], [], limits())
    async with pipeline_tasks(pipeline):
        with pytest.raises(DeliveryFailed):
            await pipeline.deliver(delivery("a", "b"))
        again = await pipeline.deliver(delivery("a", "b"))

    assert (again.stored, again.duplicates) == (2, 0)


async def test_several_required_sinks_must_all_commit() -> None:
    good, bad = MemorySink("good"), MemorySink("bad")
    bad.fail_next = 1
    pipeline = Pipeline([good, bad], [], limits())
    async with pipeline_tasks(pipeline):
        with pytest.raises(DeliveryFailed):
            await pipeline.deliver(delivery("a"))
        done = await pipeline.deliver(delivery("b"))

    assert done.stored == 1
    assert set(bad.events) == {("/test", "com.example.t", "b")}


async def test_a_full_queue_makes_deliver_wait_until_the_sink_catches_up() -> None:
    sink = BlockingSink()
    pipeline = Pipeline([sink], [], limits(queue_size=2, batch_size=1))
    async with pipeline_tasks(pipeline) as running:
        writing = running.deliver(delivery("a"))
        await sink.entered.wait()  # "a" left the queue and is being written
        queued = [running.deliver(delivery("b")), running.deliver(delivery("c"))]
        await wait_all_tasks_blocked()
        assert pipeline.depth == 2

        blocked = running.deliver(delivery("d"))
        await wait_all_tasks_blocked()

        assert pipeline.depth == 2  # "d" is not in the queue: its deliver() waits for room
        assert not any(p.finished.is_set() for p in [writing, *queued, blocked])

        sink.release.set()
        for pending in [writing, *queued, blocked]:
            assert (await pending.wait()).stored == 1

    assert sorted(key[2] for key in sink.events) == ["a", "b", "c", "d"]
    assert pipeline.depth == 0


async def test_offer_queues_only_when_there_is_room_now() -> None:
    sink = BlockingSink()
    pipeline = Pipeline([sink], [], limits(queue_size=2, batch_size=1))
    async with pipeline_tasks(pipeline) as running:
        writing = running.deliver(delivery("a"))
        await sink.entered.wait()
        first, second, third = delivery("b"), delivery("c"), delivery("d")
        assert pipeline.offer(first)
        assert pipeline.offer(second)
        assert not pipeline.offer(third)  # the queue is full: nothing queued, nothing waits
        assert pipeline.depth == 2

        sink.release.set()
        assert (await writing.wait()).stored == 1
        for offered in (first, second):
            assert (await wait_committed(offered)).stored == 1
        await pipeline.close()
        with pytest.raises(PipelineClosed, match="shutting down"):
            pipeline.offer(third)

    assert sorted(key[2] for key in sink.events) == ["a", "b", "c"]


async def test_a_lone_delivery_is_written_at_once_when_no_batch_is_being_written() -> None:
    sink = RecordingSink()
    pipeline = Pipeline([sink], [], limits(batch_size=100, linger_s=FOREVER))
    async with pipeline_tasks(pipeline) as running:
        with anyio.fail_after(5):  # an idle database gains nothing from the (hour-long) linger
            await running.deliver(delivery("a")).wait()

    assert sink.batches == [["a"]]


async def test_deliveries_arriving_while_a_batch_is_written_are_grouped() -> None:
    sink = BlockingSink()
    two_writers = PipelineLimits(queue_size=100, batch_size=100, linger_s=FOREVER, writers=2)
    pipeline = Pipeline([sink], [], two_writers)
    async with pipeline_tasks(pipeline) as running:
        first = running.deliver(delivery("x", "y", "z"))
        await sink.entered.wait()  # one writer writes x, y, z and waits for its commit
        sink.entered = anyio.Event()
        later = [running.deliver(delivery(n)) for n in ("a", "b")]
        await wait_all_tasks_blocked()
        assert sink.batches == [["x", "y", "z"]]  # the other lingers: 2 < the 3 in flight
        later.append(running.deliver(delivery("c")))
        await sink.entered.wait()  # as many as in flight: written while x, y, z still are
        assert sink.batches == [["x", "y", "z"], ["a", "b", "c"]]
        sink.release.set()
        for pending in [first, *later]:
            await pending.wait()


async def test_an_idle_writer_takes_what_is_queued_up_to_a_batch() -> None:
    sink = RecordingSink()
    two_writers = PipelineLimits(queue_size=100, batch_size=100, linger_s=FOREVER, writers=2)
    pipeline = Pipeline([sink], [], two_writers)
    async with pipeline_tasks(pipeline, start=False) as running:
        pendings = [running.deliver(delivery(n)) for n in ("a", "b", "c", "d")]
        await wait_all_tasks_blocked()
        await running.start()
        for pending in pendings:
            await pending.wait()

    # One commit for all four, rather than two half batches.
    assert sink.batches == [["a", "b", "c", "d"]]


async def test_both_writers_keep_writing_after_racing_for_the_same_queue() -> None:
    linger = 0.25
    sink = BlockingSink()
    two_writers = PipelineLimits(queue_size=100, batch_size=100, linger_s=linger, writers=2)
    pipeline = Pipeline([sink], [], two_writers)
    async with pipeline_tasks(pipeline) as running:
        running.deliver(delivery("x"))
        await sink.entered.wait()
        running.deliver(delivery("a"))  # the other writer lingers while x is written
        await wait_all_tasks_blocked()
        sink.release.set()  # both writers now race for "a": one takes it, one finds nothing
        await anyio.sleep(2 * linger)
        sink.release = anyio.Event()
        sink.entered = anyio.Event()
        running.deliver(delivery("c"))
        await sink.entered.wait()  # one writer holds c ...
        sink.entered = anyio.Event()
        running.deliver(delivery("d"))
        with anyio.move_on_after(5):
            await sink.entered.wait()  # ... and the other is still there: d after its linger

        assert sink.batches == [["x"], ["a"], ["c"], ["d"]]
        sink.release.set()


async def test_a_delivery_larger_than_the_queue_is_let_in_alone() -> None:
    sink = MemorySink()
    pipeline = Pipeline([sink], [], limits(queue_size=2, batch_size=2))
    async with pipeline_tasks(pipeline):
        done = await pipeline.deliver(delivery("a", "b", "c", "d", "e"))

    assert done.stored == 5


async def test_close_drains_what_is_queued_then_run_returns() -> None:
    sink = BlockingSink()
    pipeline = Pipeline([sink], [], limits(batch_size=1))
    async with pipeline_tasks(pipeline) as running:
        writing = running.deliver(delivery("a"))
        await sink.entered.wait()
        queued = [running.deliver(delivery("b")), running.deliver(delivery("c", "d"))]
        await wait_all_tasks_blocked()

        await pipeline.close()
        await wait_all_tasks_blocked()
        assert not running.returned.is_set()  # still draining
        with pytest.raises(PipelineClosed, match="shutting down"):
            await pipeline.deliver(delivery("late"))

        sink.release.set()
        results = [await p.wait() for p in [writing, *queued]]
        await running.returned.wait()

    assert [r.stored for r in results] == [1, 1, 2]
    assert sorted(key[2] for key in sink.events) == ["a", "b", "c", "d"]
    assert sink.batches == [["a"], ["b"], ["c", "d"]]


async def test_close_does_not_wait_for_the_linger() -> None:
    sink = BlockingSink()
    two_writers = PipelineLimits(queue_size=100, batch_size=100, linger_s=FOREVER, writers=2)
    pipeline = Pipeline([sink], [], two_writers)
    async with pipeline_tasks(pipeline) as running:
        writing = running.deliver(delivery("x", "y"))
        await sink.entered.wait()
        sink.entered = anyio.Event()
        pending = running.deliver(delivery("a"))
        await wait_all_tasks_blocked()
        assert sink.batches == [["x", "y"]]  # the other writer lingers for a fuller batch

        await pipeline.close()
        with anyio.fail_after(5):
            await sink.entered.wait()  # it writes "a" now, while x is still being written
        sink.release.set()
        await writing.wait()
        await pending.wait()
        await running.returned.wait()

    assert sink.batches == [["x", "y"], ["a"]]


async def test_a_delivery_waiting_for_room_at_close_is_refused() -> None:
    sink = BlockingSink()
    pipeline = Pipeline([sink], [], limits(queue_size=1, batch_size=1))
    async with pipeline_tasks(pipeline) as running:
        writing = running.deliver(delivery("a"))
        await sink.entered.wait()
        queued = running.deliver(delivery("b"))
        waiting = running.deliver(delivery("c"))
        await wait_all_tasks_blocked()
        assert pipeline.depth == 1

        await pipeline.close()
        with pytest.raises(PipelineClosed):
            await waiting.wait()

        sink.release.set()
        assert (await writing.wait()).stored == 1
        assert (await queued.wait()).stored == 1

    assert sorted(key[2] for key in sink.events) == ["a", "b"]


async def test_close_before_any_delivery_lets_run_return() -> None:
    pipeline = Pipeline([MemorySink()], [], limits())
    async with pipeline_tasks(pipeline) as running:
        await pipeline.close()
        await running.returned.wait()


async def test_a_blocked_optional_sink_never_blocks_the_required_path() -> None:
    required = MemorySink("db")
    optional = BlockingSink("mirror")
    optional.buffer = 2
    pipeline = Pipeline([required], [optional], limits(batch_size=1))
    [mirror] = pipeline.optional
    async with pipeline_tasks(pipeline) as running:
        for name in ["a", "b", "c", "d", "e"]:
            done = await pipeline.deliver(delivery(name))
            assert done.stored == 1
            await wait_all_tasks_blocked()

        # "a" is being written, "b" and "c" fill the buffer of 2, "d" and "e" are dropped.
        assert optional.batches == [["a"]]
        assert mirror.dropped == 2
        assert len(required.events) == 5

        optional.release.set()
        await pipeline.close()
        await running.returned.wait()

    assert optional.batches == [["a"], ["b"], ["c"]]
    assert sorted(key[2] for key in optional.events) == ["a", "b", "c"]


async def test_an_optional_sink_takes_a_batch_larger_than_its_buffer_when_empty() -> None:
    required = MemorySink("db")
    optional = BlockingSink("mirror")
    optional.buffer = 3
    pipeline = Pipeline([required], [optional], limits())
    [mirror] = pipeline.optional
    async with pipeline_tasks(pipeline) as running:
        await pipeline.deliver(delivery("a1", "a2", "a3", "a4", "a5"))
        await optional.entered.wait()  # being written: the buffer is empty again
        await pipeline.deliver(delivery("b1", "b2", "b3", "b4"))  # let in alone
        await pipeline.deliver(delivery("c1"))  # no room next to it: dropped
        await wait_all_tasks_blocked()
        assert mirror.dropped == 1

        optional.release.set()
        await pipeline.close()
        await running.returned.wait()

    assert optional.batches == [["a1", "a2", "a3", "a4", "a5"], ["b1", "b2", "b3", "b4"]]


async def test_a_failing_optional_sink_counts_its_losses() -> None:
    required = MemorySink("db")
    optional = MemorySink("mirror")
    optional.fail_next = 1_000
    pipeline = Pipeline([required], [optional], limits())
    [mirror] = pipeline.optional
    async with pipeline_tasks(pipeline) as running:
        first = await pipeline.deliver(delivery("a", "b"))
        second = await pipeline.deliver(delivery("c"))
        await pipeline.close()
        await running.returned.wait()

    assert (first.stored, second.stored) == (2, 1)
    assert len(required.events) == 3
    assert optional.events == {}
    assert mirror.dropped == 3


async def test_an_optional_sink_gets_what_was_committed() -> None:
    required = MemorySink("db")
    optional = RecordingSink("mirror")
    pipeline = Pipeline([required], [optional], limits())
    required.fail_next = 1
    async with pipeline_tasks(pipeline) as running:
        with pytest.raises(DeliveryFailed):
            await pipeline.deliver(delivery("lost"))
        await pipeline.deliver(delivery("kept"))
        await pipeline.close()
        await running.returned.wait()

    assert optional.batches == [["kept"]]
    assert pipeline.optional[0].dropped == 0


async def test_done_wakes_every_waiter_and_forgets_one_that_gave_up() -> None:
    done = Done()
    woken: list[str] = []

    async def wait(name: str) -> None:
        await done.wait()
        woken.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait, "a")
        tg.start_soon(wait, "b")
        with anyio.move_on_after(0):  # a timeout: this waiter gives up before the set
            await done.wait()
        await wait_all_tasks_blocked()
        assert woken == []
        done.set()
    assert sorted(woken) == ["a", "b"]
    with anyio.fail_after(1):
        await done.wait()  # once set, no wait at all


class ClosedSink(BlockingSink):
    """Once released, can never deliver again (as a stdout sink whose reader went away)."""

    async def write(self, batch: Batch) -> BatchResult:
        self.batches.append([e.id for e in batch.events])
        self.entered.set()
        await self.release.wait()
        raise SinkClosed(f"sink {self.name}: stdout closed by the reader")


async def test_a_required_sink_closed_for_good_fails_what_is_queued_and_stops() -> None:
    sink = ClosedSink("out")
    pipeline = Pipeline([sink], [], limits(batch_size=1))
    stopped_by: list[SinkClosed] = []

    async def run(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            await pipeline.run(task_status=task_status)
        except SinkClosed as exc:
            stopped_by.append(exc)

    with capture_logs() as logs, anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(run)
            writing = Pending(tg, pipeline, delivery("a"))
            await sink.entered.wait()
            queued = Pending(tg, pipeline, delivery("b"))
            await wait_all_tasks_blocked()
            sink.release.set()

            for pending in (writing, queued):
                with pytest.raises(DeliveryFailed, match="stdout closed by the reader"):
                    await pending.wait()
            with pytest.raises(PipelineClosed):
                await pipeline.deliver(delivery("c"))

    assert [str(e) for e in stopped_by] == ["sink out: stdout closed by the reader"]
    assert sink.batches == [["a"]]  # "b" was failed without being written
    closed = [e for e in logs if e["event"] == "required_sink_closed"]
    assert [e["error"] for e in closed] == ["sink out: stdout closed by the reader"]


async def test_an_optional_sink_closed_for_good_is_switched_off_with_one_log_line() -> None:
    required = MemorySink("db")
    optional = ClosedSink("out")
    optional.release.set()
    pipeline = Pipeline([required], [optional], limits())
    [out] = pipeline.optional
    with capture_logs() as logs:
        async with pipeline_tasks(pipeline) as running:
            await pipeline.deliver(delivery("a", "b"))
            await wait_all_tasks_blocked()
            await pipeline.deliver(delivery("c"))
            await pipeline.close()
            await running.returned.wait()

    assert len(required.events) == 3
    assert optional.batches == [["a", "b"]]  # not asked again
    assert out.dropped == 3
    assert [e["event"] for e in logs if e.get("sink") == "out"] == ["optional_sink_closed"]


async def test_optional_events_left_when_shutdown_runs_out_of_time_are_counted() -> None:
    required = MemorySink("db")
    optional = BlockingSink("mirror")  # never released
    pipeline = Pipeline([required], [optional], limits(batch_size=1))
    [mirror] = pipeline.optional
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            await tg.start(pipeline.run)
            for name in ["a", "b", "c"]:
                await pipeline.deliver(delivery(name))
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()  # "a" is being written, "b" and "c" are buffered

    assert mirror.dropped == 2
    [dropped] = [e for e in logs if e["event"] == "optional_sink_dropped"]
    assert (dropped["events"], dropped["reason"]) == (2, "shutdown")


async def test_counts_come_from_the_first_required_sink_whichever_finishes_first() -> None:
    # The database (first) knows "a" already; a forwarding sink finishing first does not.
    database, forward = BlockingSink("db"), MemorySink("forward")
    database.events[("/test", "com.example.t", "a")] = event("a")
    pipeline = Pipeline([database, forward], [], limits())
    answers: list[Delivery] = []
    async with pipeline_tasks(pipeline), anyio.create_task_group() as senders:

        async def send() -> None:
            answers.append(await pipeline.deliver(delivery("a")))

        senders.start_soon(send)
        await database.entered.wait()
        while not forward.events:
            await anyio.sleep(0)
        database.release.set()

    assert (answers[0].stored, answers[0].duplicates) == (0, 1)


def test_the_database_is_the_first_required_sink() -> None:
    settings = Settings.model_validate(
        {
            "sinks": {
                "fwd": {"type": "http", "url": "http://127.0.0.1:9/in", "required": True},
                "db": {"type": "postgres"},
            }
        }
    )
    required, _ = build_sinks(settings, "postgresql://u@127.0.0.1:9/x")
    assert [s.name for s in required] == ["db", "fwd"]

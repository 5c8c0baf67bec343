"""The stdout sink on a real pipe: a reader that is slow, stops reading, or goes away."""

from __future__ import annotations

import os
import select
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime

import anyio
import orjson
import pytest
from anyio.abc import TaskGroup
from structlog.testing import capture_logs

from collector.errors import SinkClosed
from collector.events import Event
from collector.ports import Batch
from collector.sinks.stdout import StdoutSink

pytestmark = pytest.mark.anyio

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def batch(count: int, pad: int = 200) -> Batch:
    return Batch(
        [
            Event(
                id=f"e-{i}",
                source="/test",
                type="com.example.t",
                time=NOW,
                family="raw",
                payload=orjson.dumps({"n": i, "pad": "x" * (pad + i % 7)}),
                received_at=NOW,
                received_via="test",
            )
            for i in range(count)
        ]
    )


class Pipe:
    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        self._open = {self.read_end, self.write_end}

    def close(self, fd: int) -> None:
        if fd in self._open:
            self._open.remove(fd)
            os.close(fd)


@contextmanager
def pipe() -> Iterator[Pipe]:
    opened = Pipe()
    try:
        yield opened
    finally:
        for fd in (opened.read_end, opened.write_end):
            opened.close(fd)


@asynccontextmanager
async def opened(fd: int) -> AsyncIterator[StdoutSink]:
    sink = StdoutSink("out", fd=fd)
    await sink.open()
    try:
        yield sink
    finally:
        await sink.close()


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


class Reader(threading.Thread):
    """Reads a pipe to its end in a thread, once `go` is set (or given up waiting for)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        self.go = threading.Event()
        self.went = False
        self.data = b""

    def run(self) -> None:
        # Waiting gives up after a while, so that a test whose event loop is stuck fails
        # instead of hanging.
        self.went = self.go.wait(30)
        self.data = read_all(self.fd)


def ids(data: bytes) -> list[str]:
    """The event ids of the lines, each line parsed on its own (as `jq` would)."""
    assert data.endswith(b"\n")
    return [orjson.loads(line)["id"] for line in data.splitlines()]


def writable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(0))


async def write_until_the_pipe_is_full(
    sink: StdoutSink, fd: int, sent: Batch, tg: TaskGroup
) -> None:
    """Start writing `sent`; return once the pipe is full and the write waits for the reader
    (or, were the event loop blocked by the write, once the write is over)."""
    written = anyio.Event()

    async def write() -> None:
        await sink.write(sent)
        written.set()

    tg.start_soon(write)
    while writable(fd) and not written.is_set():
        await anyio.sleep(0.01)


async def test_a_reader_that_does_not_read_yet_never_holds_up_the_event_loop() -> None:
    sent = batch(2_000)  # ~450 kB: far more than a pipe holds
    with pipe() as p:
        reader = Reader(p.read_end)
        reader.start()
        async with opened(p.write_end) as sink, anyio.create_task_group() as tg:
            await write_until_the_pipe_is_full(sink, p.write_end, sent, tg)
            reader.go.set()  # by the event loop, while the write waits
        p.close(p.write_end)
        reader.join()

    assert reader.went
    assert ids(reader.data) == [e.id for e in sent.events]


async def test_lines_longer_than_a_pipe_write_go_out_whole() -> None:
    sent = batch(3, pad=200_000)
    with pipe() as p:
        reader = Reader(p.read_end)
        reader.go.set()
        reader.start()
        async with opened(p.write_end) as sink:
            await sink.write(sent)
        p.close(p.write_end)
        reader.join()

    assert ids(reader.data) == ["e-0", "e-1", "e-2"]


async def test_a_write_cut_short_leaves_whole_lines_and_counts_the_rest() -> None:
    sent = batch(2_000)
    with pipe() as p:
        reader = Reader(p.read_end)
        reader.start()
        with capture_logs() as logs:
            async with opened(p.write_end) as sink, anyio.create_task_group() as tg:
                await write_until_the_pipe_is_full(sink, p.write_end, sent, tg)
                tg.cancel_scope.cancel()  # shutdown ran out of time
        reader.go.set()
        p.close(p.write_end)
        reader.join()

    written = ids(reader.data)  # every line whole, then nothing
    assert written == [e.id for e in sent.events[: len(written)]]
    [unwritten] = [e for e in logs if e["event"] == "stdout_sink_unwritten"]
    assert (unwritten["sink"], unwritten["events"]) == ("out", len(sent.events) - len(written))


async def test_a_reader_that_goes_away_closes_the_sink() -> None:
    with pipe() as p:
        p.close(p.read_end)
        async with opened(p.write_end) as sink:
            with pytest.raises(SinkClosed, match="sink out: stdout closed by the reader"):
                await sink.write(batch(10))
            assert not sink.healthy
            with pytest.raises(SinkClosed):  # at once, from now on
                await sink.write(batch(1))

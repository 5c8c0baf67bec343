"""FolderSource running with the pipeline and in-memory sinks: backpressure while reading a big
file, and a file whose delivery fails waiting longer each time before it is read again."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from structlog.testing import capture_logs

from collector.pipeline import Pipeline, PipelineLimits
from collector.ports import Batch, BatchResult
from collector.settings import FolderSourceSettings
from collector.sinks.memory import MemorySink
from collector.sources.folder import READ_BYTES, FolderSource

pytestmark = pytest.mark.anyio


class GatedSink(MemorySink):
    """Holds every write until `open_gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.open_gate = anyio.Event()
        self.entered = anyio.Event()

    async def write(self, batch: Batch) -> BatchResult:
        self.entered.set()
        await self.open_gate.wait()
        return await super().write(batch)


def folder_source(inbox: Path, chunk_size: int = 100) -> FolderSource:
    settings = FolderSourceSettings(type="folder", path=inbox, settle_s=0, poll_interval_s=0.01)
    return FolderSource("inbox", settings, chunk_size)


@asynccontextmanager
async def running(folder: FolderSource, pipeline: Pipeline) -> AsyncIterator[None]:
    stop = anyio.Event()
    with anyio.fail_after(30):  # a deadlock fails the test instead of hanging it
        async with anyio.create_task_group() as tg:
            await tg.start(pipeline.run)
            tg.start_soon(folder.run, pipeline, stop)
            yield
            stop.set()
            await pipeline.close()


async def until(predicate: Callable[[], Any]) -> None:
    while not predicate():
        await anyio.sleep(0.01)


def lines(count: int) -> bytes:
    return b"".join(
        orjson.dumps({"specversion": "1.0", "id": f"e-{i}", "source": "/t", "type": "t.t"}) + b"\n"
        for i in range(count)
    )


async def test_a_big_json_lines_file_is_read_no_faster_than_the_sink_commits(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    total = 20_000
    data = lines(total)
    (inbox / "big.jsonl").write_bytes(data)
    sink = GatedSink()
    pipeline = Pipeline([sink], [], PipelineLimits(queue_size=500, batch_size=100, linger_s=0))
    folder = folder_source(inbox)

    async with running(folder, pipeline):
        await sink.entered.wait()
        await anyio.wait_all_tasks_blocked()  # the source waits for room in the queue
        # Read so far: what the queue holds, the batch being written, and at most one block.
        per_block = READ_BYTES // (len(data) // total) + 1
        assert folder.metrics.events_received <= 500 + 100 + 100 + per_block < total
        assert not (inbox / "done" / "big.jsonl").exists()

        sink.open_gate.set()
        await until(lambda: (inbox / "done" / "big.jsonl").exists())

    assert len(sink.events) == total
    assert folder.metrics.events_received == total
    assert not list((inbox / ".processing").iterdir())


async def test_a_file_whose_delivery_fails_waits_longer_each_time(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jsonl").write_bytes(lines(3))
    sink = MemorySink()
    sink.fail_next = 2
    folder = folder_source(inbox)

    with capture_logs() as logs:
        async with running(folder, Pipeline([sink], [], PipelineLimits(linger_s=0))):
            await until(lambda: (inbox / "done" / "a.jsonl").exists())

    failures = [e for e in logs if e["event"] == "file_delivery_failed"]
    assert [(e["file"], e["retry_in_s"]) for e in failures] == [("a.jsonl", 1.0), ("a.jsonl", 2.0)]
    assert len(sink.events) == 3
    assert not folder._backoff  # forgotten once the file is done


async def test_a_file_waiting_for_its_retry_is_not_picked_up(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.json").write_text("{}")
    (inbox / "b.json").write_text("{}")
    folder = folder_source(inbox)
    claim = folder._claim(inbox / "a.json")
    assert claim is not None

    folder._retry_later(claim, ConnectionError("down"))
    folder._release(claim)

    assert (inbox / "a.json").is_file()
    assert [p.name for p in folder._ready_files()] == ["b.json"]
    os.utime(inbox / "a.json")  # a new version of the file waits all the same
    assert [p.name for p in folder._ready_files()] == ["b.json"]


async def test_a_line_cut_off_mid_way_is_read_once_its_writer_finishes_it(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    first, second = lines(2).splitlines(keepends=True)
    sink = GatedSink()
    folder = folder_source(inbox)

    with (inbox / "cut.jsonl").open("wb") as writer:
        writer.write(first + second[:20])
        writer.flush()
        async with running(folder, Pipeline([sink], [], PipelineLimits(linger_s=0))):
            await sink.entered.wait()  # the first line is being committed
            writer.write(second[20:])
            writer.flush()
            sink.open_gate.set()
            await until(lambda: not list(folder.claimed_dir.iterdir()))

    assert (inbox / "done" / "cut.jsonl").exists()
    assert sorted(e.id for e in sink.events.values()) == ["e-0", "e-1"]
    assert sink.rejected == []


async def test_on_shutdown_a_big_file_is_left_for_the_next_start(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    total = 20_000
    (inbox / "big.jsonl").write_bytes(lines(total))
    sink = GatedSink()
    pipeline = Pipeline([sink], [], PipelineLimits(queue_size=500, batch_size=100, linger_s=0))
    folder = folder_source(inbox)
    stop = anyio.Event()
    returned = anyio.Event()

    async def watch() -> None:
        await folder.run(pipeline, stop)
        returned.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            await tg.start(pipeline.run)
            tg.start_soon(watch)
            await sink.entered.wait()
            await anyio.wait_all_tasks_blocked()
            stop.set()
            sink.open_gate.set()
            await returned.wait()  # without reading the rest of the file
            await pipeline.close()

    assert 0 < len(sink.events) < total
    [claim] = folder_source(inbox)._recover()
    assert claim.relative == "big.jsonl"
    assert claim.lock is not None
    os.close(claim.lock)

    again = MemorySink()
    async with running(folder_source(inbox), Pipeline([again], [], PipelineLimits())):
        await until(lambda: (inbox / "done" / "big.jsonl").exists())
    assert len(again.events) == total


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
async def test_json_lines_read_in_blocks_are_what_the_whole_file_decodes_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr("collector.sources.folder.READ_BYTES", block)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    good = lines(4).splitlines()
    data = b"\xef\xbb\xbf" + b"\n".join(
        [good[0], b"", b"{broken", good[1] + b"\r", b"   ", b"[1]", good[2], good[3]]
    )
    (inbox / "mixed.ndjson").write_bytes(data)
    sink = MemorySink()
    folder = folder_source(inbox, chunk_size=2)

    async with running(folder, Pipeline([sink], [], PipelineLimits(linger_s=0))):
        await until(lambda: (inbox / "failed" / "mixed.ndjson").exists())

    events, rejected = folder.decode(data, "mixed.ndjson", datetime.now(UTC))
    assert sorted((e.id, e.metadata["line"]) for e in sink.events.values()) == [
        (e.id, e.metadata["line"]) for e in events
    ]
    assert [(r.location, r.raw) for r in sink.rejected] == [(r.location, r.raw) for r in rejected]
    assert [r.location for r in rejected] == ["line 3", "line 6"]

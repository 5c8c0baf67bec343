"""The stdout sink: one compact JSON line per event, for `collector run | jq`.

A thread writes the lines, so a slow reader never holds up the event loop: `write()` waits
for its lines to be out (backpressure for a required sink; the pipeline buffers an optional
one and drops, counting, what does not fit). A reader that goes away closes the sink for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import select
import sys
import threading
from dataclasses import dataclass

import anyio
import orjson
import structlog

from collector.errors import SinkClosed
from collector.events import Event, payload_fragment
from collector.ports import Batch, BatchResult

log = structlog.get_logger("collector.sinks.stdout")

# Once poll() says a pipe is writable, a write of at most PIPE_BUF bytes takes it whole and at
# once (POSIX). Lines go out in such pieces, whole lines each, so the writer can stop between
# any two and never leaves half a line — unless a single line is longer than PIPE_BUF.
CHUNK = select.PIPE_BUF
# How often a writer waiting for the reader looks whether it should stop.
POLL_MS = 100


@dataclass(eq=False)
class _Lines:
    lines: list[bytes]
    done: asyncio.Future[None]
    written: int = 0  # lines out so far, set by the writer thread


class StdoutSink:
    def __init__(self, name: str, buffer: int = 10_000, fd: int | None = None) -> None:
        self.name = name
        self.buffer = buffer
        self.healthy = True
        self._fd = fd
        self._closed: SinkClosed | None = None
        self._jobs: queue.SimpleQueue[_Lines | None] = queue.SimpleQueue()
        self._pending: set[_Lines] = set()  # handed to the thread, not yet settled
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        if self._fd is None:
            if sys.stdout is None:  # Python started with file descriptor 1 closed
                self._close(SinkClosed(f"sink {self.name}: stdout is closed"))
                return
            self._fd = sys.stdout.fileno()
        self._loop = asyncio.get_running_loop()
        # A daemon: a thread blocked on a reader that never reads must not keep the process.
        self._thread = threading.Thread(
            target=self._run, args=(self._fd,), name=f"stdout sink {self.name}", daemon=True
        )
        self._thread.start()

    async def close(self) -> None:
        """Stop the writer; lines it could not write (shutdown cut a write short) are logged."""
        if self._thread is None:
            return
        self._stopping.set()
        self._jobs.put(None)
        await anyio.to_thread.run_sync(self._thread.join, 1.0)
        unwritten = sum(len(job.lines) - job.written for job in self._pending)
        if unwritten:
            log.warning("stdout_sink_unwritten", sink=self.name, events=unwritten)

    async def write(self, batch: Batch) -> BatchResult:
        if self._closed is not None:
            raise self._closed
        assert self._loop is not None, "write() before open()"
        job = _Lines([_line(e) for e in batch.events], self._loop.create_future())
        self._pending.add(job)
        self._jobs.put(job)
        await job.done
        return BatchResult(stored=len(batch.events), duplicates=frozenset(), rejected=0)

    # -- the writer thread -----------------------------------------------------------------

    def _run(self, fd: int) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        while (job := self._jobs.get()) is not None:
            error: Exception | None = self._closed
            if error is None:
                try:
                    if not self._write(fd, poller, job):
                        return  # stopping
                except BrokenPipeError:
                    error = SinkClosed(f"sink {self.name}: stdout closed by the reader")
                    self._close(error)  # here, so that the next batches fail at once
                except OSError as exc:
                    error = exc
            self._settle(job, error)

    def _write(self, fd: int, poller: select.poll, job: _Lines) -> bool:
        """Write the lines, whole lines in each piece; False if told to stop first."""
        lines = job.lines
        start = 0
        while start < len(lines):
            end, size = start + 1, len(lines[start])
            while end < len(lines) and size + len(lines[end]) <= CHUNK:
                size += len(lines[end])
                end += 1
            data = memoryview(b"".join(lines[start:end]))
            while data:
                while not poller.poll(POLL_MS):
                    if self._stopping.is_set():
                        return False
                if self._stopping.is_set():
                    return False
                # Short writes (a signal, a terminal, a socket) are taken up where they left off.
                data = data[os.write(fd, data[:CHUNK]) :]
            start = job.written = end
        return True

    def _settle(self, job: _Lines, error: Exception | None) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._done, job, error)

    def _done(self, job: _Lines, error: Exception | None) -> None:
        self._pending.discard(job)
        if job.done.done():  # cancelled
            return
        if error is None:
            job.done.set_result(None)
        else:
            job.done.set_exception(error)

    def _close(self, error: SinkClosed) -> None:
        if self._closed is None:
            self._closed = error
            self.healthy = False


def _line(event: Event) -> bytes:
    return orjson.dumps(
        {
            "id": event.id,
            "source": event.source,
            "type": event.type,
            "time": event.time,
            "subject": event.subject,
            "family": event.family,
            "received_via": event.received_via,
            "payload": payload_fragment(event.payload),
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )

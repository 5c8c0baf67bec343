"""The contracts between sources, the pipeline and sinks (ports); adapters depend only on these.

A source hands a `Delivery` to `deliver` and acks its transport once that returns. A sink
commits a `Batch` (deliveries merged for one group commit) and reports a `BatchResult`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from collector.events import Event, RejectedEvent


class Done:
    """A flag set once, awaitable. Neither anyio's Event (making one looks up the running
    async library, ~10 µs of a single-event HTTP request's CPU) nor asyncio's: nothing is
    made until someone waits, and a delivery with ack = "enqueue" is never waited for.
    Collector runs on asyncio only (uvicorn needs it)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def set(self) -> None:
        self._set = True
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)
        self._waiters = None

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters and waiter in self._waiters:  # cancelled (a timeout): forget it
                self._waiters.remove(waiter)


@dataclass(eq=False)
class Delivery:
    events: list[Event]
    rejected: list[RejectedEvent] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0
    refused: int = 0  # events a sink refused and stored as rejected (e.g. PostgreSQL errors)
    # Set once the required sinks committed it or gave up (then `error` says why).
    done: Done = field(default_factory=Done)
    error: BaseException | None = None

    @property
    def size(self) -> int:
        return len(self.events) + len(self.rejected)


@dataclass(slots=True)
class Batch:
    events: list[Event] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BatchResult:
    stored: int
    duplicates: frozenset[int]  # indexes into Batch.events of events already stored before
    rejected: int
    refused: frozenset[int] = frozenset()  # indexes of events the sink stored as rejected


class Sink(Protocol):
    name: str
    buffer: int  # optional sinks: events buffered before dropping
    healthy: bool  # False while writes fail (e.g. the database is unreachable)

    async def open(self) -> None: ...

    async def write(self, batch: Batch) -> BatchResult:
        """Commit the batch durably, or raise. Must be safe to call again with the same batch."""
        ...

    async def close(self) -> None: ...


class Intake(Protocol):
    """What the pipeline offers sources: deliver and wait for the commit, or queue only."""

    @property
    def healthy(self) -> bool:
        """False while a required sink cannot commit, or once closing."""
        ...

    @property
    def accepting(self) -> bool:
        """False while the queue is full or a required sink cannot commit."""
        ...

    async def deliver(self, delivery: Delivery) -> Delivery:
        """Queue (waiting for room) and return once required sinks committed; else raise."""
        ...

    async def enqueue(self, delivery: Delivery) -> None:
        """Queue a delivery, waiting for room; cancelling the wait queues nothing."""
        ...

    def offer(self, delivery: Delivery) -> bool:
        """Queue a delivery if there is room now; False (nothing queued) if it would wait."""
        ...


class Source(Protocol):
    name: str

    async def run(self, intake: Intake, stop: anyio.Event) -> None:
        """Receive input and hand it to `intake` until `stop` is set; then return."""
        ...


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"body larger than {limit} bytes")


@dataclass
class HttpRequest:
    """One HTTP request as the server hands it to an HTTP source; the body is read on demand."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    read_body: Callable[[int], Awaitable[bytes]]  # raises BodyTooLarge past the limit


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

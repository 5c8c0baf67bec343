"""The contracts between sources, the pipeline and sinks (ports); adapters depend only on these.

A source hands a `Delivery` to `deliver` and acks its transport once that returns. A sink
commits a `Batch` (deliveries merged for one group commit) and reports a `BatchResult`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from collector.events import Event, RejectedEvent


@dataclass(eq=False)
class Delivery:
    events: list[Event]
    rejected: list[RejectedEvent] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0
    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None

    @property
    def size(self) -> int:
        return len(self.events) + len(self.rejected)


Deliver = Callable[[Delivery], Awaitable[Delivery]]


@dataclass(slots=True)
class Batch:
    events: list[Event] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BatchResult:
    stored: int
    duplicates: frozenset[int]  # indexes into Batch.events of events already stored before
    rejected: int


class Sink(Protocol):
    name: str
    buffer: int  # optional sinks: events buffered before dropping

    async def open(self) -> None: ...

    async def write(self, batch: Batch) -> BatchResult:
        """Commit the batch durably, or raise. Must be safe to call again with the same batch."""
        ...

    async def close(self) -> None: ...


class Source(Protocol):
    name: str

    async def run(self, deliver: Deliver, stop: anyio.Event) -> None:
        """Receive input and hand it to `deliver` until `stop` is set; then return."""
        ...

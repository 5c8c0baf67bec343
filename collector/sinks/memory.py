"""An in-memory sink with the postgres sink's identity semantics: the test double.

Kept honest by tests that run it and PostgresSink through the same contract.
"""

from __future__ import annotations

from collector.events import Event, RejectedEvent
from collector.ports import Batch, BatchResult


class MemorySink:
    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.buffer = 0
        self.healthy = True
        self.events: dict[tuple[str, str, str], Event] = {}
        self.rejected: list[RejectedEvent] = []
        self.fail_next: int = 0  # raise on the next N writes, to test retries and failures

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def write(self, batch: Batch) -> BatchResult:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("memory sink: simulated failure")
        duplicates: set[int] = set()
        for index, event in enumerate(batch.events):
            key = (event.source, event.type, event.id)
            if key in self.events:
                duplicates.add(index)
            else:
                self.events[key] = event
        self.rejected.extend(batch.rejected)
        return BatchResult(
            stored=len(batch.events) - len(duplicates),
            duplicates=frozenset(duplicates),
            rejected=len(batch.rejected),
        )

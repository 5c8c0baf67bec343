"""The stdout sink: one compact JSON line per event, for `collector run | jq`."""

from __future__ import annotations

import sys
from typing import IO

import orjson

from collector.events import payload_fragment
from collector.ports import Batch, BatchResult


class StdoutSink:
    def __init__(self, name: str, buffer: int = 10_000, stream: IO[bytes] | None = None) -> None:
        self.name = name
        self.buffer = buffer
        self.healthy = True
        self._stream = stream

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    async def write(self, batch: Batch) -> BatchResult:
        stream = self._stream or sys.stdout.buffer
        lines = [
            orjson.dumps(
                {
                    "id": e.id,
                    "source": e.source,
                    "type": e.type,
                    "time": e.time,
                    "subject": e.subject,
                    "family": e.family,
                    "received_via": e.received_via,
                    "payload": payload_fragment(e.payload),
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for e in batch.events
        ]
        stream.write(b"".join(lines))
        stream.flush()
        return BatchResult(stored=len(batch.events), duplicates=frozenset(), rejected=0)

"""The folder sink: structured CloudEvents written atomically (a temp file, then a rename), as
one JSON file per event or one JSON-lines file per batch — what a folder source can read."""

from __future__ import annotations

import os
import re
import secrets
import time

import anyio
import orjson

from collector.events import to_cloudevent
from collector.ports import Batch, BatchResult
from collector.settings import FolderSinkSettings

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
ID_CHARS = 100  # of an event's id in its file name


def file_stem(event_id: str) -> str:
    """An event's id as the start of its file name: one ASCII byte per character (never
    more than ID_CHARS, so the whole name stays far below 255 bytes, also once a folder source
    claims it), and no leading '.' — a folder source skips hidden files."""
    stem = _UNSAFE.sub("_", event_id)[:ID_CHARS]
    return stem if stem[:1] not in ("", ".", "-") else "_" + stem[1:]


class FolderSink:
    def __init__(self, name: str, settings: FolderSinkSettings) -> None:
        self.name = name
        self.settings = settings
        self.buffer = settings.buffer
        self.healthy = True
        self.path = settings.path.expanduser().resolve()
        self._counter = 0
        # With the time and the counter, names no other sink writes, in this process or not.
        self._tag = secrets.token_hex(4)

    async def open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    async def write(self, batch: Batch) -> BatchResult:
        await anyio.to_thread.run_sync(self._write, batch)
        return BatchResult(stored=len(batch.events), duplicates=frozenset(), rejected=0)

    def _write(self, batch: Batch) -> None:
        if not batch.events:
            return
        self._counter += 1
        stamp = f"{time.time_ns()}-{self._tag}-{self._counter}"
        if self.settings.layout == "batch":
            lines = b"".join(
                orjson.dumps(to_cloudevent(e), option=orjson.OPT_APPEND_NEWLINE)
                for e in batch.events
            )
            self._atomic(f"batch-{stamp}.jsonl", lines)
        else:
            for index, event in enumerate(batch.events):
                name = f"{file_stem(event.id)}-{stamp}-{index}.json"
                self._atomic(name, orjson.dumps(to_cloudevent(event)))
        # The renames are durable once the folder itself is synced: only then is the batch
        # committed (a required folder sink lets sources acknowledge after this).
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _atomic(self, name: str, data: bytes) -> None:
        partial = self.path / f".{name}.tmp"
        with open(partial, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(partial, self.path / name)

"""The folder source: files dropped into a directory become deliveries.

A ready file is claimed by an atomic rename into `<path>/.processing/`; once every event is
committed it moves to `done/` (or is deleted), or to `failed/` next to a `<file>.error.txt`
when any part was rejected. Claimed files left by a crash are processed again at start.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

import anyio
import structlog

from collector.errors import ConfigError, DeliveryFailed, PipelineClosed
from collector.events import (
    BOM,
    Event,
    Invalid,
    InvalidJson,
    Origin,
    RejectedEvent,
    event_from_json,
    events_from_json,
)
from collector.metrics import Metrics
from collector.ports import Delivery, Intake
from collector.settings import FolderSourceSettings

log = structlog.get_logger("collector.sources.folder")

CLAIMED = ".processing"
LINE_SUFFIXES = {".jsonl", ".ndjson"}
PARTIAL_SUFFIXES = {".tmp", ".part", ".partial", ".swp"}
INLINE_READ_BYTES = 4 * 1024 * 1024


class FolderSource:
    def __init__(
        self,
        name: str,
        settings: FolderSourceSettings,
        chunk_size: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.metrics = (metrics or Metrics()).source(name)
        self.settings = settings
        self.path = settings.path.expanduser().resolve()
        self.done_dir = (settings.done_dir or self.path / "done").expanduser().resolve()
        self.failed_dir = (settings.failed_dir or self.path / "failed").expanduser().resolve()
        self.claimed_dir = self.path / CLAIMED
        self.chunk_size = chunk_size
        self._skip_dirs = {self.claimed_dir, self.done_dir, self.failed_dir}
        self.files_done = 0
        self.files_failed = 0

    def prepare(self) -> None:
        """Create the folders (the inbox itself only when its parent exists)."""
        if not self.path.is_dir():
            if not self.path.parent.is_dir():
                raise ConfigError(
                    [
                        f"config: sources.{self.name}.path: folder {str(self.path)!r} does not "
                        "exist (nor its parent): create it or fix the path"
                    ]
                )
            self.path.mkdir(exist_ok=True)
        for folder in (self.claimed_dir, self.failed_dir) + (
            (self.done_dir,) if self.settings.after == "move" else ()
        ):
            folder.mkdir(parents=True, exist_ok=True)

    async def run(self, intake: Intake, stop: anyio.Event) -> None:
        self.prepare()
        limiter = anyio.Semaphore(self.settings.max_files_in_flight)
        in_flight: set[Path] = set()
        log.info("folder_watching", source=self.name, path=str(self.path))
        async with anyio.create_task_group() as tg:
            # Files claimed before a crash come first: they were never acknowledged.
            for claimed in sorted(self.claimed_dir.iterdir()):
                if claimed.is_file():
                    await limiter.acquire()
                    in_flight.add(claimed)
                    tg.start_soon(self._process, claimed, intake, limiter, in_flight)
            while not stop.is_set():
                found = False
                for path in self._ready_files():
                    if stop.is_set():
                        break
                    await limiter.acquire()
                    taken = self._claim(path)
                    if taken is None:
                        limiter.release()
                        continue
                    found = True
                    in_flight.add(taken)
                    tg.start_soon(self._process, taken, intake, limiter, in_flight)
                if not found:
                    with anyio.move_on_after(self.settings.poll_interval_s):
                        await stop.wait()

    # -- discovery and claiming ------------------------------------------------------------

    def _ready_files(self) -> Iterator[Path]:
        now = time.time()
        settle = self.settings.settle_s
        for path in self._candidates(self.path):
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            if now - info.st_mtime >= settle:
                yield path

    def _candidates(self, folder: Path) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if self.settings.recursive and path not in self._skip_dirs:
                    yield from self._candidates(path)
                continue
            if Path(entry.name).suffix in PARTIAL_SUFFIXES:
                continue
            if any(fnmatch.fnmatch(entry.name, p) for p in self.settings.patterns):
                yield path

    def _claim(self, path: Path) -> Path | None:
        relative = path.relative_to(self.path).as_posix()
        encoded = quote(relative.encode("utf-8", "surrogateescape"), safe="")
        claimed = self.claimed_dir / f"{encoded}~{time.time_ns()}"
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None  # another collector claimed it first
        return claimed

    @staticmethod
    def _original_name(claimed: Path) -> str:
        encoded = claimed.name.rsplit("~", 1)[0]
        return unquote_to_bytes(encoded).decode("utf-8", "surrogateescape")

    # -- processing ------------------------------------------------------------------------

    async def _process(
        self, claimed: Path, intake: Intake, limiter: anyio.Semaphore, in_flight: set[Path]
    ) -> None:
        relative = self._original_name(claimed)
        started = time.perf_counter()
        failures: list[Exception] = []

        async def send(delivery: Delivery) -> None:
            try:
                await intake.deliver(delivery)
            except (DeliveryFailed, PipelineClosed) as exc:
                failures.append(exc)

        try:
            try:
                data = await self._read(claimed)
            except FileNotFoundError:
                return  # another collector finished it
            events, rejected = self.decode(data, relative, datetime.now(UTC))
            self.metrics.received(len(events) + len(rejected))
            deliveries = list(self._chunks(events, rejected))
            async with anyio.create_task_group() as tg:
                for delivery in deliveries:
                    tg.start_soon(send, delivery)
        finally:
            in_flight.discard(claimed)
            limiter.release()
        if any(isinstance(f, PipelineClosed) for f in failures):
            log.info("file_left_for_restart", source=self.name, file=relative)
            return
        if failures:
            # Give the file back to the inbox: it is read again on the next scan.
            log.error(
                "file_delivery_failed", source=self.name, file=relative, error=str(failures[0])
            )
            self._move(claimed, self.path / relative)
            return
        stored = sum(d.stored for d in deliveries)
        duplicates = sum(d.duplicates for d in deliveries)
        refused = sum(d.refused for d in deliveries)
        if rejected or refused:
            self._fail(claimed, relative, rejected, stored, duplicates, refused)
        elif self.settings.after == "delete":
            claimed.unlink(missing_ok=True)
        else:
            self._move(claimed, self.done_dir / relative)
        self.files_done += not (rejected or refused)
        log.info(
            "file_done" if not (rejected or refused) else "file_failed",
            source=self.name,
            file=relative,
            events=len(events),
            stored=stored,
            duplicates=duplicates,
            rejected=len(rejected),
            ms=round((time.perf_counter() - started) * 1000, 1),
        )

    @staticmethod
    async def _read(claimed: Path) -> bytes:
        # A small file is read at once: handing it to a worker thread costs more than reading
        # it, and the thread competes for the GIL with the decoding that follows.
        if claimed.stat().st_size <= INLINE_READ_BYTES:
            return claimed.read_bytes()
        return await anyio.Path(claimed).read_bytes()

    def decode(
        self, data: bytes, relative: str, received_at: datetime
    ) -> tuple[list[Event], list[RejectedEvent]]:
        """Parse a file's bytes into events and rejections (each naming its line or index)."""
        origin = Origin(
            received_via=self.name,
            received_at=received_at,
            default_type=self.settings.event_type,
            default_source=self.settings.event_source,
        )
        events: list[Event] = []
        rejected: list[RejectedEvent] = []
        if Path(relative).suffix in LINE_SUFFIXES:
            if data.startswith(BOM):  # RFC 8259 lets a parser ignore one; Windows tools write it
                data = data[len(BOM) :]
            for number, line in enumerate(data.split(b"\n"), start=1):
                line = line.strip()
                if not line:
                    continue
                meta = {"file": relative, "line": number}
                try:
                    events.append(event_from_json(line, origin, meta))
                except Invalid as exc:
                    rejected.append(origin.reject(str(exc), line, f"line {number}", meta))
            return events, rejected
        meta = {"file": relative}
        try:
            return events_from_json(data, origin, meta)
        except InvalidJson as exc:
            return events, [origin.reject(str(exc), data, None, meta)]

    def _chunks(self, events: list[Event], rejected: list[RejectedEvent]) -> Iterator[Delivery]:
        size = self.chunk_size
        for start in range(0, max(len(events), 1), size):
            chunk = events[start : start + size]
            extra = rejected if start == 0 else []
            if chunk or extra:
                yield Delivery(events=chunk, rejected=extra)

    def _fail(
        self,
        claimed: Path,
        relative: str,
        rejected: list[RejectedEvent],
        stored: int,
        duplicates: int,
        refused: int = 0,
    ) -> None:
        target = self._free_name(self.failed_dir / relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            f"{relative}: {len(rejected) + refused} rejected; {stored} events stored, "
            f"{duplicates} duplicates (rows in api.rejected_events)",
            *(r.message for r in rejected),
        ]
        if refused:
            lines.append(
                f"{refused} event(s) refused by PostgreSQL: the reasons are in "
                "api.rejected_events (reason starts with 'PostgreSQL refused the event')"
            )
        report = target.with_name(target.name + ".error.txt")
        report.write_text("\n".join(lines) + "\n")
        os.rename(claimed, target)
        self.files_failed += 1

    def _move(self, claimed: Path, target: Path) -> None:
        target = self._free_name(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(claimed, target)

    @staticmethod
    def _free_name(target: Path) -> Path:
        if not target.exists():
            return target
        return target.with_name(f"{target.stem}-{time.time_ns()}{target.suffix}")

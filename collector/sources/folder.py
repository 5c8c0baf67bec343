"""The folder source: files dropped into a directory become deliveries.

A ready file is claimed by an atomic rename into a folder of its own under `<path>/.processing/`,
locked while a collector works on it; once every event is committed it moves to `done/` (or is
deleted), or to `failed/` next to a `<file>.error.txt` when any part was rejected or it cannot
be read. At start, claims whose lock is free (their collector is gone) are processed again.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import itertools
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import anyio
import anyio.abc
import anyio.lowlevel
import structlog

from collector.errors import ConfigError, PipelineClosed
from collector.events import (
    BOM,
    Event,
    InvalidJson,
    Origin,
    RejectedEvent,
    events_from_json,
    events_from_lines,
)
from collector.metrics import Metrics
from collector.ports import Delivery, Intake
from collector.settings import FolderSourceSettings

log = structlog.get_logger("collector.sources.folder")

CLAIMED = ".processing"
LINE_SUFFIXES = {".jsonl", ".ndjson"}
PARTIAL_SUFFIXES = {".tmp", ".part", ".partial", ".swp"}
REPORT_SUFFIX = ".error.txt"
READ_BYTES = 256 * 1024  # JSON lines are read, decoded and queued this much at a time
INLINE_BYTES = 4 * 1024 * 1024  # a larger .json file is read and decoded in a worker thread
NAME_MAX = 255  # bytes in one file name (Linux, macOS, most filesystems)
REPORTED_PROBLEMS = 1000  # lines of a .error.txt; the rest are in api.rejected_events
RETRY_FIRST_S = 1.0  # a file whose delivery failed waits this long, doubled each time
RETRY_MAX_S = 60.0


def shown(name: str) -> str:
    """A file name as valid UTF-8 text, for logs, rows and reports: odd bytes become \\xNN."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


class Unreadable(Exception):
    """A claimed file that cannot be read as a regular file; str() says why. (Never leaves
    this module: the file goes to failed/ with that reason.)"""


@dataclass
class Claim:
    path: Path  # the claimed file: <path>/.processing/<token>/<relative>
    relative: str  # its path in the inbox (may hold undecodable bytes as surrogates)
    token: Path | None  # the claim's own folder (None: an older collector's claim)
    lock: int | None  # that folder, open and flock'ed while this collector works on it

    @property
    def name(self) -> str:
        return shown(self.relative)


@dataclass
class Tally:
    """What became of one file's deliveries."""

    events: int = 0
    rejected: int = 0
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    problems: list[str] = field(default_factory=list)  # the first REPORTED_PROBLEMS reasons
    failure: BaseException | None = None


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
        self._reported: set[object] = set()  # problems logged once, until they go away
        self._backoff: dict[str, tuple[float, float]] = {}  # relative: (retry at, delay)
        self._claims = itertools.count()  # with the time and pid: unique claim folder names

    def prepare(self) -> None:
        """Create the folders (the inbox itself only when its parent exists)."""
        if not self.path.is_dir() and not self.path.parent.is_dir():
            raise ConfigError(
                [
                    f"config: sources.{self.name}.path: folder {str(self.path)!r} does not "
                    "exist (nor its parent): create it or fix the path"
                ]
            )
        done = [self.done_dir] if self.settings.after == "move" else []
        for folder in [self.path, self.claimed_dir, self.failed_dir, *done]:
            try:
                folder.mkdir(parents=folder != self.path, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    [
                        f"config: sources.{self.name}: cannot create folder "
                        f"{shown(str(folder))!r}: {exc.strerror}"
                    ]
                ) from None

    async def run(self, intake: Intake, stop: anyio.Event) -> None:
        self.prepare()
        limiter = anyio.Semaphore(self.settings.max_files_in_flight)
        async with anyio.create_task_group() as tg:
            # Claims whose collector is gone come first: they were never acknowledged.
            for claim in self._recover():
                log.info("claim_recovered", source=self.name, file=claim.name)
                await limiter.acquire()
                tg.start_soon(self._process, claim, intake, limiter, stop)
            log.info("folder_watching", source=self.name, path=shown(str(self.path)))
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
                    tg.start_soon(self._process, taken, intake, limiter, stop)
                if not found:
                    with anyio.move_on_after(self.settings.poll_interval_s):
                        await stop.wait()

    def _report(self, key: object, event: str, level: str = "error", **fields: Any) -> None:
        """Log a problem once, however many polls meet it, until it goes away (discard key)."""
        if key not in self._reported:
            self._reported.add(key)
            getattr(log, level)(event, source=self.name, **fields)

    # -- discovery and claiming ------------------------------------------------------------

    def _ready_files(self) -> Iterator[Path]:
        now = time.time()
        settle = self.settings.settle_s
        backoff = self._backoff
        for path in self._candidates(self.path):
            try:
                info = path.stat()  # a symbolic link: its target must have settled
            except OSError:
                try:
                    info = path.lstat()  # a broken link is refused once it has settled
                except OSError:
                    continue
            if now - info.st_mtime < settle:
                continue
            if backoff:
                retry = backoff.get(path.relative_to(self.path).as_posix())
                if retry is not None and time.monotonic() < retry[0]:
                    continue
            yield path

    def _candidates(self, folder: Path) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            if folder == self.path:
                # Deleted or replaced while running: go on once it is back.
                self._report(folder, "folder_missing", "warning", path=shown(str(folder)))
            elif not isinstance(exc, FileNotFoundError):
                self._report(
                    folder, "folder_unreadable", path=shown(str(folder)), error=exc.strerror
                )
            return
        if self._reported:
            self._reported.discard(folder)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if self.settings.recursive and path not in self._skip_dirs:
                    yield from self._candidates(path)
                continue
            if Path(entry.name).suffix in PARTIAL_SUFFIXES:
                continue
            if any(fnmatch.fnmatch(entry.name, p) for p in self.settings.patterns):
                yield path

    def _claim(self, path: Path) -> Claim | None:
        """Move a ready file into a new locked folder of its own; None if that cannot be done."""
        relative = path.relative_to(self.path)
        token = self.claimed_dir / f"{time.time_ns()}-{os.getpid()}-{next(self._claims)}"
        claim = Claim(token / relative, relative.as_posix(), token, None)
        try:
            try:
                os.mkdir(token)
            except FileNotFoundError:  # the inbox was replaced while running
                log.warning("folder_recreated", source=self.name, path=shown(str(token.parent)))
                token.parent.mkdir(exist_ok=True)
                os.mkdir(token)
            claim.lock = self._lock(token)
            if claim.lock is None:  # a starting collector took it for a crash's leftover
                return None
            if len(relative.parts) > 1:
                claim.path.parent.mkdir(parents=True)
            os.rename(path, claim.path)
        except OSError as exc:
            self._release(claim)
            if not isinstance(exc, FileNotFoundError) or os.path.lexists(path):
                self._report(path, "claim_failed", file=claim.name, error=shown(str(exc)))
            return None  # else: another collector claimed it first
        if self._reported:
            self._reported.discard(path)
        return claim

    def _lock(self, folder: Path) -> int | None:
        """The claim folder, open and locked; None when another live collector holds it."""
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:  # some network filesystems: carry on with the rename alone
            self._report("flock", "folder_locks_unavailable", "warning", error=exc.strerror)
        return fd

    def _recover(self) -> Iterator[Claim]:
        """Claims left unfinished by a collector that is gone: those whose lock is free."""
        try:
            entries = sorted(os.scandir(self.claimed_dir), key=lambda e: e.name)
        except OSError as exc:
            log.error("folder_unreadable", path=shown(str(self.claimed_dir)), error=exc.strerror)
            return
        for entry in entries:
            token = Path(entry.path)
            try:
                if not entry.is_dir(follow_symlinks=False):
                    # Older collectors claimed a file as .processing/<percent-encoded path>~<ns>.
                    yield Claim(token, self._original_name(token), None, None)
                    continue
                claim = Claim(token, "", token, self._lock(token))
                if claim.lock is None:
                    continue  # a live collector is working on it
            except FileNotFoundError:
                continue  # finished by another collector meanwhile
            except OSError as exc:
                log.error("claim_unreadable", path=shown(str(token)), error=exc.strerror)
                continue
            try:
                claim.path, is_file = self._claimed_file(token)
            except OSError as exc:
                self._release(claim)  # its lock too: another start may recover it
                log.error("claim_unreadable", path=shown(str(token)), error=exc.strerror)
                continue
            if not is_file:  # left between mkdir and rename, or after the final move
                self._release(claim)
                continue
            claim.relative = claim.path.relative_to(token).as_posix()
            yield claim

    @staticmethod
    def _claimed_file(token: Path) -> tuple[Path, bool]:
        """The file in a claim folder, or the deepest folder when there is none."""
        folder = token
        while True:
            with os.scandir(folder) as entries:
                entry = next(entries, None)  # one claim per token folder
            if entry is None:
                return folder, False
            if not entry.is_dir(follow_symlinks=False):
                return Path(entry.path), True
            folder = Path(entry.path)

    @staticmethod
    def _original_name(claimed: Path) -> str:
        encoded = claimed.name.rsplit("~", 1)[0]
        return os.fsdecode(unquote_to_bytes(encoded))

    def _release(self, claim: Claim) -> None:
        """Remove the claim's folders once empty (the file moved on), then drop the lock."""
        if claim.token is not None:
            for folder in [claim.path, *claim.path.parents]:
                if not folder.is_relative_to(claim.token):
                    break
                try:
                    os.rmdir(folder)
                except (FileNotFoundError, NotADirectoryError):
                    continue  # the file itself: moved on, or still here
                except OSError:
                    break  # not empty: the file stays claimed for the next start
        if claim.lock is not None:
            os.close(claim.lock)
            claim.lock = None

    # -- processing ------------------------------------------------------------------------

    async def _process(
        self, claim: Claim, intake: Intake, limiter: anyio.Semaphore, stop: anyio.Event
    ) -> None:
        try:
            await self._ingest(claim, intake, stop)
        except OSError as exc:  # one file's problem never stops the source
            log.error("file_error", source=self.name, file=claim.name, error=shown(str(exc)))
        finally:
            self._release(claim)
            limiter.release()

    async def _ingest(self, claim: Claim, intake: Intake, stop: anyio.Event) -> None:
        name = claim.name
        started = time.perf_counter()
        try:
            fd = self._open(claim)
        except Unreadable as exc:
            log.error("file_unreadable", source=self.name, file=name, error=str(exc))
            self._fail(claim, [f"{name}: {exc}; nothing stored"])
            return
        except FileNotFoundError:
            log.warning("file_vanished", source=self.name, file=name)
            return
        tally = Tally()
        try:
            if Path(claim.relative).suffix in LINE_SUFFIXES:
                await self._deliver_lines(fd, name, intake, tally, stop)
            else:
                await self._deliver_document(fd, name, intake, tally)
        finally:
            os.close(fd)
        if isinstance(tally.failure, PipelineClosed):
            log.info("file_left_for_restart", source=self.name, file=name)
            return
        if tally.failure is not None:
            self._retry_later(claim, tally.failure)
            return
        self._backoff.pop(claim.relative, None)
        failed = bool(tally.rejected or tally.refused)
        if failed:
            self._fail(claim, self._report_lines(name, tally))
        elif self.settings.after == "delete":
            os.unlink(claim.path)
        else:
            self._move(claim.path, self.done_dir / claim.relative)
        log.info(
            "file_failed" if failed else "file_done",
            source=self.name,
            file=name,
            events=tally.events,
            stored=tally.stored,
            duplicates=tally.duplicates,
            rejected=tally.rejected,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )

    def _open(self, claim: Claim) -> int:
        """The claimed file, open for reading; Unreadable says why it cannot be."""
        where = claim.path
        try:
            if where.is_symlink():
                # A relative link points from the file's place in the inbox, not from here.
                where = (self.path / claim.relative).parent / os.readlink(where)
            # Non-blocking: opening a FIFO must not wait for a writer.
            fd = os.open(where, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            if where == claim.path:
                raise
            raise Unreadable(
                f"a symbolic link to {shown(str(where))}, which does not exist"
            ) from None
        except OSError as exc:
            raise Unreadable(f"cannot be read: {exc.strerror}") from exc
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO, socket or device"
            raise Unreadable(f"not a regular file but {kind}")
        return fd

    def _origin(self, received_at: datetime) -> Origin:
        return Origin(
            received_via=self.name,
            received_at=received_at,
            default_type=self.settings.event_type,
            default_source=self.settings.event_source,
        )

    async def _deliver_document(self, fd: int, name: str, intake: Intake, tally: Tally) -> None:
        """A .json file, whole; read again if it changed meanwhile (duplicates are recognised)."""
        while True:
            before = os.fstat(fd)
            if before.st_size <= INLINE_BYTES:
                events, rejected = self.decode(_read_all(fd), name, datetime.now(UTC))
            else:  # keep the event loop (HTTP, other files) running meanwhile
                data = await anyio.to_thread.run_sync(_read_all, fd)
                events, rejected = await anyio.to_thread.run_sync(
                    self.decode, data, name, datetime.now(UTC)
                )
                del data
            async with anyio.create_task_group() as tg:
                size = self.chunk_size
                for start in range(0, max(len(events), 1), size):
                    chunk = events[start : start + size]
                    if chunk or rejected:
                        await self._send(intake, tg, tally, chunk, rejected)
                    rejected = []
                    if tally.failure is not None:
                        break
            after = os.fstat(fd)
            if tally.failure is not None or (after.st_size, after.st_mtime_ns) == (
                before.st_size,
                before.st_mtime_ns,
            ):
                return
            log.warning("file_changed_while_read", source=self.name, file=name)

    async def _deliver_lines(
        self, fd: int, name: str, intake: Intake, tally: Tally, stop: anyio.Event
    ) -> None:
        """A JSON lines file, a block at a time: memory stays bounded, and the queue filling
        up stops the reading. Lines appended meanwhile are read too (see the README). On
        shutdown the rest is left for the next start, which reads the file again."""
        origin = self._origin(datetime.now(UTC))
        start = _after_bom(fd)
        offset, number, pieces = start, 1, []  # pieces: the unfinished last line
        final = False  # the file stayed put through the last pass
        size = self.chunk_size
        while True:
            read_any = False
            async with anyio.create_task_group() as tg:
                events: list[Event] = []
                rejected: list[RejectedEvent] = []
                while tally.failure is None:
                    if stop.is_set() and offset > start:  # a block read: the rest next start
                        tally.failure = PipelineClosed("collector is shutting down")
                        break
                    block = os.pread(fd, READ_BYTES, offset)
                    if not block:
                        break
                    read_any = True
                    offset += len(block)
                    end = block.rfind(b"\n") + 1
                    if not end:  # inside one long line: keep the pieces, join them once
                        pieces.append(block)
                        continue
                    data = b"".join([*pieces, block[:end]]) if pieces else block[:end]
                    pieces = [block[end:]] if end < len(block) else []
                    lines = data.split(b"\n")[:-1]
                    events_from_lines(lines, number, origin, {"file": name}, events, rejected)
                    number += len(lines)
                    while len(events) + len(rejected) >= size and tally.failure is None:
                        await self._send(intake, tg, tally, events[:size], rejected)
                        events, rejected = events[size:], []
                    await anyio.lowlevel.checkpoint()  # let HTTP and other files run
                if pieces:
                    # A last line without its newline: taken if it is an event, else (cut off
                    # mid-line?) once the file stayed put while the rest was committed.
                    tail = b"".join(pieces)
                    pieces = [tail]
                    last: list[RejectedEvent] = []
                    events_from_lines([tail], number, origin, {"file": name}, events, last)
                    if not last or (final and not read_any):
                        rejected += last
                        pieces = []
                if (events or rejected) and tally.failure is None:
                    await self._send(intake, tg, tally, events, rejected)
            # Every delivery so far is committed. Did a writer add to the file meanwhile?
            if tally.failure is not None:
                return
            now = os.fstat(fd).st_size
            if now < offset:  # rewritten in place: read it all again
                log.warning("file_changed_while_read", source=self.name, file=name)
                start = _after_bom(fd)
                offset, number, pieces, final = start, 1, [], False
            elif now > offset:
                log.warning("file_grew_while_read", source=self.name, file=name)
                final = False
            elif not pieces:
                return
            else:
                final = True

    async def _send(
        self,
        intake: Intake,
        tg: anyio.abc.TaskGroup,
        tally: Tally,
        events: list[Event],
        rejected: list[RejectedEvent],
    ) -> None:
        """Queue a delivery (waiting for room), count it, and watch for its commit."""
        delivery = Delivery(events=events, rejected=rejected)
        try:
            await intake.enqueue(delivery)
        except PipelineClosed as exc:
            tally.failure = exc
            return
        tally.events += len(events)
        tally.rejected += len(rejected)
        room = REPORTED_PROBLEMS - len(tally.problems)
        tally.problems.extend(r.message for r in rejected[:room])
        self.metrics.received(len(events) + len(rejected))
        tg.start_soon(_committed, delivery, tally)

    def decode(
        self, data: bytes, relative: str, received_at: datetime
    ) -> tuple[list[Event], list[RejectedEvent]]:
        """Parse a file's bytes into events and rejections (each naming its line or index)."""
        origin = self._origin(received_at)
        events: list[Event] = []
        rejected: list[RejectedEvent] = []
        if Path(relative).suffix in LINE_SUFFIXES:
            if data.startswith(BOM):  # RFC 8259 lets a parser ignore one; Windows tools write it
                data = data[len(BOM) :]
            events_from_lines(data.split(b"\n"), 1, origin, {"file": relative}, events, rejected)
            return events, rejected
        meta = {"file": relative}
        try:
            return events_from_json(data, origin, meta)
        except InvalidJson as exc:
            return events, [origin.reject(str(exc), data, None, meta)]

    # -- finishing -------------------------------------------------------------------------

    def _retry_later(self, claim: Claim, failure: BaseException) -> None:
        """Give the file back to the inbox, to be read again after a growing delay."""
        last = self._backoff.get(claim.relative)
        delay = RETRY_FIRST_S if last is None else min(last[1] * 2, RETRY_MAX_S)
        self._backoff[claim.relative] = (time.monotonic() + delay, delay)
        log.error(
            "file_delivery_failed",
            source=self.name,
            file=claim.name,
            error=str(failure),
            retry_in_s=delay,
        )
        self._move(claim.path, self.path / claim.relative)

    @staticmethod
    def _report_lines(name: str, tally: Tally) -> list[str]:
        lines = [
            f"{name}: {tally.rejected + tally.refused} rejected; {tally.stored} events stored, "
            f"{tally.duplicates} duplicates (rows in api.rejected_events)",
            *tally.problems,
        ]
        if tally.rejected > len(tally.problems):
            lines.append(f"... and {tally.rejected - len(tally.problems)} more")
        if tally.refused:
            lines.append(
                f"{tally.refused} event(s) refused by PostgreSQL: the reasons are in "
                "api.rejected_events (reason starts with 'PostgreSQL refused the event')"
            )
        return lines

    def _fail(self, claim: Claim, lines: list[str]) -> None:
        """Move the file to failed/, next to a report saying why."""
        target = _free_name(self.failed_dir / claim.relative, reserve=len(REPORT_SUFFIX))
        target.parent.mkdir(parents=True, exist_ok=True)
        report = target.with_name(target.name + REPORT_SUFFIX)
        report.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._move(claim.path, target)

    def _move(self, claimed: Path, target: Path) -> None:
        target = _free_name(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(claimed, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            _copy_across(claimed, target)


def _read_all(fd: int) -> bytes:
    blocks = []
    offset = 0
    expected = os.fstat(fd).st_size + 1  # one read for the whole file, one to see its end
    while block := os.pread(fd, max(READ_BYTES, expected - offset), offset):
        blocks.append(block)
        offset += len(block)
    return b"".join(blocks)


def _after_bom(fd: int) -> int:
    """Where the text starts: after a byte-order mark (Windows tools write one; RFC 8259
    lets a parser ignore it)."""
    return len(BOM) if os.pread(fd, len(BOM), 0) == BOM else 0


async def _committed(delivery: Delivery, tally: Tally) -> None:
    await delivery.done.wait()
    if delivery.error is not None:
        tally.failure = tally.failure or delivery.error
        return
    tally.stored += delivery.stored
    tally.duplicates += delivery.duplicates
    tally.refused += delivery.refused


def _free_name(target: Path, reserve: int = 0) -> Path:
    """target, or a name like it that is free, either short enough to add `reserve` bytes."""
    raw = os.fsencode(target.name)
    if not os.path.lexists(target) and len(raw) + reserve <= NAME_MAX:
        return target
    suffix = os.fsencode(target.suffix)
    if len(suffix) > 16:  # not a real suffix: no need to keep it
        suffix = b""
    tag = f"-{time.time_ns()}".encode()
    stem = raw[: len(raw) - len(suffix)]
    keep = NAME_MAX - reserve - len(tag) - len(suffix)
    while 0 < keep < len(stem) and stem[keep] & 0xC0 == 0x80:
        keep -= 1  # never cut a UTF-8 character in two
    return target.with_name(os.fsdecode(stem[:keep] + tag + suffix))


def _copy_across(claimed: Path, target: Path) -> None:
    """Move a file to another filesystem: copy under a hidden name (never read by a folder
    source), sync, rename into place, then drop the claimed file."""
    partial = target.with_name(f".{time.time_ns()}.collector.tmp")
    try:
        shutil.copy2(claimed, partial, follow_symlinks=False)
        if not partial.is_symlink():
            fd = os.open(partial, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.rename(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(claimed)

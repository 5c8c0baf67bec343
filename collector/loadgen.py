"""A minimal HTTP/1.1 load client for benchmarks: pre-rendered requests, keep-alive connections.

It runs as its own process (`python -m collector.loadgen`), so it shares no GIL with what it
measures, on asyncio protocols — no task, stream or timer per request: about 30 µs of CPU per
request here, where a client on asyncio streams took 65-75 µs and httpx far more.

The parent (`LoadClient`) writes the requests to a file, starts the process, which opens its
connections and says `ready`; on `go` it sends every request, each connection one after the
other, and writes a JSON result: seconds, its CPU seconds, statuses, acknowledged ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import resource
import select
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from collector.errors import BenchmarkFailed

_LENGTH = struct.Struct(">I")
PROBLEMS_KEPT = 5  # bodies of non-2xx answers kept for the error message


def post(path: str, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """One POST request as sent on the wire."""
    head = [f"POST {path} HTTP/1.1", "host: collector"]
    head += [f"{name}: {value}" for name, value in headers]
    head.append(f"content-length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def write_requests(path: Path, requests: Iterable[bytes]) -> int:
    """Write requests length-prefixed to `path`; returns their number."""
    count = 0
    with path.open("wb") as out:
        for request in requests:
            out.write(_LENGTH.pack(len(request)))
            out.write(request)
            count += 1
    return count


def read_requests(path: Path) -> list[bytes]:
    data = path.read_bytes()
    requests: list[bytes] = []
    offset = 0
    while offset < len(data):
        (size,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        requests.append(data[offset : offset + size])
        offset += size
    return requests


@dataclass(frozen=True)
class ClientResult:
    requests: int  # answered
    seconds: float  # from the first request sent to the last answer received
    cpu_s: float  # the client process's CPU meanwhile
    statuses: dict[int, int]
    ids: list[str]  # from the `ids` of every 2xx JSON answer, in no particular order
    problems: list[str]  # the first few non-2xx answers
    errors: list[str]  # connections lost or refused

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# -- the client process ----------------------------------------------------------------------


class _Run:
    """What the connections share: the requests still to send and the answers received."""

    def __init__(self, requests: list[bytes]) -> None:
        self.requests = requests
        self.next = 0
        self.answers: list[tuple[int, bytes]] = []

    def take(self) -> bytes | None:
        index = self.next
        if index >= len(self.requests):
            return None
        self.next = index + 1
        return self.requests[index]


class _Connection(asyncio.Protocol):
    """One keep-alive connection: sends a request, parses its answer, sends the next."""

    def __init__(self, run: _Run, finished: asyncio.Future[None]) -> None:
        self.run = run
        self.finished = finished
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def send_next(self) -> None:
        request = self.run.take()
        if request is None:
            if not self.finished.done():
                self.finished.set_result(None)
            return
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            start = head.find(b"\r\ncontent-length:")
            if start < 0:
                self._fail("an answer without content-length (chunked answers are not read)")
                return
            stop = head.find(b"\r\n", start + 2)
            length = int(head[start + 17 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                break
            self.run.answers.append((int(head[9:12]), buffer[end + 4 : total]))
            buffer = buffer[total:]
            self.send_next()
        self.buffer = buffer

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            reason = f"connection lost: {exc or 'closed by the server'}"
            self.finished.set_exception(ConnectionError(reason))

    def _fail(self, reason: str) -> None:
        if not self.finished.done():
            self.finished.set_exception(ConnectionError(reason))
        assert self.transport is not None
        self.transport.abort()


async def _client(host: str, port: int, connections: int, requests_file: Path) -> dict[str, Any]:
    run = _Run(read_requests(requests_file))
    loop = asyncio.get_running_loop()
    opened: list[tuple[_Connection, asyncio.Future[None]]] = []
    for _ in range(min(connections, len(run.requests)) or 1):
        finished: asyncio.Future[None] = loop.create_future()
        _, protocol = await loop.create_connection(
            functools.partial(_Connection, run, finished), host, port
        )
        opened.append((protocol, finished))
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # "go"
    cpu = _own_cpu()
    started = time.perf_counter()
    for protocol, _ in opened:
        protocol.send_next()
    outcomes = await asyncio.gather(*(f for _, f in opened), return_exceptions=True)
    seconds = time.perf_counter() - started
    cpu = _own_cpu() - cpu
    for protocol, finished in opened:
        if finished.done() and finished.exception() is None and protocol.transport is not None:
            protocol.transport.close()
    # After the clock: what the answers say.
    statuses: dict[int, int] = {}
    ids: list[str] = []
    problems: list[str] = []
    for status, body in run.answers:
        statuses[status] = statuses.get(status, 0) + 1
        if 200 <= status < 300:
            with contextlib.suppress(orjson.JSONDecodeError):
                answer = orjson.loads(body)
                if isinstance(answer, dict):
                    ids.extend(answer.get("ids", ()))
        elif len(problems) < PROBLEMS_KEPT:
            problems.append(f"HTTP {status}: {body[:500].decode(errors='replace')}")
    errors = sorted({str(o) for o in outcomes if isinstance(o, BaseException)})
    return {
        "requests": len(run.answers),
        "seconds": seconds,
        "cpu_s": cpu,
        "statuses": statuses,
        "ids": ids,
        "problems": problems,
        "errors": errors,
    }


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    """`python -m collector.loadgen HOST PORT CONNECTIONS REQUESTS_FILE RESULT_FILE`."""
    host, port, connections, requests_file, result_file = argv or sys.argv[1:]
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        uvloop.install()
    result = asyncio.run(_client(host, int(port), int(connections), Path(requests_file)))
    Path(result_file).write_bytes(orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS))
    print("done", flush=True)


# -- the parent's side -----------------------------------------------------------------------


class LoadClient:
    """A started client process with its connections open, waiting for `go()`."""

    def __init__(self, process: subprocess.Popen[bytes], result_file: Path) -> None:
        self.process = process
        self.result_file = result_file

    @property
    def pid(self) -> int:
        return self.process.pid

    def go(self, timeout: float) -> ClientResult:
        """Send every request; return once all are answered (BenchmarkFailed on a timeout)."""
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()
        self._expect(b"done", timeout)
        data = orjson.loads(self.result_file.read_bytes())
        return ClientResult(
            requests=data["requests"],
            seconds=data["seconds"],
            cpu_s=data["cpu_s"],
            statuses={int(k): v for k, v in data["statuses"].items()},
            ids=data["ids"],
            problems=data["problems"],
            errors=data["errors"],
        )

    def _expect(self, word: bytes, timeout: float) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        if not _readable(stdout, timeout):
            raise BenchmarkFailed(
                f"load client: no {word.decode()!r} within {timeout:g} s (raise --timeout)"
            )
        line = stdout.readline().strip()
        if line != word:
            self.process.wait(10)
            raise BenchmarkFailed(
                f"load client: exited with code {self.process.returncode} before saying "
                f"{word.decode()!r}; its stderr: {self._stderr()}"
            )

    def _stderr(self) -> str:
        stderr = self.process.stderr
        text = stderr.read().decode(errors="replace").strip() if stderr is not None else ""
        return "\n".join(text.splitlines()[-10:]) or "(empty)"


@contextlib.contextmanager
def load_client(
    host: str, port: int, connections: int, requests_file: Path, timeout: float
) -> Iterator[LoadClient]:
    """Start the client process; yield once its connections are open; stop it on exit."""
    result_file = requests_file.with_suffix(".result.json")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector.loadgen",
            host,
            str(port),
            str(connections),
            str(requests_file),
            str(result_file),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        client = LoadClient(process, result_file)
        client._expect(b"ready", timeout)
        yield client
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        result_file.unlink(missing_ok=True)


def _readable(stream: IO[bytes], timeout: float) -> bool:
    ready, _, _ = select.select([stream], [], [], timeout)
    return bool(ready)


if __name__ == "__main__":
    main()

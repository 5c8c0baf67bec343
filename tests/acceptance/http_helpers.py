"""Helpers for HTTP acceptance tests: `collector run` with an HTTP server, and a load client.

httpx tops out near 1.3k requests/s here (BENCHMARKING.md), so load goes through a minimal
HTTP/1.1 client on raw asyncio streams: N keep-alive connections, each sending its requests
one after the other. Loopback only, bounded in count and time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.db.embedded import EmbeddedPostgres
from tests.conftest import CollectorProcess, wait_for

PROBLEM_JSON = "application/problem+json"


@dataclass
class HttpCollector:
    """A running `collector run` and where its HTTP server listens."""

    process: CollectorProcess
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def logs(self) -> str:
        return self.process.logs()

    def alive(self) -> bool:
        return self.process.proc is not None and self.process.proc.poll() is None


def log_records(text: str) -> Iterator[dict[str, Any]]:
    """The JSON log lines of a collector log (other lines are skipped)."""
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def start_http_collector(process: CollectorProcess, timeout: float = 60) -> HttpCollector:
    """Start the process and wait for its `http_listening` log line (port 0 picks a port)."""
    process.start()

    def listening() -> dict[str, Any] | None:
        assert process.proc is not None
        assert process.proc.poll() is None, process.logs()
        for record in log_records(process.logs()):
            if record.get("event") == "http_listening":
                return record
        return None

    record = wait_for(listening, timeout=timeout)
    return HttpCollector(process, "127.0.0.1", int(record["port"]))


def ndjson(docs: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(doc) + b"\n" for doc in docs)


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def cloudevent(event_id: str, **attributes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/tests/http",
        "type": "org.example.test.happened",
        "time": now_iso(),
        "data": {"n": 1},
    }
    doc.update(attributes)
    return doc


def raw_public_key(private: Ed25519PrivateKey) -> str:
    """A public key as ClusterCockpit configures it: base64 of the raw 32 bytes."""
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode()


def rows(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def events_with_ids(database_url: str, ids: list[str]) -> list[tuple[Any, ...]]:
    """(id, source, type, family, subject, payload, metadata, received_via) of events, by id."""
    return rows(
        database_url,
        "SELECT id, source, type, family, subject, payload, metadata, received_via"
        " FROM api.events WHERE id = ANY(%s) ORDER BY id, type",
        ids,
    )


# --- the load client ------------------------------------------------------------------------


@dataclass(frozen=True)
class RawRequest:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    tag: str = ""  # what the caller wants to find again in the outcome (e.g. the event id)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Outcome:
    request: RawRequest
    response: RawResponse | None = None
    error: str | None = None  # no answer: connection refused, reset, or timed out


class HttpConnection:
    """One HTTP/1.1 keep-alive connection; requests go one after the other."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, req: RawRequest, timeout: float) -> RawResponse:
        async with asyncio.timeout(timeout):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            reader, writer = self._reader, self._writer
            assert reader is not None
            head = [f"{req.method} {req.path} HTTP/1.1", f"host: {self.host}:{self.port}"]
            head += [f"{name}: {value}" for name, value in req.headers]
            head.append(f"content-length: {len(req.body)}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + req.body)
            await writer.drain()
            try:
                response = await read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                await self.close()
                raise
            if response.headers.get("connection", "").lower() == "close":
                await self.close()
            return response

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        body = b"".join(chunks)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return RawResponse(status, headers, body)


@dataclass
class Load:
    """Requests from `make(n)` sent over `connections` keep-alive connections.

    Runs until `total` requests were sent, `stop` is set, or `deadline_s` passed; every request
    has an outcome: its response, or the error that left it unanswered.
    """

    host: str
    port: int
    make: Callable[[int], RawRequest]
    connections: int = 50
    total: int | None = None
    request_timeout_s: float = 30.0
    deadline_s: float = 120.0
    pause_after_503_s: float = 0.0  # as a client honouring Retry-After would, but shorter
    outcomes: list[Outcome] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> list[Outcome]:
        counter = iter(range(self.total if self.total is not None else 10**9))
        deadline = time.monotonic() + self.deadline_s

        async def worker() -> None:
            conn = HttpConnection(self.host, self.port)
            try:
                while not self.stop.is_set() and time.monotonic() < deadline:
                    n = next(counter, None)
                    if n is None:
                        return
                    req = self.make(n)
                    outcome = Outcome(req)
                    self.outcomes.append(outcome)
                    try:
                        outcome.response = await conn.request(req, self.request_timeout_s)
                        if outcome.response.status == 503 and self.pause_after_503_s:
                            await asyncio.sleep(self.pause_after_503_s)
                    except TimeoutError:
                        outcome.error = "timeout"
                        await conn.close()
                    except (OSError, asyncio.IncompleteReadError) as exc:
                        outcome.error = f"{type(exc).__name__}: {exc}"
                        await conn.close()
                        await asyncio.sleep(0.05)  # e.g. refused: do not spin
            finally:
                await conn.close()

        await asyncio.gather(*(worker() for _ in range(self.connections)))
        return self.outcomes

    def statuses(self) -> dict[int | str, int]:
        counts: dict[int | str, int] = {}
        for outcome in self.outcomes:
            key: int | str = (
                outcome.response.status if outcome.response is not None else "no answer"
            )
            counts[key] = counts.get(key, 0) + 1
        return counts


@contextmanager
def dedicated_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """An embedded PostgreSQL of the test's own, to stop and start (the session one is shared)."""
    server = EmbeddedPostgres(tmp_path / "pg")
    server.start()
    try:
        yield server
    finally:
        server.destroy()  # as root its data may live outside tmp_path


def write_secret(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path

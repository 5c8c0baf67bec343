"""The publisher of `collector bench nats` against a fake NATS server that stores slowly."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from collector.bench_nats import PUBLISH_CHUNK, PUBLISH_WINDOW, Bench
from collector.errors import BenchmarkFailed

pytestmark = pytest.mark.anyio


class SlowStream:
    """Speaks just enough NATS: answers a publish that has a reply subject `delay_s` after
    reading it (a stream acknowledging what it stored), and records how many messages it
    held at most that were not acknowledged yet (a stream's inbound queue)."""

    def __init__(self, delay_s: float, answer: bytes = b'{"stream":"S","seq":1}') -> None:
        self.delay_s = delay_s
        self.answer = answer
        self.received = 0
        self.acknowledged = 0  # messages up to the last acknowledged publish
        self.most_unacknowledged = 0
        self._sending = anyio.Lock()

    async def serve(self, client: anyio.abc.SocketStream) -> None:
        lines = BufferedByteReceiveStream(client)
        await client.send(b'INFO {"server_id":"fake","max_payload":1048576}\r\n')
        async with anyio.create_task_group() as tg:
            while True:
                try:
                    line = await lines.receive_until(b"\r\n", 1 << 20)
                except (anyio.EndOfStream, anyio.IncompleteRead):
                    tg.cancel_scope.cancel()
                    return
                if line == b"PING":
                    async with self._sending:
                        await client.send(b"PONG\r\n")
                elif line.startswith(b"PUB "):
                    fields = line.split()
                    await lines.receive_exactly(int(fields[-1]) + 2)
                    self.received += 1
                    self.most_unacknowledged = max(
                        self.most_unacknowledged, self.received - self.acknowledged
                    )
                    if len(fields) == 4:  # PUB subject reply size
                        tg.start_soon(self._acknowledge, client, fields[2], self.received)

    async def _acknowledge(self, client: anyio.abc.SocketStream, reply: bytes, upto: int) -> None:
        await anyio.sleep(self.delay_s)
        self.acknowledged = max(self.acknowledged, upto)
        async with self._sending:
            await client.send(b"MSG %s 1 %d\r\n%s\r\n" % (reply, len(self.answer), self.answer))


async def publish_to(server: SlowStream, work: Path, events: int) -> float:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    bench = Bench("", f"nats://127.0.0.1:{port}", work, {}, {})
    payloads = [b'{"n": %d}' % n for n in range(events)]
    outcome: list[float | BenchmarkFailed] = []
    async with listener, anyio.create_task_group() as tg:
        serve: Callable[[anyio.abc.SocketStream], Awaitable[None]] = server.serve
        tg.start_soon(listener.serve, serve)
        try:
            outcome.append(await bench._publish("bench", payloads))
        except BenchmarkFailed as exc:  # raised here, not wrapped in the task group's
            outcome.append(exc)
        finally:
            tg.cancel_scope.cancel()
    if isinstance(outcome[0], BenchmarkFailed):
        raise outcome[0]
    return outcome[0]


async def test_the_publisher_waits_for_the_stream_instead_of_flooding_it(tmp_path: Path) -> None:
    # nats-server 2.11+ drops core publishes beyond 10,000 queued for a stream: a publisher
    # writing 200,000 as fast as it could lost thousands on a busy machine.
    server = SlowStream(delay_s=0.01)
    await publish_to(server, tmp_path, 20 * PUBLISH_CHUNK + 7)

    assert server.received == 20 * PUBLISH_CHUNK + 7
    assert server.acknowledged == server.received  # returns once all are stored
    assert server.most_unacknowledged <= PUBLISH_WINDOW * PUBLISH_CHUNK


async def test_a_publish_the_stream_refuses_fails_the_run(tmp_path: Path) -> None:
    refused = b'{"error":{"code":429,"description":"too many requests"}}'
    with pytest.raises(BenchmarkFailed, match=r"publisher: .*too many requests"):
        await publish_to(SlowStream(delay_s=0, answer=refused), tmp_path, PUBLISH_CHUNK)

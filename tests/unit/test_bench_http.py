"""The checks `collector bench http` makes after each timed step, and its client's parsing of
answers however the bytes arrive: pure logic, no server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from collector.bench_http import check_answers, verify_stored
from collector.errors import BenchmarkFailed
from collector.loadgen import ClientResult, _Connection, _Run, post, read_requests, write_requests

IDS = [f"id-{n}" for n in range(5)]


def test_a_complete_run_passes() -> None:
    verify_stored("(a)", IDS, list(reversed(IDS)), IDS, 0)


@pytest.mark.parametrize(
    ("acknowledged", "stored", "rejected", "message"),
    [
        (IDS, IDS[:3], 0, "2 acknowledged ids are not in api.events, e.g. id-3"),
        (IDS, IDS[:3], 0, "api.events holds 3 rows where 5 were expected (2 lost)"),
        (IDS, [*IDS, "id-0"], 0, "6 rows where 5 were expected (1 duplicated or unexpected)"),
        (IDS, [*IDS[:4], "id-0"], 0, "1 acknowledged ids are not in api.events, e.g. id-4"),
        (IDS, [*IDS[:4], "other"], 0, "1 rows that are duplicates or not of the events sent"),
        (IDS[:4], IDS, 0, "4 ids acknowledged for 5 events sent (1 not acknowledged, e.g. id-4"),
        ([*IDS, "id-1"], IDS, 0, "6 ids acknowledged for 5 events sent"),
        (IDS, IDS, 2, "2 rows in api.rejected_events"),
    ],
)
def test_a_loss_a_duplicate_or_a_rejection_fails_the_run(
    acknowledged: list[str], stored: list[str], rejected: int, message: str
) -> None:
    with pytest.raises(BenchmarkFailed, match=r"^run 2: ") as failed:
        verify_stored("run 2", IDS, acknowledged, stored, rejected)
    assert message in str(failed.value)


def result(statuses: dict[int, int], errors: list[str] | None = None) -> ClientResult:
    return ClientResult(
        requests=sum(statuses.values()),
        seconds=1.0,
        cpu_s=0.5,
        statuses=statuses,
        ids=[],
        problems=['HTTP 503: {"detail":"the queue is full"}'],
        errors=errors or [],
    )


def test_every_request_must_be_answered_202() -> None:
    check_answers("(a)", result({202: 10}), 10)
    with pytest.raises(BenchmarkFailed, match=r"10 requests answered 9 × 202, 1 × 503; first: "):
        check_answers("(a)", result({202: 9, 503: 1}), 10)
    with pytest.raises(BenchmarkFailed, match="connection lost"):
        check_answers("(a)", result({202: 10}, ["connection lost: reset"]), 10)


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True


def answer(status: int, body: bytes, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\ndate: today\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


async def connection(requests: list[bytes]) -> tuple[_Connection, _Run, Transport, Any]:
    run = _Run(requests)
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    conn = _Connection(run, finished)
    transport = Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.send_next()
    return conn, run, transport, finished


@pytest.mark.parametrize("piece", [1, 7, 1000])
def test_the_client_reads_answers_split_or_joined_anyhow(piece: int) -> None:
    async def scenario() -> None:
        conn, run, transport, finished = await connection([b"r1", b"r2", b"r3"])
        assert transport.written == [b"r1"]
        stream = answer(202, b'{"ids":["a"]}') + answer(503, b"{}", "retry-after: 1\r\n")
        for start in range(0, len(stream), piece):
            conn.data_received(stream[start : start + piece])
        assert transport.written == [b"r1", b"r2", b"r3"]
        assert not finished.done()
        conn.data_received(answer(202, b""))
        assert finished.done()
        assert finished.exception() is None
        assert run.answers == [(202, b'{"ids":["a"]}'), (503, b"{}"), (202, b"")]

    asyncio.run(scenario())


def test_the_client_reports_what_it_cannot_read() -> None:
    async def scenario() -> None:
        conn, _, transport, finished = await connection([b"r1"])
        conn.data_received(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n")
        assert transport.aborted
        assert "without content-length" in str(finished.exception())
        conn, _, transport, finished = await connection([b"r1"])
        conn.connection_lost(None)
        assert "closed by the server" in str(finished.exception())

    asyncio.run(scenario())


def test_requests_round_trip_through_their_file(tmp_path: Any) -> None:
    requests = [post("/webhook/x", b"[]", [("content-type", "application/json")]), b"", b"z" * 9]
    path = tmp_path / "requests"
    assert write_requests(path, requests) == 3
    assert read_requests(path) == requests
    assert requests[0] == (
        b"POST /webhook/x HTTP/1.1\r\nhost: collector\r\ncontent-type: application/json\r\n"
        b"content-length: 2\r\n\r\n[]"
    )

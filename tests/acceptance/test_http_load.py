"""HTTP ingestion under load and through database outages, over a real socket.

The load comes from the raw asyncio keep-alive client in `http_helpers` (httpx would measure
itself). The tests check the delivery contract — an event answered 202 is in `api.events`
exactly once — and that no request hangs: while the queue is full or the database down the
server answers 503 with Retry-After, and a body that never arrives gets 408.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import psycopg
import pytest

from tests.acceptance.http_helpers import (
    HttpCollector,
    Load,
    Outcome,
    RawRequest,
    dedicated_postgres,
    log_records,
    read_response,
    start_http_collector,
    unique,
)
from tests.conftest import CollectorProcess, dsn_as_url, wait_for

pytestmark = pytest.mark.anyio

REQUEST_TIMEOUT_S = 4


def http_config(
    database_url: str,
    *,
    pipeline: str = "",
    source: str = "",
    request_timeout_s: float = REQUEST_TIMEOUT_S,
) -> str:
    return f"""
[database]
url = "{dsn_as_url(database_url)}"

[http]
port = 0
request_timeout_s = {request_timeout_s}

[pipeline]
{pipeline}

[sources.events]
type = "http"
{source}

[sinks.db]
type = "postgres"
"""


def single_event(prefix: str) -> Callable[[int], RawRequest]:
    """Request n: one structured CloudEvent with id `<prefix>-<n>`, as a durable-ack POST."""
    now = datetime.now(UTC).isoformat()

    def make(n: int) -> RawRequest:
        event_id = f"{prefix}-{n:06d}"
        body = orjson.dumps(
            {
                "specversion": "1.0",
                "id": event_id,
                "source": "/tests/load",
                "type": "org.example.load",
                "time": now,
                "data": {"n": n, "pad": "x" * 200},
            }
        )
        headers = (("content-type", "application/cloudevents+json"),)
        return RawRequest("POST", "/webhook/events", headers, body, tag=event_id)

    return make


def acknowledged(outcomes: list[Outcome]) -> list[str]:
    """Ids of the events answered 202, after checking each answer's body."""
    ids = []
    for outcome in outcomes:
        response = outcome.response
        if response is not None and response.status == 202:
            assert response.json() == {
                "accepted": 1,
                "duplicates": 0,
                "ids": [outcome.request.tag],
            }
            ids.append(outcome.request.tag)
    return ids


def assert_unavailable_answers(outcomes: list[Outcome]) -> list[str]:
    """Every 503 is problem+json with Retry-After; returns their details."""
    details = []
    for outcome in outcomes:
        response = outcome.response
        if response is not None and response.status == 503:
            assert response.headers["content-type"] == "application/problem+json"
            assert int(response.headers["retry-after"]) >= 1
            problem = response.json()
            assert problem["status"] == 503
            details.append(problem["detail"])
    return details


def stored_ids(url: str, prefix: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT id FROM api.events WHERE source = '/tests/load' AND id LIKE %s",
            (prefix + "-%",),
        ).fetchall()
    return [row[0] for row in found]


def assert_stored_exactly_once(url: str, prefix: str, acked: list[str]) -> None:
    stored = stored_ids(url, prefix)
    assert len(stored) == len(set(stored)), "an event is stored twice"
    missing = set(acked) - set(stored)
    assert not missing, (
        f"{len(missing)} acknowledged events are missing, e.g. {sorted(missing)[:5]}"
    )


def start(collector_process: Callable[..., CollectorProcess], config: str) -> HttpCollector:
    running = start_http_collector(collector_process(config))
    wait_for(lambda: "collector_started" in running.logs(), timeout=30)
    return running


def stop(running: HttpCollector) -> None:
    assert running.alive(), running.logs()
    assert running.process.stop() == 0, running.logs()
    assert "Traceback" not in running.logs(), running.logs()


async def in_thread(function: Callable[[], Any]) -> Any:
    return await anyio.to_thread.run_sync(function)


# --- load -----------------------------------------------------------------------------------


def test_2000_concurrent_single_event_posts_are_each_stored_exactly_once(
    collector_process: Callable[..., CollectorProcess], database_url: str
) -> None:
    # A generous commit timeout: a slow CI machine must not turn this test into a 503 count.
    running = start(collector_process, http_config(database_url, request_timeout_s=30))
    prefix = unique("load")
    load = Load(
        running.host,
        running.port,
        single_event(prefix),
        connections=200,  # 200 keep-alive connections, 10 requests each
        total=2000,
        request_timeout_s=60,
        deadline_s=150,
    )
    asyncio.run(load.run())
    assert len(load.outcomes) == 2000
    assert load.statuses() == {202: 2000}
    acked = acknowledged(load.outcomes)
    assert len(set(acked)) == 2000
    assert_stored_exactly_once(database_url, prefix, acked)
    assert len(stored_ids(database_url, prefix)) == 2000
    # Concurrent requests shared transactions (group commit): some batch held several.
    batches = [r for r in log_records(running.logs()) if r.get("event") == "batch_stored"]
    assert sum(b["events"] for b in batches) == 2000
    assert max(b["deliveries"] for b in batches) > 1
    stop(running)


async def test_a_body_that_never_arrives_gets_408_not_a_hang(
    collector_process: Callable[..., CollectorProcess], database_url: str
) -> None:
    running = await in_thread(lambda: start(collector_process, http_config(database_url)))
    reader, writer = await asyncio.open_connection(running.host, running.port)
    try:
        # The headers promise 100 bytes; one arrives, the rest never does.
        writer.write(
            b"POST /webhook/events HTTP/1.1\r\nhost: test\r\n"
            b"content-type: application/json\r\ncontent-length: 100\r\n\r\n{"
        )
        await writer.drain()
        with anyio.fail_after(REQUEST_TIMEOUT_S + 30):
            response = await read_response(reader)
            assert await reader.read() == b""  # and the connection is closed
    finally:
        writer.close()
    assert response.status == 408
    assert response.headers["content-type"] == "application/problem+json"
    assert "request_timeout_s" in response.json()["detail"]
    await in_thread(lambda: stop(running))


# --- backpressure ---------------------------------------------------------------------------


def cloudevents(make: Callable[[int], RawRequest], numbers: range) -> RawRequest:
    """Requests `numbers` of `make` as one batch-mode request."""
    docs = [orjson.loads(make(n).body) for n in numbers]
    return RawRequest(
        "POST",
        "/webhook/events",
        (("content-type", "application/cloudevents-batch+json"),),
        orjson.dumps(docs),
        tag=",".join(d["id"] for d in docs),
    )


async def until(condition: Callable[[], Any], timeout: float = 60) -> None:
    """Poll a condition (a function or a coroutine function) until true; fail after `timeout`."""
    with anyio.fail_after(timeout):
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await anyio.sleep(0.05)


async def test_backpressure_when_commits_stall_full_queue_answers_503_after_waiting(
    collector_process: Callable[..., CollectorProcess], database_url: str
) -> None:
    """A stalled commit (a table lock) fills the queue: waiting senders get 503, not a hang."""
    config = http_config(
        database_url,
        pipeline="queue_size = 4\nbatch_size = 1\nlinger_ms = 0",
        source="queue_wait_s = 0.5",
        request_timeout_s=60,  # the senders held in the queue get their commit in the end
    )
    running = await in_thread(lambda: start(collector_process, config))
    make = single_event(unique("stall"))
    answers: dict[int, httpx.Response] = {}
    async with (
        httpx.AsyncClient(base_url=running.url, timeout=90) as client,
        await psycopg.AsyncConnection.connect(database_url) as locker,
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as observer,
        anyio.create_task_group() as senders,
    ):

        async def send(n: int, request: RawRequest | None = None) -> httpx.Response:
            request = request or make(n)
            answers[n] = await client.post(
                request.path, content=request.body, headers=dict(request.headers)
            )
            return answers[n]

        async def depth() -> int:
            return int((await client.get("/readyz")).json()["queue_depth"])

        assert (await send(0)).status_code == 202
        await locker.execute("LOCK TABLE collector.event_identities IN ACCESS EXCLUSIVE MODE")

        async def blocked() -> int:
            """Ingest calls waiting on the lock: one per pipeline writer that took a batch."""
            cur = await observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                (locker.info.backend_pid,),
            )
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

        # Single events, one at a time: each is taken by a writer that then waits on the lock
        # (however many writers the pipeline runs), until one stays in the queue.
        held = 0
        while await depth() == 0:
            held += 1
            before = await blocked()
            senders.start_soon(send, held)

            async def taken_or_queued(before: int = before) -> bool:
                return await blocked() > before or await depth() > 0

            await until(taken_or_queued)
            assert held <= 16, "writers never stopped taking deliveries"
        assert await depth() == 1
        # Four more events do not fit next to the one queued: wait queue_wait_s, then 503.
        too_many = await send(100, cloudevents(make, range(100, 104)))
        assert too_many.status_code == 503, too_many.text
        assert int(too_many.headers["retry-after"]) >= 1
        assert too_many.headers["content-type"] == "application/problem+json"
        assert too_many.json()["detail"] == "the queue is full"
        for n in (200, 201, 202):  # fill the queue: 4 of 4 places
            senders.start_soon(send, n)

        async def saturated() -> bool:
            ready = await client.get("/readyz")
            return ready.status_code == 503 and "queue full" in ready.json()["problems"]

        await until(saturated)
        # With the queue full, a new request waits queue_wait_s for room too, then 503.
        refused = await send(300)
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["detail"] == "the queue is full"

        await locker.commit()  # the database moves again: everything queued is committed
    accepted = [0, *range(1, held + 1), 200, 201, 202]
    statuses = {n: r.status_code for n, r in answers.items()}
    assert statuses == {**dict.fromkeys(accepted, 202), 100: 503, 300: 503}
    for n in accepted:
        assert answers[n].json() == {"accepted": 1, "duplicates": 0, "ids": [make(n).tag]}
    prefix = make(0).tag.rsplit("-", 1)[0]
    # Refused requests were never queued: nothing of them is stored.
    assert sorted(stored_ids(database_url, prefix)) == sorted(make(n).tag for n in accepted)
    async with httpx.AsyncClient(base_url=running.url) as client:
        assert (await client.get("/readyz")).status_code == 200
    await in_thread(lambda: stop(running))


async def test_backpressure_with_a_full_queue_and_the_database_down(
    collector_process: Callable[..., CollectorProcess], tmp_path: Path
) -> None:
    with dedicated_postgres(tmp_path) as server:
        config = http_config(
            server.url,
            pipeline="queue_size = 4\nbatch_size = 2\nlinger_ms = 1",
            source="queue_wait_s = 0.5",
        )
        running = await in_thread(lambda: start(collector_process, config))
        prefix = unique("bp")
        make = single_event(prefix)
        async with httpx.AsyncClient(
            base_url=running.url, timeout=REQUEST_TIMEOUT_S + 10
        ) as client:
            first = make(0)
            ok = await client.post(first.path, content=first.body, headers=dict(first.headers))
            assert ok.status_code == 202, ok.text
            assert (await client.get("/readyz")).status_code == 200

            await in_thread(server.stop)
            # Many senders at once: the queue (4 events) fills, the sink finds the database
            # gone; every request is answered 503, none hangs past request_timeout_s.
            burst = Load(
                running.host,
                running.port,
                lambda n: make(1 + n),
                connections=30,
                total=30,
                request_timeout_s=REQUEST_TIMEOUT_S + 10,
                deadline_s=60,
            )
            await burst.run()
            assert burst.statuses() == {503: 30}, burst.statuses()
            details = assert_unavailable_answers(burst.outcomes)
            # The first senders waited for a commit that could not come...
            assert any("not committed within" in d for d in details), details
            # ...and once the sink has seen the outage, new requests are refused at once.
            refusals: list[str] = []

            async def refused_at_once() -> bool:
                later = make(100 + len(refusals))
                answer = await client.post(
                    later.path, content=later.body, headers=dict(later.headers)
                )
                assert answer.status_code == 503, answer.text
                assert int(answer.headers["retry-after"]) >= 1
                refusals.append(answer.json()["detail"])
                return "cannot accept events now" in refusals[-1]

            await until(refused_at_once)
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert any("database unreachable" in p for p in ready.json()["problems"])

            await in_thread(server.start)

            async def accepted_again() -> bool:
                retry = make(200)
                answer = await client.post(
                    retry.path, content=retry.body, headers=dict(retry.headers)
                )
                return answer.status_code == 202

            await until(accepted_again, timeout=90)
            assert (await client.get("/readyz")).status_code == 200
        await in_thread(lambda: stop(running))
        # Events that were answered 503 after being queued were still written, once.
        stored = stored_ids(server.url, prefix)
        assert len(stored) == len(set(stored))
        assert {f"{prefix}-000000", f"{prefix}-000200"} <= set(stored)


# --- a database outage during load ----------------------------------------------------------


async def test_postgres_outage_during_load_loses_no_acknowledged_event(
    collector_process: Callable[..., CollectorProcess], tmp_path: Path
) -> None:
    with dedicated_postgres(tmp_path) as server:
        config = http_config(server.url, source="queue_wait_s = 1")
        running = await in_thread(lambda: start(collector_process, config))
        prefix = unique("outage")
        load = Load(
            running.host,
            running.port,
            single_event(prefix),
            connections=20,
            total=None,
            request_timeout_s=REQUEST_TIMEOUT_S + 10,  # a hang shows as "no answer"
            deadline_s=240,
            pause_after_503_s=0.05,
        )

        def count(status: int, detail: str = "") -> int:
            return sum(
                1
                for o in load.outcomes
                if o.response is not None
                and o.response.status == status
                and detail.encode() in o.response.body
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(load.run)
            await until(lambda: count(202) >= 300)
            await in_thread(server.stop)
            # Once the sink has seen the outage, requests are refused at once, not held.
            await until(lambda: count(503, "cannot accept events now") >= 100)
            accepted_while_down = count(202)
            await in_thread(server.start)
            await until(lambda: count(202) >= accepted_while_down + 300, timeout=90)
            load.stop.set()

        assert "no answer" not in load.statuses(), load.statuses()
        assert set(load.statuses()) == {202, 503}, load.statuses()
        assert_unavailable_answers(load.outcomes)
        acked = acknowledged(load.outcomes)
        await in_thread(lambda: stop(running))
        assert_stored_exactly_once(server.url, prefix, acked)
        log = running.logs()
        assert "database_unavailable" in log
        assert "database_available" in log

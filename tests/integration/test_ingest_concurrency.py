"""`collector.ingest` called by several writers at once, as the pipeline's writers do.

Overlapping batches in different orders must neither deadlock nor store an identity twice:
each key is stored exactly once and every other occurrence is counted as a duplicate.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import anyio
import psycopg
import pytest

from collector.db.queries import queries
from collector.events import Event
from collector.sinks import pgarrays
from collector.sinks.postgres import _parameters

pytestmark = pytest.mark.anyio

NOW = datetime.now(UTC)  # its time partition exists: migrations create them around now
WRITERS = 4
ROUNDS = 12
KEYS = 2000


def event(n: int, time: datetime = NOW) -> Event:
    return Event(
        id=f"e{n}",
        source=f"/src/{n % 7}",
        type="com.example.t",
        time=time,
        family="raw",
        payload=f'{{"n": {n}}}'.encode(),
        received_at=NOW,
        received_via="test",
    )


async def test_concurrent_overlapping_batches_store_each_identity_once(database_url: str) -> None:
    stored = 0
    duplicates = 0

    async def writer(seed: int) -> None:
        nonlocal stored, duplicates
        rng = random.Random(seed)
        conn: psycopg.AsyncConnection[Any] = await psycopg.AsyncConnection.connect(
            database_url, autocommit=True
        )
        pgarrays.register(conn.adapters)  # as the postgres sink configures its connections
        async with conn:
            for _ in range(ROUNDS):
                batch = [event(n) for n in rng.sample(range(KEYS), KEYS // 2)]
                cur = await conn.execute(queries()["ingest"], _parameters(batch, []))
                row = await cur.fetchone()
                assert row is not None
                assert row[0] + len(row[1]) == len(batch)
                stored += row[0]
                duplicates += len(row[1])

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            for seed in range(WRITERS):
                tg.start_soon(writer, seed)

    with psycopg.connect(database_url, autocommit=True) as conn:
        events = conn.execute("SELECT count(*), count(DISTINCT id) FROM api.events").fetchone()
        identities = conn.execute("SELECT count(*) FROM collector.event_identities").fetchone()
    assert events is not None
    assert identities is not None
    assert events[0] == events[1] == identities[0] == stored
    assert stored + duplicates == WRITERS * ROUNDS * (KEYS // 2)


async def test_concurrent_batches_create_a_new_time_partition_once(database_url: str) -> None:
    # Events of a month without a partition yet, from writers with distinct identities: one
    # creates the partition, the others wait for it and use it.
    then = datetime(2021, 2, 3, tzinfo=UTC)

    async def writer(first: int) -> None:
        conn: psycopg.AsyncConnection[Any] = await psycopg.AsyncConnection.connect(
            database_url, autocommit=True
        )
        pgarrays.register(conn.adapters)  # as the postgres sink configures its connections
        async with conn:
            batch = [event(n, then) for n in range(first, first + 100)]
            cur = await conn.execute(queries()["ingest"], _parameters(batch, []))
            row = await cur.fetchone()
            assert row is not None
            assert row[0] == len(batch)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for w in range(WRITERS):
                tg.start_soon(writer, w * 1000)

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM api.events WHERE time = %s", (then,)).fetchone()
    assert row == (WRITERS * 100,)

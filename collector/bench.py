"""Benchmarks: commands that print figures and a ratio to a baseline measured in the same run.

`collector bench ingest` stores synthetic events through the postgres sink (collector.ingest,
one call per batch) in a scratch database next to the configured one, against a raw COPY of
the same payloads into a bare table, and prints events/s for both and their ratio.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import orjson
from psycopg import sql
from psycopg.conninfo import make_conninfo

from collector import app, logs
from collector.db import migrate as migrations
from collector.db.queries import queries
from collector.events import Event
from collector.ports import Batch
from collector.settings import config_path, load_settings
from collector.sinks.postgres import PostgresSink


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    from collector import bench_nats

    bench_nats.add_parsers(commands, common)
    ingest = commands.add_parser(
        "ingest",
        parents=[common],
        help="events/s through collector.ingest against raw COPY",
        description="Store synthetic CloudEvents through the postgres sink in a scratch "
        "database (created next to the configured one and dropped after), against a raw COPY "
        "of the same payloads measured in the same run; print events/s and the ratio.",
    )
    ingest.add_argument("--events", type=int, default=100_000, help="events to store")
    ingest.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="events per call (default: pipeline.batch_size)",
    )
    ingest.set_defaults(handler=cmd_ingest)


def cmd_ingest(args: argparse.Namespace) -> int:
    settings = load_settings(config_path(args.config))
    logs.configure(settings.log.level, settings.log.format)
    batch_size = args.batch_size or settings.pipeline.batch_size
    with app.database_url(settings) as url:
        copy_s, ingest_s = anyio.run(_ingest, url, args.events, batch_size)
    print(f"events: {args.events}, batch size {batch_size}")
    print(f"raw COPY:         {args.events / copy_s:>10,.0f} events/s ({copy_s:.2f} s)")
    print(f"collector.ingest: {args.events / ingest_s:>10,.0f} events/s ({ingest_s:.2f} s)")
    print(f"ratio: {copy_s / ingest_s:.2f}")
    return 0


async def _ingest(url: str, count: int, batch_size: int) -> tuple[float, float]:
    name = sql.Identifier(f"collector_bench_{os.getpid()}")
    async with await app.connect(url) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
    try:
        bench_url = make_conninfo(url, dbname=f"collector_bench_{os.getpid()}")
        events = _events(count)
        async with await app.connect(bench_url) as conn:
            await migrations.migrate(conn)
            await conn.execute(queries()["bench_copy_table"])
            started = time.perf_counter()
            async with conn.cursor() as cursor, cursor.copy(queries()["bench_copy"]) as copy:
                for event in events:
                    await copy.write_row((event.payload,))
            copy_s = time.perf_counter() - started
        sink = PostgresSink("bench", bench_url, pool_size=1)
        await sink.open()
        try:
            started = time.perf_counter()
            for start in range(0, count, batch_size):
                await sink.write(Batch(events[start : start + batch_size]))
            ingest_s = time.perf_counter() - started
        finally:
            await sink.close()
    finally:
        async with await app.connect(url) as admin:
            await admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
    return copy_s, ingest_s


def _events(count: int) -> list[Event]:
    now = datetime.now(UTC)
    events = []
    for n in range(count):
        at = now - timedelta(seconds=count - n)
        doc = {
            "specversion": "1.0",
            "id": f"bench-{n}",
            "source": "/bench",
            "type": "com.example.bench",
            "time": at.isoformat(),
            "data": {"n": n, "text": "x" * 200},
        }
        events.append(
            Event(
                id=f"bench-{n}",
                source="/bench",
                type="com.example.bench",
                time=at,
                family="cloudevents",
                payload=orjson.dumps(doc).decode(),
                received_at=now,
                received_via="bench",
            )
        )
    return events

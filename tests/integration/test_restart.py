"""A PostgreSQL restart under `collector run` loses nothing and stores nothing twice.

The test owns a dedicated embedded server (`private_postgres`: the session one is shared), stops it
while the collector ingests a folder, and starts it again: claimed files must wait, not fail.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
import psycopg

from collector.db import migrate as migrations
from collector.db.embedded import EmbeddedPostgres
from tests.conftest import CollectorProcess, wait_for

FILES = 50
EVENTS_PER_FILE = 100


def write_file(inbox: Path, number: int) -> None:
    now = datetime.now(UTC).isoformat()
    lines = [
        orjson.dumps(
            {
                "specversion": "1.0",
                "id": f"f{number:02d}-e{i:03d}",
                "source": "/restart-test",
                "type": "test.restart",
                "time": now,
                "data": {"file": number, "event": i},
            }
        )
        for i in range(EVENTS_PER_FILE)
    ]
    staging = inbox / f"batch-{number:02d}.jsonl.tmp"  # ignored until renamed
    staging.write_bytes(b"\n".join(lines) + b"\n")
    staging.rename(inbox / f"batch-{number:02d}.jsonl")


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def claimed_files(inbox: Path) -> list[str]:
    """Files claimed by the folder source: each in a folder of its own under .processing."""
    return sorted(name for _, _, names in os.walk(inbox / ".processing") for name in names)


def test_postgres_restart_loses_nothing(
    private_postgres: EmbeddedPostgres,
    tmp_path: Path,
    collector_process: Callable[..., CollectorProcess],
) -> None:
    server = private_postgres

    async def migrate() -> None:
        async with await psycopg.AsyncConnection.connect(server.url, autocommit=True) as conn:
            await migrations.migrate(conn)

    anyio.run(migrate)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = f"""
[database]
url = "{server.url}"
migrate = "check"

[pipeline]
batch_size = 100
linger_ms = 5

[sources.inbox]
type = "folder"
path = "{inbox}"
settle_s = 0
poll_interval_s = 0.05
max_files_in_flight = 4

[sinks.db]
type = "postgres"
"""
    proc = collector_process(config).start()
    done, failed = inbox / "done", inbox / "failed"

    def collector_started() -> bool:
        assert proc.proc is not None
        assert proc.proc.poll() is None, proc.logs()
        return "collector_started" in proc.logs()

    wait_for(collector_started, timeout=60)

    first_half = FILES // 2
    for number in range(first_half):
        write_file(inbox, number)

    def ingest_under_way() -> bool:
        return len(files(done)) >= 1

    wait_for(ingest_under_way, timeout=60)
    server.stop()  # pg_ctl stop -m fast: open connections are terminated
    for number in range(first_half, FILES):
        write_file(inbox, number)

    def database_unavailable_logged() -> bool:
        return "database_unavailable" in proc.logs()

    def files_held_as_claimed() -> bool:
        return len(claimed_files(inbox)) >= 1

    wait_for(database_unavailable_logged, timeout=60)
    wait_for(files_held_as_claimed, timeout=60)
    time.sleep(3)  # the outage lasts a while; the collector must keep waiting meanwhile
    assert proc.proc is not None
    assert proc.proc.poll() is None, proc.logs()
    assert files(failed) == []
    assert len(claimed_files(inbox)) >= 1
    assert len(files(done)) < FILES

    server.start()

    def everything_done() -> bool:
        return len(files(done)) == FILES

    wait_for(everything_done, timeout=120)
    assert files(failed) == []
    assert claimed_files(inbox) == []
    assert [n for n in files(inbox)] == []
    assert files(done) == [f"batch-{n:02d}.jsonl" for n in range(FILES)]

    with psycopg.connect(server.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (source, type, id)), count(DISTINCT id)"
            " FROM api.events WHERE source = '/restart-test'"
        ).fetchone()
        rejected = conn.execute("SELECT count(*) FROM api.rejected_events").fetchone()
    total = FILES * EVENTS_PER_FILE
    assert row == (total, total, total)
    assert rejected == (0,)

    assert proc.stop() == 0, proc.logs()
    log: Any = proc.logs()
    assert "Traceback" not in log

"""ClusterCockpit messages for tests: line builders, and storing lines the way the lineprotocol
HTTP source does (ccmessage.decode, then the postgres sink).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import orjson

from collector import ccmessage
from collector.events import Origin
from collector.ports import Batch, BatchResult
from collector.sinks.postgres import PostgresSink

RECEIVED = datetime(2023, 11, 15, 12, 0, tzinfo=UTC)


def quoted(text: str) -> str:
    """A line-protocol string field value."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def job_line(
    name: str, job: dict[str, Any], timestamp: int | None, *, spelling: str = "measurement"
) -> str:
    """A start_job / stop_job event as ClusterCockpit sends it: as the measurement, or as
    `job,function=<name>`."""
    key = name if spelling == "measurement" else f"job,function={name}"
    event = quoted(orjson.dumps(job).decode())
    line = f"{key},cluster=fritz,hostname=admin,type=node,type-id=0 event={event}"
    return line if timestamp is None else f"{line} {timestamp}"


def store(
    url: str,
    text: str,
    *,
    cluster: str | None = None,
    received_at: datetime = RECEIVED,
) -> tuple[ccmessage.Decoded, BatchResult]:
    """Decode line protocol and commit it in one batch through the postgres sink."""
    decoded = ccmessage.decode(text, Origin("cc", received_at), cluster=cluster)

    async def write() -> BatchResult:
        sink = PostgresSink("db", url, pool_size=1)
        await sink.open()
        try:
            # The sink retries server errors forever: a broken trigger must fail, not hang.
            with anyio.fail_after(30):
                return await sink.write(Batch(decoded.events, decoded.rejected))
        finally:
            await sink.close()

    return decoded, anyio.run(write)

"""The postgres sink: each batch is one call of `collector.ingest` — one round trip, one commit.

Connection trouble and other server-side failures are retried with backoff for as long as it
takes (the pipeline's queue fills and backpressures the sources meanwhile). Only data that
PostgreSQL itself refuses is isolated by bisection and stored as rejected, with the reason.
"""

from __future__ import annotations

import random
from typing import Any

import anyio
import orjson
import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from collector.db.queries import queries
from collector.errors import first_line
from collector.events import Event, RejectedEvent
from collector.ports import Batch, BatchResult
from collector.sinks import pgarrays
from collector.sinks.pgarrays import text_array, timestamptz_array

log = structlog.get_logger("collector.sinks.postgres")

# SQLSTATE classes that mean "this data", not "this server": 22 data exception,
# 54 program limit exceeded (e.g. an index row too large).
_DATA_ERROR_CLASSES = ("22", "54")


class PostgresSink:
    def __init__(self, name: str, url: str, pool_size: int = 4, max_backoff_s: float = 5.0) -> None:
        self.name = name
        self.buffer = 0
        self.healthy = True
        self._pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            # pgarrays sends text as UTF-8 bytes: the server must read them as such.
            kwargs={"autocommit": True, "client_encoding": "UTF8"},
            configure=_configure,
            name=f"collector-{name}",
            timeout=10,
        )
        self._max_backoff_s = max_backoff_s
        self.database_errors = 0

    async def open(self) -> None:
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """True when the database answers within the timeout (for /readyz)."""
        with anyio.move_on_after(timeout_s):
            try:
                async with self._pool.connection(timeout=timeout_s) as conn:
                    await conn.execute("SELECT 1")
                return True
            except psycopg.Error:
                return False
        return False

    async def write(self, batch: Batch) -> BatchResult:
        attempt = 0
        while True:
            try:
                result = await self._write_isolating(batch)
            except psycopg.Error as exc:
                attempt += 1
                self.database_errors += 1
                self.healthy = False
                delay = min(self._max_backoff_s, 0.1 * 2 ** min(attempt, 10))
                delay *= 0.5 + random.random() / 2  # noqa: S311 - jitter, not security
                log.warning(
                    "database_unavailable" if _is_connection_error(exc) else "database_error",
                    sink=self.name,
                    attempt=attempt,
                    retry_in_s=round(delay, 2),
                    error=first_line(exc),
                )
                await anyio.sleep(delay)
                continue
            if attempt:
                log.info("database_available", sink=self.name, after_attempts=attempt)
            self.healthy = True
            return result

    async def _write_isolating(self, batch: Batch) -> BatchResult:
        try:
            return await self._call_ingest(batch.events, batch.rejected)
        except psycopg.Error as exc:
            if not _is_data_error(exc) or not batch.events:
                raise
            reason = f"PostgreSQL refused the event: {first_line(exc)}"
        if len(batch.events) == 1:
            refused = _refused(batch.events[0], reason)
            result = await self._call_ingest([], [*batch.rejected, refused])
            return BatchResult(
                stored=0, duplicates=frozenset(), rejected=result.rejected, refused=frozenset({0})
            )
        middle = len(batch.events) // 2
        first = await self._write_isolating(Batch(batch.events[:middle], batch.rejected))
        second = await self._write_isolating(Batch(batch.events[middle:], []))
        return BatchResult(
            stored=first.stored + second.stored,
            duplicates=first.duplicates | {i + middle for i in second.duplicates},
            rejected=first.rejected + second.rejected,
            refused=first.refused | {i + middle for i in second.refused},
        )

    async def _call_ingest(self, events: list[Event], rejected: list[RejectedEvent]) -> BatchResult:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                queries()["ingest"], _parameters(events, rejected), prepare=True
            )
            row = await cur.fetchone()
        assert row is not None
        stored, positions, n_rejected = row
        return BatchResult(
            stored=int(stored),
            duplicates=frozenset(int(p) - 1 for p in positions),
            rejected=int(n_rejected),
        )


def _refused(event: Event, reason: str) -> RejectedEvent:
    return RejectedEvent(
        reason=reason,
        raw=event.payload,
        received_at=event.received_at,
        received_via=event.received_via,
        location=None,
        metadata={**event.metadata, "id": event.id, "source": event.source, "type": event.type},
    )


def _is_data_error(exc: psycopg.Error) -> bool:
    # psycopg raises DataError itself (no SQLSTATE) for values it cannot send, e.g. a NUL.
    if isinstance(exc, psycopg.DataError):
        return True
    return bool(exc.sqlstate) and str(exc.sqlstate)[:2] in _DATA_ERROR_CLASSES


def _is_connection_error(exc: psycopg.Error) -> bool:
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in {"57P01", "57P02", "57P03"}


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    pgarrays.register(conn.adapters)


def _parameters(events: list[Event], rejected: list[RejectedEvent]) -> dict[str, Any]:
    # The events' arrays are built whole (pgarrays): psycopg's element-by-element dumping
    # was half of the collector's CPU per event. Rejections are few: psycopg dumps those.
    dumps = orjson.dumps
    return {
        "ids": text_array([e.id for e in events]),
        "sources": text_array([e.source for e in events], repeated=True),
        "types": text_array([e.type for e in events], repeated=True),
        "times": timestamptz_array([e.time for e in events]),
        "families": text_array([e.family for e in events], repeated=True),
        "subjects": text_array([e.subject for e in events]),
        "subject_types": text_array([e.subject_type for e in events], repeated=True),
        "predicates": text_array([e.predicate for e in events], repeated=True),
        "type_versions": text_array([e.type_version for e in events], repeated=True),
        "payloads": text_array([e.payload for e in events]),
        "metadatas": text_array([dumps(e.metadata) if e.metadata else None for e in events]),
        "received_ats": timestamptz_array([e.received_at for e in events], repeated=True),
        "received_vias": text_array([e.received_via for e in events], repeated=True),
        "rejected_reasons": [r.reason for r in rejected],
        "rejected_locations": [r.location for r in rejected],
        "rejected_raws": [r.raw_text for r in rejected],
        "rejected_sizes": [len(r.raw) for r in rejected],
        "rejected_received_ats": [r.received_at for r in rejected],
        "rejected_received_vias": [r.received_via for r in rejected],
        "rejected_metadatas": [dumps(r.metadata).decode() for r in rejected],
    }

"""Partition maintenance: partitions created ahead, those past their retention dropped.

`collector run` does it every `maintenance.interval_s` and `collector maintenance` once. Retention
never deletes rows: it drops whole time partitions (sql/migrations/0003_hpc_retention.sql says
what becomes of identities and jobs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
import structlog

from collector.db.queries import queries
from collector.settings import RetentionSettings

log = structlog.get_logger("collector.maintenance")


@dataclass(frozen=True)
class FamilyMaintenance:
    family: str
    retention: str | None  # a PostgreSQL interval; None keeps everything
    created: list[str]
    dropped: list[str]
    kept: list[str] = field(default_factory=list)  # expired, but the table was busy


async def maintain(
    conn: psycopg.AsyncConnection[Any], retention: RetentionSettings
) -> list[FamilyMaintenance]:
    """Create partitions ahead, then drop expired ones family by family (one transaction each)."""
    q = queries()
    created: dict[str, list[str]] = {}
    cursor = await conn.execute(q["create_partitions_ahead"])
    for family, name in await cursor.fetchall():
        created.setdefault(str(family), []).append(str(name))
    keep = retention.by_family()
    done = []
    for family in sorted(keep.keys() | created.keys()):
        dropped: list[str] = []
        kept: list[str] = []
        interval = keep.get(family)
        if interval is not None:
            dropped, kept = await _drop_expired(conn, family, interval)
        done.append(
            FamilyMaintenance(family, interval, sorted(created.get(family, [])), dropped, kept)
        )
    return done


async def _drop_expired(
    conn: psycopg.AsyncConnection[Any], family: str, retention: str
) -> tuple[list[str], list[str]]:
    """The partitions dropped, and those kept because a query held the family's table: the SQL
    function says that only in a WARNING, so the warning is caught, logged, and followed by a
    look at what is still expired."""
    q = queries()
    params = {"family": family, "retention": retention}
    warnings: list[str] = []

    def collect(diagnostic: psycopg.errors.Diagnostic) -> None:
        if diagnostic.severity_nonlocalized == "WARNING":
            warnings.append(diagnostic.message_primary or "")

    conn.add_notice_handler(collect)
    try:
        cursor = await conn.execute(q["drop_expired_partitions"], params)
        dropped = [str(name) for (name,) in await cursor.fetchall()]
    finally:
        conn.remove_notice_handler(collect)
    if not warnings:
        return dropped, []
    cursor = await conn.execute(q["expired_partitions"], params)
    kept = [str(name) for (name,) in await cursor.fetchall()]
    log.warning("partitions_kept", family=family, reason="; ".join(warnings), partitions=kept)
    return dropped, kept


def log_maintenance(done: list[FamilyMaintenance]) -> None:
    for family in done:
        if family.created:
            log.info("partitions_created", family=family.family, partitions=family.created)
        if family.dropped:
            log.info(
                "partitions_dropped",
                family=family.family,
                retention=family.retention,
                partitions=family.dropped,
            )
    log.info(
        "maintenance_done",
        created=sum(len(f.created) for f in done),
        dropped=sum(len(f.dropped) for f in done),
        kept=sum(len(f.kept) for f in done),
    )


def describe(done: list[FamilyMaintenance]) -> list[str]:
    """What `collector maintenance` prints: a line per family, a line per partition."""
    lines = []
    for family in done:
        keep = family.retention or "forever"
        busy = f", kept {len(family.kept)} (table busy)" if family.kept else ""
        lines.append(
            f"{family.family}: retention {keep}; "
            f"created {len(family.created)}, dropped {len(family.dropped)}{busy}"
        )
        lines += [f"  created collector.{name}" for name in family.created]
        lines += [f"  dropped collector.{name}" for name in family.dropped]
        lines += [f"  kept collector.{name} (a later run drops it)" for name in family.kept]
    return lines

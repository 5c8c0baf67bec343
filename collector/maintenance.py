"""Partition maintenance: partitions created ahead, those past their retention dropped.

`collector run` does it every `maintenance.interval_s` and `collector maintenance` once. Retention
never deletes rows: it drops whole time partitions (sql/migrations/0003_hpc_retention.sql says
what becomes of identities and jobs).
"""

from __future__ import annotations

from dataclasses import dataclass
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
        interval = keep.get(family)
        if interval is not None:
            cursor = await conn.execute(
                q["drop_expired_partitions"], {"family": family, "retention": interval}
            )
            dropped = [str(name) for (name,) in await cursor.fetchall()]
        done.append(FamilyMaintenance(family, interval, sorted(created.get(family, [])), dropped))
    return done


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
    )


def describe(done: list[FamilyMaintenance]) -> list[str]:
    """What `collector maintenance` prints: a line per family, a line per partition."""
    lines = []
    for family in done:
        keep = family.retention or "forever"
        lines.append(
            f"{family.family}: retention {keep}; "
            f"created {len(family.created)}, dropped {len(family.dropped)}"
        )
        lines += [f"  created collector.{name}" for name in family.created]
        lines += [f"  dropped collector.{name}" for name in family.dropped]
    return lines

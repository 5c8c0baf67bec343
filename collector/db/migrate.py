"""The migration runner: `sql/migrations/NNNN_name.sql` applied in order, one transaction each.

An advisory lock serialises concurrent runners; a checksum per file is recorded so an edited,
already-applied migration is refused, and so is a database that knows migrations we do not.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import structlog

from collector.db.queries import queries, sql_dir
from collector.errors import MigrationError, first_line

log = structlog.get_logger("collector")

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str = field(repr=False)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def file_name(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


@dataclass(frozen=True)
class Status:
    applied: list[Migration]
    pending: list[Migration]


def load_migrations(folder: Path | None = None) -> list[Migration]:
    folder = folder or sql_dir() / "migrations"
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name!r}: name it NNNN_description.sql")
        version = int(match[1])
        if version in found:
            raise MigrationError(
                f"migrations {found[version].file_name} and {path.name} share version {version}"
            )
        found[version] = Migration(version, match[2], path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def status(conn: psycopg.AsyncConnection[Any], known: list[Migration]) -> Status:
    """Compare the ledger with the files; refuse edited or unknown migrations."""
    q = queries()
    exists = await (await conn.execute(q["ledger_exists"])).fetchone()
    ledger: list[tuple[int, str, str]] = []
    if exists is not None and exists[0]:
        cur = await conn.execute(q["applied_migrations"])
        ledger = [(int(v), str(n), str(c)) for v, n, c in await cur.fetchall()]
    by_version = {m.version: m for m in known}
    applied: list[Migration] = []
    for version, name, checksum in ledger:
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"database has migration {version:04d}_{name} that this collector does not know: "
                "it was migrated by a newer collector; upgrade collector"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {migration.file_name} was edited after it was applied "
                f"(checksum {checksum[:12]} in the database, {migration.checksum[:12]} on disk): "
                "restore the original file and put the change in a new migration"
            )
        applied.append(migration)
    done = {m.version for m in applied}
    return Status(applied=applied, pending=[m for m in known if m.version not in done])


async def migrate(
    conn: psycopg.AsyncConnection[Any], known: list[Migration] | None = None
) -> list[Migration]:
    """Apply every pending migration; return those applied. `conn` must be in autocommit."""
    known = load_migrations() if known is None else known
    q = queries()
    await conn.execute(q["migration_lock"])
    try:
        pending = (await status(conn, known)).pending
        for migration in pending:
            try:
                async with conn.transaction():
                    # Our own shipped files: trusted SQL, several statements each.
                    await conn.execute(migration.sql)  # type: ignore[arg-type,unused-ignore]
                    await conn.execute(
                        q["record_migration"],
                        (migration.version, migration.name, migration.checksum),
                    )
            except psycopg.Error as exc:
                raise MigrationError(
                    f"migration {migration.file_name} failed and was rolled back: {first_line(exc)}"
                ) from exc
        return pending
    finally:
        if not conn.closed:  # closed (stopped midway, see psycopg's cancel): the lock went too
            await conn.execute(q["migration_unlock"])


async def migrate_or_check(conn: psycopg.AsyncConnection[Any], mode: str) -> None:
    """Apply pending migrations (mode auto) or refuse to go on with them pending (check)."""
    known = load_migrations()
    state = await status(conn, known)
    if state.pending and mode == "check":
        names = ", ".join(m.file_name for m in state.pending)
        raise MigrationError(
            f"database has {len(state.pending)} pending migration(s): {names}; "
            'run `collector migrate` (or set database.migrate = "auto")'
        )
    for migration in await migrate(conn, known):
        log.info("migration_applied", migration=migration.file_name)

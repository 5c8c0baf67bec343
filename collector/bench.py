"""Benchmarks: commands that print figures and a ratio to a baseline measured in the same run.

`collector bench ingest` sends the same generated CDEvents (a) by raw COPY into a bare table,
the database's own ingest ceiling, and (b) through a real `collector run` process, folder source
to PostgreSQL; a fresh database for each timed step, the median of several runs, exact counts.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, LiteralString

import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from collector import demo_events, logs
from collector.cli import positive
from collector.db.embedded import EmbeddedPostgres, layout
from collector.db.queries import queries
from collector.errors import BenchmarkFailed, ConfigError, DatabaseUnavailable, first_line
from collector.settings import config_path

DATABASE_URL_ENV = "COLLECTOR_BENCH_DATABASE_URL"
SOURCE_NAME = "bench"
GOAL_RATIO = 0.6
# The collector under test gets the bench's environment, less what would point it elsewhere
# or add to its work: only COLLECTOR__PIPELINE__* and COLLECTOR__SOURCES__BENCH__* reach it.
_CHILD_ENV_DROPPED = (
    "COLLECTOR_CONFIG",
    "COLLECTOR__DATABASE__",
    "COLLECTOR__LOG__",
    "COLLECTOR__HTTP__",
    "COLLECTOR__SINKS__",
    "COLLECTOR__SOURCES__",
)
_CHILD_ENV_KEPT = ("COLLECTOR__PIPELINE__", f"COLLECTOR__SOURCES__{SOURCE_NAME.upper()}__")


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    from collector import bench_api, bench_http, bench_nats

    bench_nats.add_parsers(commands, common)
    bench_http.add_parsers(commands, common)
    bench_api.add_parsers(commands, common)
    ingest = commands.add_parser(
        "ingest",
        parents=[common],
        help="events/s of folder → PostgreSQL against raw COPY on the same server",
        description="Generate N realistic CDEvents (deterministic from --seed) and ingest them "
        "(a) by raw COPY into a bare table in one transaction — the server's ceiling — and "
        "(b) through `collector run` as a separate process: JSON-lines files renamed into a "
        "folder source's inbox, timed until every row is stored. Fresh database and CHECKPOINT "
        "before each timed step, one warm-up round, the median of --runs runs, exact row "
        "counts checked. Prints events/s, the ratio b/a, the collector's peak RSS and CPU per "
        "event. The collector under test runs on the defaults; the [pipeline] table of "
        "-c/--config, and COLLECTOR__PIPELINE__* and COLLECTOR__SOURCES__BENCH__* environment "
        "variables, change them (its folder source is named 'bench').",
    )
    ingest.add_argument(
        "-n",
        "--events",
        type=positive,
        default=200_000,
        help="events per run (default 200000)",
    )
    ingest.add_argument(
        "--runs", type=positive, default=3, help="timed runs; the median is reported (default 3)"
    )
    ingest.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    ingest.add_argument(
        "--files",
        type=positive,
        default=200,
        help="JSON-lines files the events are split into (default 200)",
    )
    ingest.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_URL_ENV) or None,
        help=f"superuser URL of the PostgreSQL server to measure; databases are created next "
        f"to the one named and dropped afterwards (env {DATABASE_URL_ENV}; default: an "
        "embedded PostgreSQL in a temporary folder)",
    )
    ingest.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds one timed step may take before the run fails (default max(120, events/1000))",
    )
    ingest.set_defaults(handler=cmd_ingest)


@dataclass(frozen=True)
class Workload:
    lines: list[bytes]  # one JSON document each, no newline
    copy_chunks: list[bytes]  # the same events as COPY text rows (ts, type, payload)

    @property
    def n(self) -> int:
        return len(self.lines)

    @property
    def size(self) -> int:
        return sum(len(line) for line in self.lines)


@dataclass(frozen=True)
class Step:
    seconds: float
    n: int
    cpu_s: float  # the client's CPU (baseline) or the collector's (collector step)
    server_cpu_s: float | None  # None when the server is not on this machine
    peak_rss_kb: int = 0

    @property
    def rate(self) -> float:
        return self.n / self.seconds


def cmd_ingest(args: argparse.Namespace) -> int:
    logs.configure("warning")  # the output is figures; the server's progress is noise
    n: int = args.events
    files = min(args.files, n)
    timeout = args.timeout or max(120.0, n / 1000)
    pipeline = pipeline_table(config_path(args.config))
    started = time.monotonic()
    with no_gc():  # millions of small objects: the cyclic GC would triple generation time
        workload = make_workload(demo_events.generate(n, seed=args.seed, now=datetime.now(UTC)))
    print(
        f"bench ingest: {n} CDEvents, {workload.size / n:.0f} B average, "
        f"{workload.size / 1e6:.1f} MB, seed {args.seed}; {files} JSON-lines files; "
        f"{args.runs} runs after one warm-up (generated in {time.monotonic() - started:.1f} s)"
    )
    try:
        baseline, collector = _measure(
            args.database_url, workload, files, args.runs, timeout, pipeline
        )
    except psycopg.Error as exc:
        raise BenchmarkFailed(f"bench: database error: {first_line(exc)}") from None
    a_rate = statistics.median(s.rate for s in baseline)
    b_rate = statistics.median(s.rate for s in collector)
    ratio = b_rate / a_rate
    print(f"baseline raw COPY, one transaction: {a_rate:.0f} events/s (median)")
    print(f"collector folder → PostgreSQL: {b_rate:.0f} events/s (median)")
    print(
        f"ratio collector/baseline: {ratio:.3f} "
        f"(goal ≥ {GOAL_RATIO}: {'met' if ratio >= GOAL_RATIO else 'not met'})"
    )
    print(f"collector peak RSS: {max(s.peak_rss_kb for s in collector) / 1024:.0f} MB (max)")
    print(_cpu_per_event(baseline, collector))
    print(f"total time: {time.monotonic() - started:.0f} s")
    return 0


def _measure(
    database_url: str | None,
    workload: Workload,
    files: int,
    runs: int,
    timeout: float,
    pipeline: str,
) -> tuple[list[Step], list[Step]]:
    """One warm-up round, then `runs` rounds of baseline and collector, one after the other."""
    baseline: list[Step] = []
    collector: list[Step] = []
    with (
        postgres_server(database_url) as (admin_url, where),
        tempfile.TemporaryDirectory(prefix="collector-bench-") as scratch,
    ):
        postmaster = print_notes(admin_url, where)
        bench = IngestBench(admin_url, Path(scratch), pipeline, timeout, postmaster)
        n = workload.n
        warm_n = min(n, max(1000, n // 10))
        warm = _workload_slice(workload, warm_n)
        a = bench.baseline(warm)
        b = bench.collector(warm, max(1, files * warm_n // n))
        print(f"warm-up ({warm_n} events): baseline {a.rate:.0f}/s, collector {b.rate:.0f}/s")
        for run in range(1, runs + 1):
            a = bench.baseline(workload)
            b = bench.collector(workload, files)
            baseline.append(a)
            collector.append(b)
            print(
                f"run {run}: baseline {a.rate:.0f} events/s ({a.seconds:.2f} s; CPU: client "
                f"{a.cpu_s:.1f} s{_server_cpu_note(a)}); collector {b.rate:.0f} events/s "
                f"({b.seconds:.2f} s; CPU: collector {b.cpu_s:.1f} s{_server_cpu_note(b)}; "
                f"peak RSS {b.peak_rss_kb / 1024:.0f} MB); ratio {b.rate / a.rate:.2f}"
            )
    return baseline, collector


def median_us(seconds: list[float | None], events: int) -> str:
    """The median of CPU seconds per run, per event, in µs; runs not measured are left out."""
    known = [v for v in seconds if v is not None]
    return f"{statistics.median(known) / events * 1e6:,.1f} µs" if known else "not measured"


def _cpu_per_event(baseline: list[Step], collector: list[Step]) -> str:
    """Median CPU per event: where the time goes, less noisy than events/s on a shared machine."""
    n = baseline[0].n
    return (
        f"CPU per event (median): baseline server "
        f"{median_us([s.server_cpu_s for s in baseline], n)}; "
        f"collector {median_us([s.cpu_s for s in collector], n)} + server "
        f"{median_us([s.server_cpu_s for s in collector], n)}"
    )


class IngestBench:
    """The two timed steps, each on a fresh database of the server at `admin_url`."""

    def __init__(
        self,
        admin_url: str,
        scratch: Path,
        pipeline: str,
        timeout: float,
        postmaster: int | None,
    ) -> None:
        self.admin_url = admin_url
        self.scratch = scratch
        self.pipeline = pipeline
        self.timeout = timeout
        self.postmaster = postmaster

    def server_cpu(self, database: str) -> dict[int, float] | None:
        return _server_cpu(self.postmaster, database) if self.postmaster else None

    def baseline(self, workload: Workload) -> Step:
        """Raw COPY of the payloads into a bare table, one transaction."""
        q = queries()
        with self.database() as url, connect(url) as conn:
            database = str(conninfo_to_dict(url)["dbname"])
            conn.execute(q["bench_raw_table"])
            conn.execute(q["bench_checkpoint"])
            cpu, server_cpu = own_cpu(), self.server_cpu(database)
            started = time.perf_counter()
            with conn.transaction(), conn.cursor().copy(q["bench_raw_copy"]) as copy:
                for chunk in workload.copy_chunks:
                    copy.write(chunk)
            seconds = time.perf_counter() - started
            cpu = own_cpu() - cpu
            server_cpu_s = cpu_since(server_cpu, self.server_cpu(database))
            check_count(conn, q["bench_raw_count"], workload.n, "baseline")
        return Step(seconds, workload.n, cpu, server_cpu_s)

    def collector(self, workload: Workload, files: int) -> Step:
        """`collector run` as a process: files renamed into its inbox until all are stored."""
        q = queries()
        workdir = Path(tempfile.mkdtemp(prefix="run-", dir=self.scratch))
        inbox = workdir / "inbox"
        inbox.mkdir()
        names = _write_files(inbox, workload.lines, files)
        with (
            self.database() as url,
            collector_process(
                workdir, collector_config(url, _folder_source(inbox), self.pipeline), self.timeout
            ) as proc,
            connect(url) as conn,
        ):
            database = str(conninfo_to_dict(url)["dbname"])
            conn.execute(q["bench_checkpoint"])
            cpu, server_cpu = process_cpu(proc.pid), self.server_cpu(database)
            started = time.perf_counter()
            for name in names:
                os.rename(inbox / f"{name}.tmp", inbox / name)
            _wait_for_files(proc, inbox, len(names), started + self.timeout)
            seconds = time.perf_counter() - started
            cpu = process_cpu(proc.pid) - cpu
            server_cpu_s = cpu_since(server_cpu, self.server_cpu(database))
            peak = peak_rss_kb(proc.pid)
            check_count(conn, q["bench_events_count"], workload.n, "collector")
            check_count(conn, q["bench_rejected_count"], 0, "collector rejections")
        shutil.rmtree(workdir, ignore_errors=True)
        return Step(seconds, workload.n, cpu, server_cpu_s, peak)

    @contextmanager
    def database(self, template: str | None = None) -> Iterator[str]:
        """A fresh database (a copy of `template` if given), dropped on exit."""
        name = f"collector_bench_{uuid.uuid4().hex[:12]}"
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with connect(self.admin_url) as admin:
            admin.execute(create)
        try:
            yield make_conninfo(self.admin_url, dbname=name)
        finally:
            with connect(self.admin_url) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


# -- the workload --------------------------------------------------------------------------


def make_workload(events: list[dict[str, Any]]) -> Workload:
    lines = [orjson.dumps(event) for event in events]
    return Workload(lines, _copy_chunks(events, lines))


def _workload_slice(workload: Workload, n: int) -> Workload:
    if n == workload.n:
        return workload
    return make_workload([orjson.loads(line) for line in workload.lines[:n]])


def _copy_chunks(events: list[dict[str, Any]], lines: list[bytes]) -> list[bytes]:
    """COPY text rows built ahead, so the baseline times the server, not the client."""
    chunks: list[bytes] = []
    rows: list[bytes] = []
    size = 0
    for event, line in zip(events, lines, strict=True):
        context = event["context"]
        # JSON text holds no raw tab or newline; only backslashes need COPY escaping.
        row = b"%s\t%s\t%s\n" % (
            context["timestamp"].encode(),
            context["type"].encode(),
            line.replace(b"\\", b"\\\\"),
        )
        rows.append(row)
        size += len(row)
        if size >= 1 << 20:
            chunks.append(b"".join(rows))
            rows, size = [], 0
    if rows:
        chunks.append(b"".join(rows))
    return chunks


def _write_files(inbox: Path, lines: list[bytes], files: int) -> list[str]:
    """Write the events as `<name>.tmp` (ignored by the source); return the final names."""
    per_file = -(-len(lines) // files)
    names: list[str] = []
    for index, start in enumerate(range(0, len(lines), per_file)):
        name = f"events-{index:05d}.jsonl"
        body = b"\n".join(lines[start : start + per_file]) + b"\n"
        (inbox / f"{name}.tmp").write_bytes(body)
        names.append(name)
    return names


@contextmanager
def no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# -- the collector under test --------------------------------------------------------------


def pipeline_table(config: Path | None) -> str:
    """The [pipeline] table of --config, as TOML, for the collector under test."""
    if config is None:
        return ""
    try:
        data = tomllib.loads(config.read_text())
    except FileNotFoundError:
        raise ConfigError([f"config: file {str(config)!r} does not exist"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config: {config}: invalid TOML: {exc}"]) from None
    table = data.get("pipeline", {})
    if not isinstance(table, dict):
        raise ConfigError([f"config: {config}: pipeline: must be a table"])
    return "[pipeline]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())


def collector_config(url: str, source: str, pipeline: str) -> str:
    """The collector under test: `source` is the TOML of its source and any other tables."""
    return (
        f'[database]\nurl = {toml_value(url)}\nmigrate = "auto"\n\n'
        f'[log]\nlevel = "info"\nformat = "json"\n\n'
        f'{source}\n[sinks.db]\ntype = "postgres"\n\n{pipeline}'
    )


def _folder_source(inbox: Path) -> str:
    return f'[sources.{SOURCE_NAME}]\ntype = "folder"\npath = {toml_value(str(inbox))}\n'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(str(value)).decode()  # a JSON string is a TOML basic string


@contextmanager
def collector_process(
    workdir: Path, config_text: str, timeout: float, ready: bytes = b'"folder_watching"'
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `collector run` in workdir, wait for `ready` in its log; stop it on exit."""
    config = workdir / "collector.toml"
    config.write_text(config_text)
    log = workdir / "collector.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith(_CHILD_ENV_KEPT) or not k.startswith(_CHILD_ENV_DROPPED)
    }
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "run", "--config", str(config)],
            cwd=config.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + timeout
        while ready not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkFailed(
                    f"collector did not start (exit code {proc.poll()}); its log:\n" + tail(log)
                )
            time.sleep(0.05)
        yield proc
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise BenchmarkFailed("collector did not stop within 60 s of SIGTERM") from None
        if code != 0:
            raise BenchmarkFailed(f"collector exited with code {code}; its log:\n" + tail(log))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_for_files(
    proc: subprocess.Popen[bytes], inbox: Path, files: int, deadline: float
) -> None:
    """Until every file is in done/ (moved only after its events are committed)."""
    done, failed = inbox / "done", inbox / "failed"
    while True:
        if _count_files(failed):
            raise BenchmarkFailed(f"collector rejected input: see {failed}")
        if _count_files(done) >= files:
            return
        if proc.poll() is not None:
            raise BenchmarkFailed(f"collector exited early with code {proc.returncode}")
        if time.perf_counter() > deadline:
            raise BenchmarkFailed(
                f"timed out: {_count_files(done)} of {files} files stored (raise --timeout)"
            )
        time.sleep(0.01)


def _count_files(folder: Path) -> int:
    try:
        with os.scandir(folder) as entries:
            return sum(1 for _ in entries)
    except FileNotFoundError:
        return 0


def tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _server_cpu(postmaster: int, database: str) -> dict[int, float] | None:
    """CPU seconds per process of a local PostgreSQL that works for `database`.

    That is the backends connected to it and the shared background processes (WAL writer,
    checkpointer...), not the backends of other databases, which may belong to someone else.
    """
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    try:
        fields = _stat_fields(postmaster)
    except OSError:
        return None
    found[postmaster] = (int(fields[11]) + int(fields[12])) / tick
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            fields = _stat_fields(pid)
            if int(fields[1]) != postmaster:
                continue
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue  # gone meanwhile
        if f" {database} " in title or not _is_backend(title):
            found[pid] = (int(fields[11]) + int(fields[12])) / tick
    return found


def _is_backend(title: str) -> bool:
    # A backend's process title is "postgres: [cluster: ]user database host state".
    return not any(
        word in title
        for word in ("writer", "checkpointer", "launcher", "io worker", "archiver", "logger")
    )


def cpu_since(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    """CPU used between two snapshots; processes started meanwhile count from their start."""
    if before is None or after is None:
        return None
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: [state, ppid, ...] (field 3 onwards)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _server_cpu_note(step: Step) -> str:
    return "" if step.server_cpu_s is None else f", server {step.server_cpu_s:.1f} s"


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the server ----------------------------------------------------------------------------


@contextmanager
def postgres_server(url: str | None) -> Iterator[tuple[str, str]]:
    """(superuser URL, description) of the server to measure; embedded unless a URL is given."""
    if url:
        yield url, _describe_url(url)
        return
    scratch = Path(tempfile.mkdtemp(prefix="collector-bench-pg-"))
    data_dir = scratch / "data"
    pgdata_root = layout(data_dir).pgdata.parent
    try:
        with EmbeddedPostgres(data_dir) as server:
            yield make_conninfo(server.url, dbname="postgres"), "embedded, Unix socket"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if pgdata_root != data_dir:
            shutil.rmtree(pgdata_root, ignore_errors=True)


def _describe_url(url: str) -> str:
    params = conninfo_to_dict(url)
    host = str(params.get("host") or "")
    if not host or host.startswith("/"):
        return "Unix socket"
    return f"TCP {host}:{params.get('port') or 5432}"


def print_notes(
    admin_url: str, where: str, sharing: str = "this client, the collector and the server"
) -> int | None:
    """Print the server's and the client's settings; return the postmaster's pid when local."""
    q = queries()
    with connect(admin_url) as conn:
        row = conn.execute(q["bench_server_settings"]).fetchone()
        assert row is not None
        version, fsync, synchronous_commit, shared_buffers, max_wal_size, backend = row
        # While our backend lives: its parent is the postmaster.
        postmaster = _local_postmaster(int(backend)) if _is_local(admin_url) else None
    print(
        f"server: PostgreSQL {version} ({where}); fsync={fsync}, "
        f"synchronous_commit={synchronous_commit}, shared_buffers={shared_buffers}, "
        f"max_wal_size={max_wal_size}"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"client: Python {sys.version.split()[0]}; {os.cpu_count()} cores shared by "
        f"{sharing}; load average {load}"
        + ("" if postmaster else "; server CPU not measured (not on this machine)")
    )
    return postmaster


def _is_local(url: str) -> bool:
    host = str(conninfo_to_dict(url).get("host") or "")
    return not host or host.startswith("/") or host in {"localhost", "127.0.0.1", "::1"}


def _local_postmaster(backend: int) -> int | None:
    """The parent of our backend process, when it is a PostgreSQL on this machine."""
    try:
        postmaster = int(_stat_fields(backend)[1])
        command = Path(f"/proc/{postmaster}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return postmaster if command.startswith("postgres") else None


def connect(url: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"bench: cannot connect: {first_line(exc)}") from None


def check_count(
    conn: psycopg.Connection[Any], query: LiteralString, expected: int, what: str
) -> None:
    row = conn.execute(query).fetchone()
    found = int(row[0]) if row else -1
    if found != expected:
        problem = "lost" if found < expected else "duplicated"
        raise BenchmarkFailed(
            f"{what}: {found} rows where {expected} were expected "
            f"({abs(found - expected)} {problem})"
        )

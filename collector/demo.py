"""`collector demo`: realistic demo data, stored through the ingest path `collector run` uses.

CDEvents from `demo_events.demo_deliveries` are normalised as the folder and HTTP sources do,
ClusterCockpit line protocol from `demo_events.cluster_lines` is decoded as the `/api/write`
and NATS sources do, and both go through the pipeline into the postgres sink
(`collector.ingest`). Ids come from the seed; times are relative to an anchor, the time of the
first run with that seed, recorded in a marker event: a second run stores the same events
again, all duplicates.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import anyio
import orjson

from collector import ccmessage, demo_events
from collector.db import connection
from collector.db import migrate as migrations
from collector.db.queries import queries
from collector.events import Event, Invalid, Origin, RejectedEvent, normalise
from collector.pipeline import Pipeline, PipelineLimits, wait_committed
from collector.ports import Delivery
from collector.settings import RetentionSettings, Settings
from collector.sinks.postgres import PostgresSink

SOURCE_NAME = "demo"  # received_via of every demo event
MARKER_SOURCE = "collector/demo"
MARKER_TYPE = "dev.collector.demo.seeded"
CLUSTER_DAYS = 14.0  # ClusterCockpit history, within the default retention of 30 days
LINES_PER_MESSAGE = 500  # as a collector would send them: many lines per request


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 1
    services: int = 200
    days: float = 90.0
    nodes: int = 64
    wait_s: float = 30.0  # how long to retry a database that is not reachable (yet)


@dataclass
class FamilyCounts:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0

    @property
    def events(self) -> int:
        return self.stored + self.duplicates + self.rejected


@dataclass
class Summary:
    anchor: datetime
    anchored_by_earlier_run: bool
    plan: demo_events.DemoPlan
    clusters: list[demo_events.Cluster]
    cluster_days: float
    families: dict[str, FamilyCounts] = field(default_factory=dict)
    seconds: float = 0.0
    analyze_seconds: float | None = None  # None: nothing stored, nothing analysed

    def total(self) -> FamilyCounts:
        total = FamilyCounts()
        for counts in self.families.values():
            total.stored += counts.stored
            total.duplicates += counts.duplicates
            total.rejected += counts.rejected
        return total

    def lines(self) -> list[str]:
        groups = Counter(p.name for p in self.plan.groups.values())
        mix = ", ".join(f"{groups[p.name]} {p.name}" for p in demo_events.PERFORMERS)
        days = (self.plan.end - self.plan.start) / timedelta(days=1)
        cluster_text = " and ".join(f"{c.name} ({len(c.hosts)} nodes)" for c in self.clusters)
        anchor = self.anchor.isoformat().replace("+00:00", "Z")
        found = [
            f"demo: seed {self.plan.seed}: {len(self.plan.fleet)} services ({mix}), "
            f"{self.plan.deliveries} deliveries over {days:g} days; clusters {cluster_text} "
            f"over {self.cluster_days:g} days; up to {anchor}"
        ]
        if self.anchored_by_earlier_run:
            found.append(
                f"demo: times are those of the first run with seed {self.plan.seed} ({anchor}); "
                "use another --seed or a fresh database for data up to now"
            )
        total = self.total()
        rate = total.events / self.seconds if self.seconds else 0.0
        found.append(
            f"stored {total.stored} events, {total.duplicates} duplicates, {total.rejected} "
            f"rejected in {self.seconds:.1f} s ({rate:.0f} events/s)"
        )
        for family in sorted(self.families):
            counts = self.families[family]
            found.append(
                f"  {family:<12} {counts.stored:>9} stored {counts.duplicates:>9} duplicates "
                f"{counts.rejected:>6} rejected"
            )
        if self.analyze_seconds is not None:
            found.append(f"analysed the tables it filled in {self.analyze_seconds:.1f} s")
        return found


def cluster_days(days: float, retention: RetentionSettings) -> float:
    """How far back ClusterCockpit data goes: CLUSTER_DAYS, less when --days or a family's
    retention is shorter (a day less than the retention, so maintenance drops none of it)."""
    window = min(CLUSTER_DAYS, days)
    for keep in (retention.ccmessage, retention.cclog):
        kept = _retention_days(keep)
        if kept is not None:
            window = min(window, max(kept - 1, 0.5))
    return window


def _retention_days(keep: str) -> float | None:
    match = re.fullmatch(r"(\d+) (day|week|month|year)s?", keep)
    if match is None:
        return None  # forever
    # A month is at least 28 days, a year at least 365: never longer than the retention.
    return int(match[1]) * {"day": 1, "week": 7, "month": 28, "year": 365}[match[2]]


class Progress:
    """A progress line on stderr: redrawn in place on a terminal, a line per 10 % otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.done = 0
        self.events = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._step = -1

    def advance(self, units: int, events: int) -> None:
        self.done += units
        self.events += events
        fraction = min(self.done / self.total, 1.0)
        if self.tty:
            now = time.monotonic()
            if now - self._drawn >= 0.1 or self.done >= self.total:
                self._drawn = now
                self.stream.write("\r" + self._text(fraction))
                self.stream.flush()
        elif int(fraction * 10) > self._step:
            self._step = int(fraction * 10)
            self.stream.write(self._text(fraction) + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _text(self, fraction: float) -> str:
        width = 30
        filled = round(fraction * width)
        elapsed = time.monotonic() - self.started
        rate = self.events / elapsed if elapsed > 0 else 0.0
        return (
            f"demo: [{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}% "
            f"{self.events} events, {rate:.0f}/s"
        )


def run(
    url: str, settings: Settings, options: DemoOptions, stream: TextIO | None = None
) -> Summary:
    """Migrate (or check) the database at `url`, then store the demo data; the summary."""
    summary: Summary = anyio.run(_seed, url, settings, options, stream)
    return summary


async def _seed(
    url: str, settings: Settings, options: DemoOptions, stream: TextIO | None
) -> Summary:
    async with await connection.connect(url, options.wait_s) as conn:
        await migrations.migrate_or_check(conn, settings.database.migrate)
        await conn.execute(queries()["ensure_partitions_ahead"])
        cursor = await conn.execute(
            queries()["demo_anchor"],
            {"id": _marker_id(options.seed), "source": MARKER_SOURCE, "type": MARKER_TYPE},
        )
        row = await cursor.fetchone()
        earlier: datetime | None = row[0] if row else None
        anchor = earlier or datetime.now(UTC).replace(microsecond=0)
        plan = demo_events.demo_plan(options.seed, options.services, anchor, options.days)
        window = cluster_days(options.days, settings.retention)
        # Ingest creates missing partitions itself, but two batches doing so at once can
        # deadlock (and are retried): create the demo's partitions first, one at a time.
        # Changes were created up to a few days before their merge, and merges moved to
        # working hours up to a week earlier.
        ranges = (
            (["cdevents", "cloudevents"], plan.start - timedelta(days=14), anchor),
            (["ccmessage", "cclog"], anchor - timedelta(days=window + 1), anchor),
        )
        for families, from_time, to_time in ranges:
            await conn.execute(
                queries()["demo_partitions"],
                {"families": families, "from_time": from_time, "to_time": to_time},
            )
    lines = demo_events.cluster_lines(options.seed, options.nodes, anchor, window)
    messages = [
        "\n".join(lines[i : i + LINES_PER_MESSAGE]) for i in range(0, len(lines), LINES_PER_MESSAGE)
    ]
    summary = Summary(
        anchor, earlier is not None, plan, demo_events.clusters(options.nodes), window
    )
    progress = Progress(1 + plan.deliveries + len(messages), stream)
    limits = PipelineLimits(
        queue_size=settings.pipeline.queue_size,
        batch_size=settings.pipeline.batch_size,
        linger_s=settings.pipeline.linger_ms / 1000,
        writers=settings.pipeline.writers,
    )
    sink = PostgresSink(SOURCE_NAME, url, pool_size=settings.database.pool_size)
    pipeline = Pipeline([sink], [], limits)
    started = time.monotonic()
    send, receive = anyio.create_memory_object_stream[tuple[Delivery, str, int]](float("inf"))

    async def count() -> None:
        async with receive:
            async for delivery, family, units in receive:
                await wait_committed(delivery)
                counts = summary.families.setdefault(family, FamilyCounts())
                counts.stored += delivery.stored
                counts.duplicates += delivery.duplicates
                counts.rejected += delivery.refused + len(delivery.rejected)
                progress.advance(units, delivery.size)

    async def submit(parts: list[tuple[Delivery, str]], units: int) -> None:
        if not parts:  # a delivery whose events all lie ahead of the anchor
            progress.advance(units, 0)
        for index, (delivery, family) in enumerate(parts):
            await pipeline.enqueue(delivery)
            await send.send((delivery, family, units if index == len(parts) - 1 else 0))

    async def produce() -> None:
        async with send:
            # The marker first, committed alone: a run cut short and started again keeps the
            # same times, so what was stored is recognised as duplicates.
            marker = _deliveries([_marker(options, anchor)], "cloudevents")
            await submit(marker, 1)
            for delivery, _ in marker:
                await wait_committed(delivery)
            for parts, units in _cdevent_deliveries(plan, settings.pipeline.batch_size):
                await submit(parts, units)
            for text in messages:
                await submit(_cluster_deliveries(text), 1)

    try:
        async with anyio.create_task_group() as tg:
            await tg.start(pipeline.run)
            async with anyio.create_task_group() as inner:
                inner.start_soon(count)
                await produce()
            await pipeline.close()
    finally:
        progress.close()
    summary.seconds = time.monotonic() - started
    if summary.total().stored:
        started = time.monotonic()
        async with await connection.connect(url, options.wait_s) as conn:
            await conn.execute(queries()["demo_analyze"])
        summary.analyze_seconds = time.monotonic() - started
    return summary


def _marker_id(seed: int) -> str:
    return f"collector-demo-seed-{seed}"


def _marker(options: DemoOptions, anchor: datetime) -> dict[str, Any]:
    """A CloudEvent saying the demo data of this seed was stored, at the anchor's time."""
    return {
        "specversion": "1.0",
        "id": _marker_id(options.seed),
        "source": MARKER_SOURCE,
        "type": MARKER_TYPE,
        "time": anchor.isoformat().replace("+00:00", "Z"),
        "subject": f"seed {options.seed}",
        "datacontenttype": "application/json",
        "data": {
            "seed": options.seed,
            "services": options.services,
            "days": options.days,
            "nodes": options.nodes,
        },
    }


def _deliveries(documents: list[dict[str, Any]], kind: str) -> list[tuple[Delivery, str]]:
    """JSON documents normalised as the folder and HTTP sources do, as one delivery per family
    (the pipeline counts per delivery, the summary per family); rejections count as `kind`."""
    origin = Origin(received_via=SOURCE_NAME, received_at=datetime.now(UTC))
    by_family: dict[str, list[Event]] = {}
    rejected: list[RejectedEvent] = []
    for index, doc in enumerate(documents):
        raw = orjson.dumps(doc)
        try:
            event = normalise(doc, raw, origin, {})
        except Invalid as exc:  # never for the generator's events; kept honest all the same
            rejected.append(
                RejectedEvent(str(exc), raw, origin.received_at, SOURCE_NAME, f"index {index}")
            )
            continue
        by_family.setdefault(event.family, []).append(event)
    parts = [(Delivery(events), family) for family, events in by_family.items()]
    if rejected:
        parts.append((Delivery([], rejected), kind))
    return parts


def _cdevent_deliveries(
    plan: demo_events.DemoPlan, batch_size: int
) -> Iterator[tuple[list[tuple[Delivery, str]], int]]:
    """The planned deliveries' CDEvents, about a pipeline batch at a time, with the number of
    planned deliveries in each."""
    chunk: list[dict[str, Any]] = []
    units = 0
    for docs in demo_events.demo_deliveries(plan):
        chunk.extend(docs)
        units += 1
        if len(chunk) >= batch_size:
            yield _deliveries(chunk, "cdevents"), units
            chunk, units = [], 0
    if units:
        yield _deliveries(chunk, "cdevents"), units


def _cluster_deliveries(text: str) -> list[tuple[Delivery, str]]:
    """A line-protocol message decoded as the /api/write and NATS sources do."""
    decoded = ccmessage.decode(text, Origin(SOURCE_NAME, datetime.now(UTC)))
    by_family: dict[str, list[Event]] = {}
    for event in decoded.events:
        by_family.setdefault(event.family, []).append(event)
    parts = [(Delivery(events), family) for family, events in sorted(by_family.items())]
    if decoded.rejected:
        parts.append((Delivery([], decoded.rejected), "ccmessage"))
    return parts

"""Wiring: the database (embedded or not, migrated or checked), sinks, pipeline and sources.

Only this module and the CLI know every adapter; `run()` is `collector run`.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any, assert_never

import anyio
import psycopg
import structlog

from collector.db import connection
from collector.db import migrate as migrations
from collector.db.embedded import database_url
from collector.db.queries import queries
from collector.errors import DatabaseUnavailable, first_line
from collector.maintenance import log_maintenance, maintain
from collector.metrics import Metrics
from collector.openapi import build_openapi
from collector.pipeline import Pipeline, PipelineLimits
from collector.ports import HttpRequest, HttpResponse, Sink, Source
from collector.settings import (
    FolderSinkSettings,
    FolderSourceSettings,
    HttpSinkSettings,
    HttpSourceSettings,
    NatsSinkSettings,
    NatsSourceSettings,
    PostgresSinkSettings,
    Settings,
    StdoutSinkSettings,
    mask_url,
)
from collector.sinks.folder import FolderSink
from collector.sinks.http import HttpSink
from collector.sinks.nats import NatsSink
from collector.sinks.postgres import PostgresSink
from collector.sinks.stdout import StdoutSink
from collector.sources.folder import FolderSource
from collector.sources.http import HttpSource
from collector.sources.nats import NatsSource
from collector.web import WebApp, json_response
from collector.web import serve as serve_http

log = structlog.get_logger("collector")


async def connect(url: str, timeout_s: float = 60.0) -> psycopg.AsyncConnection[Any]:
    """Connect in autocommit, retrying any error while the server starts (a service waits for
    what an operator fixes, a missing database too); DatabaseUnavailable after timeout_s."""
    return await connection.connect(url, timeout_s, retry_permanent=True)


async def prepare_database(url: str, mode: str) -> None:
    """Migrate or check (see `migrations.migrate_or_check`), then create the coming partitions."""
    async with await connect(url) as conn:
        await migrations.migrate_or_check(conn, mode)
        await conn.execute(queries()["ensure_partitions_ahead"])


def build_sinks(
    settings: Settings, url: str, metrics: Metrics | None = None
) -> tuple[list[Sink], list[Sink]]:
    required: list[Sink] = []
    optional: list[Sink] = []
    for name, config in settings.sinks.items():
        sink: Sink
        if isinstance(config, PostgresSinkSettings):
            postgres = PostgresSink(name, url, pool_size=settings.database.pool_size)
            if metrics is not None:
                metrics.read_database_errors(name, _database_errors(postgres))
            sink = postgres
        elif isinstance(config, StdoutSinkSettings):
            sink = StdoutSink(name, buffer=config.buffer)
        elif isinstance(config, NatsSinkSettings):
            sink = NatsSink(name, config)
        elif isinstance(config, HttpSinkSettings):
            forward = HttpSink(name, config)
            if metrics is not None:
                metrics.read_refused(name, _refused(forward))
            sink = forward
        elif isinstance(config, FolderSinkSettings):
            sink = FolderSink(name, config)
        else:
            assert_never(config)
        (required if config.required else optional).append(sink)
    # The first required sink's counts are the ones answered and logged: the database's,
    # which knows the duplicates, rather than a forwarding sink's.
    required.sort(key=lambda sink: not isinstance(sink, PostgresSink))
    return required, optional


def _database_errors(sink: PostgresSink) -> Callable[[], int]:
    return lambda: sink.database_errors


def _refused(sink: HttpSink) -> Callable[[], int]:
    return lambda: sink.refused


def build_sources(settings: Settings, metrics: Metrics | None = None) -> list[Source]:
    sources: list[Source] = []
    for name, config in settings.sources.items():
        if isinstance(config, FolderSourceSettings):
            folder = FolderSource(
                name, config, chunk_size=settings.pipeline.batch_size, metrics=metrics
            )
            folder.prepare()
            sources.append(folder)
        elif isinstance(config, NatsSourceSettings):
            sources.append(NatsSource(name, config, metrics=metrics))
        elif isinstance(config, HttpSourceSettings):
            sources.append(HttpSource(name, config, settings.http, metrics=metrics))
        else:
            assert_never(config)
    return sources


def build_web(
    settings: Settings, sources: list[Source], pipeline: Pipeline, sinks: list[Sink]
) -> WebApp | None:
    http_sources = [s for s in sources if isinstance(s, HttpSource)]
    enabled = settings.http.enabled
    if enabled is False or (enabled is None and not http_sources):
        return None
    app = WebApp()
    for source in http_sources:
        app.add("POST", source.path, source.handle)
    databases = [s for s in sinks if isinstance(s, PostgresSink)]
    nats_sources = [s for s in sources if isinstance(s, NatsSource)]

    async def healthz(request: HttpRequest) -> HttpResponse:
        return json_response(200, {"status": "alive"})

    async def readyz(request: HttpRequest) -> HttpResponse:
        problems = []
        if pipeline.saturated:
            problems.append("queue full")
        elif not pipeline.accepting:
            problems.append("a required sink cannot commit")
        for sink in databases:
            if not await sink.ping():
                problems.append(f"sink {sink.name}: database unreachable")
        problems.extend(f"source {s.name}: {s.problem}" for s in nats_sources if s.problem)
        status = 503 if problems else 200
        return json_response(
            status,
            {
                "status": "ready" if not problems else "not ready",
                "problems": problems,
                "queue_depth": pipeline.depth,
            },
        )

    async def metrics(request: HttpRequest) -> HttpResponse:
        body, content_type = pipeline.metrics.render(request.headers.get("accept"))
        return HttpResponse(200, body, [("content-type", content_type)])

    openapi = json_response(200, build_openapi(http_sources, settings.http))

    async def openapi_json(request: HttpRequest) -> HttpResponse:
        return openapi

    app.add("GET", "/healthz", healthz)
    app.add("GET", "/readyz", readyz)
    app.add("GET", "/metrics", metrics)
    app.add("GET", "/openapi.json", openapi_json)
    return app


async def run(settings: Settings) -> None:
    metrics = Metrics()
    # Configuration problems first, before any database work.
    sources = build_sources(settings, metrics)
    stop = anyio.Event()
    opened = anyio.Event()
    try:
        async with anyio.create_task_group() as outer:
            # Signals first: starting the embedded server, waiting for the database, migrating
            # and opening the sinks may all take long; a signal meanwhile stops at once (the
            # embedded server too, as the `with` below unwinds).
            await outer.start(_signals, stop, outer.cancel_scope, opened)
            if not settings.postgres_sinks:  # a bridge (e.g. folder → nats) needs no database
                await serve(settings, "", sources, metrics, stop, opened)
            else:
                with database_url(settings) as url:
                    log.info("database", url=mask_url(url))
                    await prepare_database(url, settings.database.migrate)
                    await serve(settings, url, sources, metrics, stop, opened)
            outer.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The task group wraps what the startup raised: raise it as it was (the CLI names it).
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    log.info("collector_stopped")


async def serve(
    settings: Settings,
    url: str,
    sources: list[Source],
    metrics: Metrics,
    stop: anyio.Event,
    opened: anyio.Event,
) -> None:
    """Open the sinks, then run the pipeline and the sources until `stop`, then drain; `opened`
    is set once there is something to drain."""
    required, optional = build_sinks(settings, url, metrics)
    limits = PipelineLimits(
        queue_size=settings.pipeline.queue_size,
        batch_size=settings.pipeline.batch_size,
        linger_s=settings.pipeline.linger_ms / 1000,
        writers=settings.pipeline.writers,
    )
    pipeline = Pipeline(required, optional, limits, metrics)
    drained = anyio.Event()
    timeout = settings.pipeline.shutdown_timeout_s

    async def write(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            await pipeline.run(task_status=task_status)
        finally:
            drained.set()

    async with anyio.create_task_group() as outer:
        await outer.start(write)  # opens the sinks: may wait long (a nats sink for its server)
        opened.set()  # a signal from now on drains
        if url:
            outer.start_soon(_maintenance, settings, url, stop)
        log.info("collector_started", sources=[s.name for s in sources], sinks=list(settings.sinks))
        async with anyio.create_task_group() as inputs:
            web = build_web(settings, sources, pipeline, [*required, *optional])
            if web is not None:
                await inputs.start(serve_http, web, settings.http, stop)
            for source in sources:
                inputs.start_soon(source.run, pipeline, stop)
            await stop.wait()
            # One deadline for the whole drain: sources finish what they hold, the pipeline
            # writes what is queued; past it the rest stays unacknowledged (claimed files,
            # unacked messages) and is delivered again after a restart.
            deadline = anyio.current_time() + timeout
            inputs.cancel_scope.deadline = deadline
        await pipeline.close()
        with anyio.CancelScope(deadline=deadline):
            await drained.wait()
        if not drained.is_set():
            log.warning("shutdown_timeout", unwritten=pipeline.depth)
        outer.cancel_scope.cancel()


async def _signals(
    stop: anyio.Event,
    scope: anyio.CancelScope,
    opened: anyio.Event,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    # SIGHUP too: a closed terminal or SSH session stops collector as cleanly as Ctrl-C (there
    # is no configuration to reload).
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as received:
        task_status.started()
        async for signum in received:
            if stop.is_set():
                log.warning("shutdown_forced", signal=signal.Signals(signum).name)
                scope.cancel()
                return
            log.info("shutdown_requested", signal=signal.Signals(signum).name)
            stop.set()
            if not opened.is_set():  # the sinks are still opening: nothing to drain yet
                scope.cancel()
                return


async def _maintenance(settings: Settings, url: str, stop: anyio.Event) -> None:
    """At start and every interval: create partitions ahead (so ingest of current events never
    waits on DDL) and drop those past their family's retention."""
    while not stop.is_set():
        try:
            async with await connect(url, timeout_s=5) as conn:
                log_maintenance(await maintain(conn, settings.retention))
        except (DatabaseUnavailable, psycopg.Error) as exc:
            log.warning("maintenance_failed", error=first_line(exc))
        with anyio.move_on_after(settings.maintenance.interval_s):
            await stop.wait()

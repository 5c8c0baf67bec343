"""Metrics counted by the pipeline: per-source stored / duplicate / rejected, batches, and the
values read at scrape time (queue depth, optional-sink drops, database errors)."""

from __future__ import annotations

import dataclasses

import pytest
from anyio import wait_all_tasks_blocked
from prometheus_client.parser import text_string_to_metric_families

from collector.errors import DeliveryFailed
from collector.events import RejectedEvent
from collector.metrics import Metrics
from collector.pipeline import Pipeline, PipelineLimits
from collector.ports import Batch, BatchResult, Delivery
from collector.sinks.memory import MemorySink
from tests.unit.test_pipeline import NOW, event, pipeline_tasks

pytestmark = pytest.mark.anyio


def from_source(via: str, *ids: str) -> Delivery:
    return Delivery(events=[dataclasses.replace(event(i), received_via=via) for i in ids])


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


class RefusingSink(MemorySink):
    """Stores like MemorySink but refuses (stores as rejected) events with id 'bad'."""

    async def write(self, batch: Batch) -> BatchResult:
        refused = frozenset(i for i, e in enumerate(batch.events) if e.id == "bad")
        kept = Batch([e for e in batch.events if e.id != "bad"], batch.rejected)
        result = await super().write(kept)
        # Map the kept events' duplicate indexes back to the batch's indexes.
        positions = [i for i in range(len(batch.events)) if i not in refused]
        return BatchResult(
            stored=result.stored,
            duplicates=frozenset(positions[i] for i in result.duplicates),
            rejected=result.rejected + len(refused),
            refused=refused,
        )


async def test_the_pipeline_counts_stored_duplicates_and_refused_per_source() -> None:
    metrics = Metrics()
    pipeline = Pipeline([RefusingSink()], [], PipelineLimits(batch_size=100), metrics)
    async with pipeline_tasks(pipeline) as running:
        await running.deliver(from_source("a", "1", "2")).wait()
        await running.deliver(from_source("b", "1", "2")).wait()  # same identities: duplicates
        invalid = from_source("a", "3", "bad")
        invalid.rejected.append(RejectedEvent("id: missing", b"{}", NOW, "a"))
        await running.deliver(invalid).wait()

    assert value(metrics, "collector_events_stored_total", source="a") == 3
    assert value(metrics, "collector_events_stored_total", source="b") is None
    assert value(metrics, "collector_events_duplicate_total", source="b") == 2
    assert value(metrics, "collector_events_rejected_total", source="a") == 2
    assert value(metrics, "collector_batch_size_events_count") == 3
    assert value(metrics, "collector_batch_size_events_sum") == 7
    assert value(metrics, "collector_commit_seconds_count") == 3


async def test_a_failed_batch_counts_nothing_stored() -> None:
    sink = MemorySink()
    sink.fail_next = 1
    metrics = Metrics()
    pipeline = Pipeline([sink], [], PipelineLimits(), metrics)
    async with pipeline_tasks(pipeline) as running:
        pending = running.deliver(from_source("a", "1"))
        with pytest.raises(DeliveryFailed, match="simulated failure"):
            await pending.wait()

    assert value(metrics, "collector_events_stored_total", source="a") is None
    assert value(metrics, "collector_commit_seconds_count") == 0


async def test_sources_show_at_zero_and_count_what_they_receive() -> None:
    metrics = Metrics()
    counts = metrics.source("hooks")
    assert value(metrics, "collector_events_received_total", source="hooks") == 0
    assert value(metrics, "collector_events_stored_total", source="hooks") == 0

    counts.received(5)
    counts.answered(202)
    counts.answered(400)
    counts.answered(400)

    assert value(metrics, "collector_events_received_total", source="hooks") == 5
    assert value(metrics, "collector_http_requests_total", source="hooks", code="400") == 2
    assert value(metrics, "collector_http_requests_total", source="hooks", code="202") == 1


async def test_queue_depth_drops_and_database_errors_are_read_when_scraped() -> None:
    metrics = Metrics()
    pipeline = Pipeline([MemorySink("db")], [MemorySink("out")], PipelineLimits(), metrics)
    errors = 0
    metrics.read_database_errors("db", lambda: errors)
    async with pipeline_tasks(pipeline, start=False) as running:
        running.deliver(from_source("a", "1", "2"))
        await wait_all_tasks_blocked()
        assert value(metrics, "collector_queue_depth") == 2
        pipeline.optional[0].dropped = 7
        errors = 4
        assert value(metrics, "collector_optional_sink_dropped_total", sink="out") == 7
        assert value(metrics, "collector_database_errors_total", sink="db") == 4
        await running.start()


async def test_render_speaks_prometheus_text_and_openmetrics() -> None:
    metrics = Metrics()
    metrics.source("hooks").received(1)

    text, content_type = metrics.render(None)
    assert content_type.startswith("text/plain")
    families = list(text_string_to_metric_families(text.decode()))
    names = {f.name for f in families}
    assert {"collector_events_received", "collector_queue_depth"} <= names
    # The process's own figures, as every Prometheus client exports them; no _created series.
    assert {"process_resident_memory_bytes", "process_cpu_seconds", "process_open_fds"} <= names
    rss = next(f for f in families if f.name == "process_resident_memory_bytes")
    assert rss.samples[0].value > 10e6
    assert not [s.name for f in families for s in f.samples if s.name.endswith("_created")]

    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")

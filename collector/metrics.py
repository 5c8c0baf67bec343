"""Prometheus metrics of one collector process: a registry built once at start and passed down.

Counts come from where the facts are: sources count what they receive, the pipeline what
the required sinks committed (new, duplicate, rejected); values adapters already keep
(database errors, optional-sink drops, events a receiver refused, queue depth) are read when
/metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, Metric

# Events per batch: from a lone webhook call up to several default batch sizes (2,000).
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
COMMIT_SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


# A `_created` series per counter and histogram only doubles what Prometheus scrapes here.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The process's metrics; `render()` is the /metrics answer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        ProcessCollector(registry=registry)  # process_resident_memory_bytes, CPU seconds, fds
        self.events_stored = Counter(
            "collector_events_stored",
            "Events committed as new rows by the required sinks",
            ["source"],
            registry=registry,
        )
        self.events_duplicate = Counter(
            "collector_events_duplicate",
            "Events already stored before (replays recognised by source, type and id)",
            ["source"],
            registry=registry,
        )
        self.events_rejected = Counter(
            "collector_events_rejected",
            "Invalid events committed to the rejected table, events PostgreSQL refused included",
            ["source"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "collector_queue_depth",
            "Events and rejections waiting in the pipeline for the sinks",
            registry=registry,
        )
        self.batch_size = Histogram(
            "collector_batch_size_events",
            "Events and rejections per batch written to the required sinks",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "collector_commit_seconds",
            "Time to commit one batch to every required sink (retries included)",
            buckets=COMMIT_SECONDS_BUCKETS,
            registry=registry,
        )
        self._database_errors = _ReadCounter(
            "collector_database_errors",
            "Failed database calls of a postgres sink (each is retried)",
            "sink",
        )
        self._dropped = _ReadCounter(
            "collector_optional_sink_dropped",
            "Events an optional sink dropped (buffer full or write failed)",
            "sink",
        )
        self._refused = _ReadCounter(
            "collector_sink_refused",
            "Events a forwarding sink's receiver refused for good (not sent again)",
            "sink",
        )
        self._source_dropped = _ReadCounter(
            "collector_source_dropped",
            "Messages a source dropped on arrival (core NATS: no room while the pipeline is full)",
            "source",
        )
        self._sources: dict[str, SourceMetrics] = {}
        registry.register(_SourceCounts(self._sources))
        registry.register(self._database_errors)
        registry.register(self._dropped)
        registry.register(self._refused)
        registry.register(self._source_dropped)

    def source(self, name: str) -> SourceMetrics:
        """The counters of one source, shown (at zero) from the start."""
        for counter in (
            self.events_stored,
            self.events_duplicate,
            self.events_rejected,
        ):
            counter.labels(source=name)
        if name not in self._sources:
            self._sources[name] = SourceMetrics(name)
        return self._sources[name]

    def batch_committed(
        self,
        *,
        size: int,
        seconds: float,
        stored: Mapping[str, int],
        duplicates: Mapping[str, int],
        rejected: Mapping[str, int],
    ) -> None:
        """One batch committed by the required sinks; counts are per source."""
        self.batch_size.observe(size)
        self.commit_seconds.observe(seconds)
        for counter, counts in (
            (self.events_stored, stored),
            (self.events_duplicate, duplicates),
            (self.events_rejected, rejected),
        ):
            for source, count in counts.items():
                if count:
                    counter.labels(source=source).inc(count)

    def read_queue_depth(self, read: Callable[[], float]) -> None:
        self.queue_depth.set_function(read)

    def read_database_errors(self, sink: str, read: Callable[[], float]) -> None:
        self._database_errors.add(sink, read)

    def read_dropped(self, sink: str, read: Callable[[], float]) -> None:
        self._dropped.add(sink, read)

    def read_refused(self, sink: str, read: Callable[[], float]) -> None:
        self._refused.add(sink, read)

    def read_source_dropped(self, source: str, read: Callable[[], float]) -> None:
        self._source_dropped.add(source, read)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics when asked) and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class SourceMetrics:
    """What a source counts itself: input received, HTTP answers. Plain numbers, read when
    /metrics is scraped: a prometheus_client Counter takes a lock per inc (~1.3 µs, twice per
    HTTP request); one event loop thread counts here."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.events_received = 0
        self.answers: dict[int, int] = {}  # by status code

    def received(self, count: int) -> None:
        """Decoded input handed to the pipeline: valid events and rejections alike."""
        self.events_received += count

    def answered(self, status: int) -> None:
        answers = self.answers
        answers[status] = answers.get(status, 0) + 1


class _SourceCounts:
    """The counters of SourceMetrics, as prometheus_client Counters would show them."""

    def __init__(self, sources: Mapping[str, SourceMetrics]) -> None:
        self._sources = sources

    def _families(self) -> tuple[CounterMetricFamily, CounterMetricFamily]:
        return (
            CounterMetricFamily(
                "collector_events_received",
                "Events (valid or not) a source decoded from its input",
                labels=["source"],
            ),
            CounterMetricFamily(
                "collector_http_requests",
                "Requests to HTTP sources, by answer status code",
                labels=["source", "code"],
            ),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        received, requests = self._families()
        for name, counts in self._sources.items():
            received.add_metric([name], counts.events_received)
            for status, count in list(counts.answers.items()):
                requests.add_metric([name, str(status)], count)
        yield received
        yield requests


class _ReadCounter:
    """A counter an adapter keeps itself, read at scrape time, one series per label value."""

    def __init__(self, name: str, documentation: str, label: str) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self._reads: dict[str, Callable[[], float]] = {}

    def add(self, value: str, read: Callable[[], float]) -> None:
        self._reads[value] = read

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation, labels=[self.label])

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, read in self._reads.items():
            family.add_metric([value], read())
        yield family

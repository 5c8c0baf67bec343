"""Prometheus metrics of one collector process: a registry built once at start and passed down.

Counts come from where the facts are: sources count what they receive, the pipeline what
the required sinks committed (new, duplicate, rejected); values adapters already keep
(database errors, optional-sink drops, queue depth) are read when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
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


class Metrics:
    """The process's metrics; `render()` is the /metrics answer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.events_received = Counter(
            "collector_events_received",
            "Events (valid or not) a source decoded from its input",
            ["source"],
            registry=registry,
        )
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
        self.http_requests = Counter(
            "collector_http_requests",
            "Requests to HTTP sources, by answer status code",
            ["source", "code"],
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
        registry.register(self._database_errors)
        registry.register(self._dropped)

    def source(self, name: str) -> SourceMetrics:
        """The counters of one source, shown (at zero) from the start."""
        for counter in (
            self.events_received,
            self.events_stored,
            self.events_duplicate,
            self.events_rejected,
        ):
            counter.labels(source=name)
        return SourceMetrics(self, name)

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

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics when asked) and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class SourceMetrics:
    """What a source counts itself: input received, HTTP answers."""

    def __init__(self, metrics: Metrics, source: str) -> None:
        self._metrics = metrics
        self.source = source
        self._received = metrics.events_received.labels(source=source)
        self._answered: dict[int, Counter] = {}  # labels() costs as much as a small request

    def received(self, count: int) -> None:
        """Decoded input handed to the pipeline: valid events and rejections alike."""
        self._received.inc(count)

    def answered(self, status: int) -> None:
        counter = self._answered.get(status)
        if counter is None:
            counter = self._metrics.http_requests.labels(source=self.source, code=str(status))
            self._answered[status] = counter
        counter.inc()


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

"""The one exception tree of collector; third-party errors are translated at the boundary.

CollectorError
├── ConfigError            the configuration is invalid (lists every problem)
├── DatabaseUnavailable    PostgreSQL cannot be reached (retried by sinks)
├── MigrationError         pending, unknown or edited migrations
├── EmbeddedDatabaseError  the embedded PostgreSQL could not start
├── DeliveryFailed         a required sink could not commit a delivery
├── PipelineClosed         shutting down: no new deliveries
├── SinkClosed             a sink can never deliver again (e.g. stdout's reader went away)
└── BenchmarkFailed        a benchmark's check failed (rows lost or duplicated, a timeout)
"""


class CollectorError(Exception):
    """Base of every error collector raises on purpose; its message is meant for the user."""


class ConfigError(CollectorError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class DatabaseUnavailable(CollectorError):
    pass


class MigrationError(CollectorError):
    pass


class EmbeddedDatabaseError(CollectorError):
    pass


class DeliveryFailed(CollectorError):
    """A required sink could not commit a delivery; the source must not ack it."""


class PipelineClosed(CollectorError):
    """collector is shutting down and takes no new deliveries."""


class SinkClosed(CollectorError):
    """A sink can never deliver again: a required one stops collector, an optional one is
    switched off."""


class BenchmarkFailed(CollectorError):
    """A benchmark run failed its checks; its figures would mean nothing."""


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (psycopg's run on with hints), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

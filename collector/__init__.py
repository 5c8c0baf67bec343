"""collector: events from folders (and later HTTP and NATS) into PostgreSQL, queried through `api`."""

__version__ = "0.1.0"

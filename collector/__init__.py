"""collector: events into PostgreSQL, queried through the `api` schema."""

__version__ = "0.1.0"

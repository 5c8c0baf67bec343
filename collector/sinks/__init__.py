"""Sinks: leaf adapters that commit batches (see collector.ports.Sink)."""

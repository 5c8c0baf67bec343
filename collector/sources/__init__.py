"""Sources: leaf adapters that turn transport input into deliveries (see collector.ports.Source)."""

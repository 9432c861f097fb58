"""Receive connectors: relay policy, limits, header stamping, the durable hand-off."""

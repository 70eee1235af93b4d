"""Prometheus exporter: counters observed from the engine's commands, gauges from its state."""

"""Delivery: the alert model, sinks, the raw-event archive and Prometheus metrics."""

"""The input side and the runner: event model, EventStreams client, replay, pipeline, CLI."""

__version__ = "0.1.0"

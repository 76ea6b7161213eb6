"""Scale-out on Kafka: the same pipeline split into processes that share a broker.

* ``ingest``: reads EventStreams as ``rcwatch run`` does and produces every raw event to the
  events topic (``acks=all``) with its SSE id; its own resume position is saved only once
  the broker has acknowledged every event before it.
* ``topics``: every topic is created with explicit configs before any producer or consumer
  starts (an aiokafka producer that first meets a topic created later can stall forever;
  ``../shared/FACTS.md``).
* ``config``: the settings section (``scaleout:``).

Workers and delivery are the next steps (see docs/scaleout.md for what exists today).

May import: ``detectors``, ``sinks``, ``streams.source``, ``streams.fetch``,
``streams.pipeline``, ``streams.logs``. Never the commands, the stand-ins or
``streams.app``; the commands wire it.
"""

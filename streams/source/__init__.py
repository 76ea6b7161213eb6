"""Where events come from: the EventStreams client (``eventstreams``) over SSE framing
(``sse``), replay of recorded NDJSON (``replay``), resume positions (``position``), the
checkpoint and state-directory lock (``checkpoint``) and where a start begins (``start``).

May import: ``detectors.event``, ``streams.logs``, the infrastructure in ``sinks`` (metrics,
retry and backoff, atomic files, the archive's format), and each other. Never the fetcher,
the pipeline, the commands or the settings: a source yields raw events and knows nothing
of what is done with them.
"""

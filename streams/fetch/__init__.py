"""The text an edit added or removed, fetched from the wikis' MediaWiki API (``content``),
from vetted hosts only (``wikihosts``: the allow-list, the diff links built from it).

May import: ``detectors.event``, ``streams.logs``, the infrastructure in ``sinks`` (metrics,
retry and backoff), and each other. Never the source, the pipeline, the commands or the
settings.
"""

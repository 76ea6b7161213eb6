"""The input side, the pipeline and the commands: everything that does I/O and wires the
pure detectors to the sinks.

Rooms, in the order data flows (each subpackage's docstring says what it owns and what it
may import; ``tests/test_layers.py`` enforces it):

* ``streams.source``: where events come from (the EventStreams client and its SSE
  framing, replay of recorded files, the resume position and checkpoint).
* ``streams.fetch``: the text an edit added, fetched from the wikis' API.
* ``streams.pipeline``: the runner and its stages (decode, scope, detection, alerting,
  throttle) and rule reloading.
* ``streams.commands``: the ``rcwatch`` command groups, the demo, terminal output.
* ``streams.standins``: local stand-ins for EventStreams and the MediaWiki API (the demo
  and the tests use them; the product never imports them outside the demo).

At the top: ``entry`` (the process's entry point), ``app`` (the composition root: builds
sources, detection, sinks and metrics from the settings), ``settings`` (the settings schema)
and ``logs`` (structured logging, safe printing). The event model and the typed YAML loader
are shared vocabulary and live in ``detectors`` (``detectors.event``, ``detectors.confload``),
the innermost layer, so that ``detectors`` never imports ``streams``.
"""

__version__ = "0.1.0"

"""Local stand-ins for the services rcwatch talks to, for the demo and the tests: an
EventStreams-like SSE server with the same framing and resume semantics (``sse_server``)
and a MediaWiki API that serves diffs and faults (``fake_mediawiki``).

May import: nothing from the project (they stand for services outside it, so they cannot
share the client's bugs). Only the demo and the tests import a stand-in.
"""

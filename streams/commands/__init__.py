"""The ``rcwatch`` command line: the parser and ``run``/``replay`` (``cli``), the command
groups ``rules``, ``sinks`` and ``model`` (one module each, with ``model_data`` for the
training recipe), the offline ``demo`` and terminal progress (``progress``).

May import anything. Loads lazily: ``rcwatch --help`` imports only the standard library and
the parsers, and each command imports what it uses when it runs (``bench/cli_startup.py``
measures it).
"""

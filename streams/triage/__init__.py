"""The triage page: on-call staff read recent alerts and give verdicts in a browser.

- ``auth``: who is asking (the sign-in token, a session cookie, or a trusted proxy's
  header) and the CSRF token that ties a verdict form to its session.
- ``pages``: plain server-side HTML, every value escaped; no script at all, so the
  Content-Security-Policy can forbid every script.
- ``server``: the aiohttp application over the alert store (its own port, 127.0.0.1 by
  default, off unless ``triage.enabled``).

It reads and writes only the alert store (``sinks.store``) and the settings; the rules'
texts are handed to it by the composition root. It imports nothing from the commands,
the stand-ins or the pipeline.
"""

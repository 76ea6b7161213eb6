"""What happens to an event: the two-stage runner (``runner``) and the batch stages it
drives (``stages``: decode, scope, content, detection, alerting, throttle), with the
detection wiring (``detection``), alert building (``alerting``), scope (``scope``), the
throttle (``throttle``) and rule hot reload (``rules_reload``).

May import: ``detectors``, ``sinks``, ``streams.source``, ``streams.fetch``,
``streams.logs``. Never the commands, the settings, ``streams.app`` or the stand-ins: the
composition root builds a pipeline and hands it its parts.
"""

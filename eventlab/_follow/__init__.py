"""Following the log over the ports: catch-up subscriptions (``read_all``,
``subscribe``), ``Subscriber`` (exactly-once or at-least-once, leases, supervision),
pure ``Projection``s and the ``Projector``.

May import: ``_core`` and ``ports``; never an adapter (``_mongo``, ``memory``).
"""

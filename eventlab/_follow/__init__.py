"""Following the log over the ports: catch-up subscriptions (``read_all``,
``subscribe``), ``Subscriber`` (exactly-once or at-least-once, leases, supervision),
pure ``Projection``s and the ``Projector``; and the public methods every backend's log and
checkpoint store share (``log_reads``, ``checkpoint_saves``), over a hook each backend provides.

May import: ``_core`` and ``ports``; never an adapter (``_mongo``, ``memory``).
"""

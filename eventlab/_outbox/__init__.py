"""The outbox relay over the ``OutboxStore`` port: claims, publishes, backs off,
reports health.

May import: ``_core`` and ``ports``; never an adapter.
"""

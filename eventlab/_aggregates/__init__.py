"""Loading and saving aggregates over the ports: ``AggregateStore`` and its
snapshot policy.

May import: ``_core`` and ``ports``; never an adapter.
"""

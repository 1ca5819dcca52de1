"""The foundations every other part stands on: stored records and domain events, typed
errors, the type registry and upcasting, exact BSON values, argument checks, task helpers,
race points, telemetry hooks, and ``run`` as every backend offers it.

May import: nothing of eventlab but itself.
"""

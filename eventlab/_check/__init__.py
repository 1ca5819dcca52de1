"""``eventlab check URI``: how a user verifies eventlab on their own deployment.

eventlab is tested against the embedded MongoDB-compatible server; nothing in its test suite
runs ``mongod``, a replica set or a sharded cluster. This runs the same contract suites, a
bounded model-based run of the state machines and the concurrency probes that need no server
kill against the deployment a URI names, in a scratch database that must not exist before
and is dropped after, and prints a verdict table: what held, what the deployment cannot do,
what failed.

The CLI's ``check`` command calls :func:`run_check`; it needs pytest, pytest-asyncio and
Hypothesis at run time (``pip install "eventlab[check]"``).

May import: anything below it (the contract suites, the state machines, the backends); only
``cli`` imports it.
"""

from ._run import CHECK_EXTRA, run_check

__all__ = ["CHECK_EXTRA", "run_check"]

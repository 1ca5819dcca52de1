"""The in-memory backend: every port of eventlab in process memory, held to the same contract
suites (:mod:`eventlab.contracts`), and a model of MongoDB rather than a stricter stand-in:
transactions with MongoDB's snapshot isolation (write skew where MongoDB allows it, write-write
conflicts at once, a failed write dooming its transaction), both position strategies (holes,
tombstones, a store's strategy migrated), idempotent appends by event id, conditional
checkpoints and leases, fenced outbox claims, Dynamic Consistency Boundaries
(:class:`MemoryDCBStore`), subscriptions woken by appends.

For users' unit tests of command handlers, aggregates, decisions and projections: such a test
runs in milliseconds with no server::

    backend = MemoryBackend()
    store = MemoryEventStore(backend, registry=registry)
    await AggregateStore(store).save(order)
    await Projector(store, OrderTotals()).run_until_caught_up()

eventlab's own persistence code is tested against a real server; this backend is a product,
not a mock of MongoDB.

May import: ``_core``, ``ports``, ``_dcb`` and the services it implements (``_follow``); never
``_mongo`` or the driver (import-linter holds it).
"""

from ._backend import MemoryBackend
from ._consumers import MemoryCheckpointStore, MemorySnapshotStore
from ._dcb import MemoryDCBStore
from ._keys import MemoryKeyStore
from ._log import MemoryLog
from ._outbox import MemoryOutboxStore
from ._read_models import MemoryBatchRows, MemoryReadModels
from ._store import MemoryEventStore

__all__ = [
    "MemoryBackend",
    "MemoryBatchRows",
    "MemoryCheckpointStore",
    "MemoryDCBStore",
    "MemoryEventStore",
    "MemoryKeyStore",
    "MemoryLog",
    "MemoryOutboxStore",
    "MemoryReadModels",
    "MemorySnapshotStore",
]

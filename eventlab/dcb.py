"""Dynamic Consistency Boundaries (DCB) on eventlab's event store.

A decision reads the events matching a :class:`Query` (event types and tags), decides, and
appends with an :class:`AppendCondition`: nothing matching the same query may have been
recorded after the position it read. Invariants that span entities (a course's capacity, a
student's course limit) hold without aggregates sized to fit them. DCB events live in the
store's events collection, at its positions, beside stream events: the log, frames,
subscriptions and projections see them like any other (docs/dcb.md)::

    dcb = MongoDCBStore(store)  # MemoryDCBStore(store) on the in-memory backend
    course = Query.of(types=["StudentJoined"], tags=["course:c1"])
    read = await dcb.read(course)
    if len(read.events) < 30:
        await dcb.append(
            [TaggedEvent("StudentJoined", {"student": "s1"}, ("course:c1", "student:s1"))],
            read.condition(),
        )

Both stores implement the :class:`~eventlab.ports.DCBStore` port, checked by the same
contract suite (:class:`eventlab.contracts.DCBContract`).
"""

from ._core.errors import AppendConditionError
from ._dcb.records import (
    DCB_AGGREGATE_TYPE,
    AppendCondition,
    DecisionRead,
    Query,
    QueryItem,
    TaggedEvent,
)
from ._mongo.dcb import MongoDCBStore
from .ports import DCBStore

__all__ = [
    "DCB_AGGREGATE_TYPE",
    "AppendCondition",
    "AppendConditionError",
    "DCBStore",
    "DecisionRead",
    "MongoDCBStore",
    "Query",
    "QueryItem",
    "TaggedEvent",
]

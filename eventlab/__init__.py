"""eventlab: an event-sourcing workbench and reference implementation on MongoDB.

The public surface is re-exported here; modules whose names start with ``_`` are private.
A name is imported when first used (PEP 562), so that a part that needs little (``eventlab
--help``, :mod:`eventlab.embedded`, the pytest plugin) does not load the driver, pydantic and
OpenTelemetry with it. Type checkers read the imports below as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import telemetry
    from ._aggregate_store import AggregateStore
    from ._checkpoints import MongoCheckpointStore
    from ._connection import DeploymentInfo, MongoConnectionManager
    from ._domain import AggregateRoot, DomainEvent, applies
    from ._errors import (
        AggregateNotFoundError,
        AppendConditionError,
        CheckpointConflictError,
        CommitOutcomeUnknownError,
        ConcurrencyError,
        ConfigurationError,
        ConflictError,
        ConnectionFailedError,
        ConsumerBusyError,
        DataError,
        DeploymentError,
        DocumentTooLargeError,
        DuplicateEventError,
        DuplicateMessageError,
        EmbeddedServerError,
        EmbeddedServerNotInstalledError,
        EventlabError,
        InvalidEventError,
        InvalidIdError,
        InvalidNameError,
        InvalidSpecificationError,
        MigrationError,
        NotAuthorizedError,
        NotConnectedError,
        PositionsAbandonedError,
        RebuildInProgressError,
        SerializationError,
        SubscriptionError,
        TransactionAbortedError,
        TransactionsUnsupportedError,
        TransactionTimeoutError,
        TransientError,
        UniqueConstraintError,
        UnitOfWorkStateError,
        UnknownEventTypeError,
        UpcastError,
        WriteConflictError,
    )
    from ._event_store import MongoEventStore
    from ._follow import Batch, CatchUpSubscription
    from ._mapper import MongoModelMapper
    from ._outbox import MongoOutboxStore
    from ._process_registry import Liveness
    from ._projections import MemoryRows, Projection, ProjectionStatus, on
    from ._projector import Projector
    from ._records import ExpectedVersion, StoredEvent
    from ._registry import EventRegistry
    from ._relay import InMemoryPublisher, LoggingPublisher, OutboxRelay, Publisher, RelayHealth
    from ._repository import MongoRepository, SearchResult
    from ._snapshots import MongoSnapshotStore
    from ._subscriptions import Subscriber
    from ._supervision import ConsumerHealth
    from ._transactions import run_transaction
    from ._unit_of_work import MongoUnitOfWork, run_unit_of_work
    from .ports import (
        Backend,
        Checkpoint,
        EventLog,
        EventStore,
        OutboxLag,
        OutboxMessage,
        PositionStrategy,
        Rows,
        Snapshot,
        UnitOfWork,
    )
    from .specification import (
        QueryOptions,
        Specification,
        SpecificationBuilder,
    )

_LAZY: dict[str, tuple[str, ...]] = {
    # module: the names it gives (a submodule gives itself: ``()``); the same as the imports
    # above and ``__all__`` (tests/fast/test_public_api.py keeps the three in step)
    ".telemetry": (),
    "._aggregate_store": ("AggregateStore",),
    "._checkpoints": ("MongoCheckpointStore",),
    "._connection": (
        "DeploymentInfo",
        "MongoConnectionManager",
    ),
    "._domain": (
        "AggregateRoot",
        "DomainEvent",
        "applies",
    ),
    "._errors": (
        "AggregateNotFoundError",
        "AppendConditionError",
        "CheckpointConflictError",
        "CommitOutcomeUnknownError",
        "ConcurrencyError",
        "ConfigurationError",
        "ConflictError",
        "ConnectionFailedError",
        "ConsumerBusyError",
        "DataError",
        "DeploymentError",
        "DocumentTooLargeError",
        "DuplicateEventError",
        "DuplicateMessageError",
        "EmbeddedServerError",
        "EmbeddedServerNotInstalledError",
        "EventlabError",
        "InvalidEventError",
        "InvalidIdError",
        "InvalidNameError",
        "InvalidSpecificationError",
        "MigrationError",
        "NotAuthorizedError",
        "NotConnectedError",
        "PositionsAbandonedError",
        "RebuildInProgressError",
        "SerializationError",
        "SubscriptionError",
        "TransactionAbortedError",
        "TransactionsUnsupportedError",
        "TransactionTimeoutError",
        "TransientError",
        "UniqueConstraintError",
        "UnitOfWorkStateError",
        "UnknownEventTypeError",
        "UpcastError",
        "WriteConflictError",
    ),
    "._event_store": ("MongoEventStore",),
    "._follow": (
        "Batch",
        "CatchUpSubscription",
    ),
    "._mapper": ("MongoModelMapper",),
    "._outbox": ("MongoOutboxStore",),
    "._projections": (
        "MemoryRows",
        "Projection",
        "ProjectionStatus",
        "on",
    ),
    "._projector": ("Projector",),
    "._records": (
        "ExpectedVersion",
        "StoredEvent",
    ),
    "._registry": ("EventRegistry",),
    "._relay": (
        "InMemoryPublisher",
        "LoggingPublisher",
        "OutboxRelay",
        "Publisher",
        "RelayHealth",
    ),
    "._repository": (
        "MongoRepository",
        "SearchResult",
    ),
    "._process_registry": ("Liveness",),
    "._snapshots": ("MongoSnapshotStore",),
    "._subscriptions": ("Subscriber",),
    "._supervision": ("ConsumerHealth",),
    "._transactions": ("run_transaction",),
    "._unit_of_work": (
        "MongoUnitOfWork",
        "run_unit_of_work",
    ),
    ".ports": (
        "Backend",
        "Checkpoint",
        "EventLog",
        "EventStore",
        "OutboxLag",
        "OutboxMessage",
        "PositionStrategy",
        "Rows",
        "Snapshot",
        "UnitOfWork",
    ),
    ".specification": (
        "QueryOptions",
        "Specification",
        "SpecificationBuilder",
    ),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

__version__ = "0.1.0"

__all__ = [
    "AggregateNotFoundError",
    "AggregateRoot",
    "AggregateStore",
    "AppendConditionError",
    "Backend",
    "Batch",
    "CatchUpSubscription",
    "Checkpoint",
    "CheckpointConflictError",
    "CommitOutcomeUnknownError",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "ConnectionFailedError",
    "ConsumerBusyError",
    "ConsumerHealth",
    "DataError",
    "DeploymentError",
    "DeploymentInfo",
    "DocumentTooLargeError",
    "DomainEvent",
    "DuplicateEventError",
    "DuplicateMessageError",
    "EmbeddedServerError",
    "EmbeddedServerNotInstalledError",
    "EventLog",
    "EventRegistry",
    "EventStore",
    "EventlabError",
    "ExpectedVersion",
    "InMemoryPublisher",
    "InvalidEventError",
    "InvalidIdError",
    "InvalidNameError",
    "InvalidSpecificationError",
    "Liveness",
    "LoggingPublisher",
    "MemoryRows",
    "MigrationError",
    "MongoCheckpointStore",
    "MongoConnectionManager",
    "MongoEventStore",
    "MongoModelMapper",
    "MongoOutboxStore",
    "MongoRepository",
    "MongoSnapshotStore",
    "MongoUnitOfWork",
    "NotAuthorizedError",
    "NotConnectedError",
    "OutboxLag",
    "OutboxMessage",
    "OutboxRelay",
    "PositionStrategy",
    "PositionsAbandonedError",
    "Projection",
    "ProjectionStatus",
    "Projector",
    "Publisher",
    "QueryOptions",
    "RebuildInProgressError",
    "RelayHealth",
    "Rows",
    "SearchResult",
    "SerializationError",
    "Snapshot",
    "Specification",
    "SpecificationBuilder",
    "StoredEvent",
    "Subscriber",
    "SubscriptionError",
    "TransactionAbortedError",
    "TransactionTimeoutError",
    "TransactionsUnsupportedError",
    "TransientError",
    "UniqueConstraintError",
    "UnitOfWork",
    "UnitOfWorkStateError",
    "UnknownEventTypeError",
    "UpcastError",
    "WriteConflictError",
    "applies",
    "on",
    "run_transaction",
    "run_unit_of_work",
    "telemetry",
]


if not TYPE_CHECKING:  # hidden from type checkers, which would type every unknown name Any

    def __getattr__(name: str) -> Any:
        module = _WHERE.get(name)
        if module is None:
            if f".{name}" in _LAZY:  # a public submodule: eventlab.telemetry
                return importlib.import_module(f".{name}", __name__)
            raise AttributeError(f"module 'eventlab' has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value  # once: later reads do not come here
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

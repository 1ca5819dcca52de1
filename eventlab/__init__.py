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
    from ._aggregates.forgetting import Forgetting
    from ._aggregates.store import AggregateStore
    from ._core.domain import AggregateRoot, DomainEvent, applies
    from ._core.errors import (
        AggregateNotFoundError,
        AppendConditionError,
        ArchiveError,
        CacheError,
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
        StreamDeletedError,
        SubjectForgottenError,
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
    from ._core.personal import REDACTED, Personal, Redacted
    from ._core.records import ExpectedVersion, StoredEvent
    from ._core.registry import EventRegistry
    from ._follow.batches import Batch
    from ._follow.catch_up import CatchUpSubscription
    from ._follow.projections import MemoryRows, Projection, ProjectionStatus, on
    from ._follow.projector import Projector
    from ._follow.subscriber import Subscriber
    from ._follow.supervision import ConsumerHealth
    from ._mongo.checkpoints import MongoCheckpointStore
    from ._mongo.connection import DeploymentInfo, MongoConnectionManager
    from ._mongo.event_store import MongoEventStore
    from ._mongo.keys import MongoKeyStore
    from ._mongo.mapper import MongoModelMapper
    from ._mongo.outbox import MongoOutboxStore
    from ._mongo.process_registry import Liveness
    from ._mongo.repository import MongoRepository, SearchResult
    from ._mongo.snapshots import MongoSnapshotStore
    from ._mongo.unit_of_work import MongoUnitOfWork, run_unit_of_work
    from ._outbox.publishers import InMemoryPublisher, LoggingPublisher, Publisher
    from ._outbox.relay import OutboxRelay, RelayHealth
    from ._shred.keys import KeyStore
    from .ports import (
        Backend,
        Checkpoint,
        EventLog,
        EventStore,
        OutboxLag,
        OutboxMessage,
        PositionStrategy,
        Rows,
        ScavengeReport,
        Snapshot,
        StreamLifecycle,
        StreamMetadata,
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
    "._aggregates.store": ("AggregateStore",),
    "._mongo.checkpoints": ("MongoCheckpointStore",),
    "._mongo.connection": (
        "DeploymentInfo",
        "MongoConnectionManager",
    ),
    "._core.domain": (
        "AggregateRoot",
        "DomainEvent",
        "applies",
    ),
    "._core.errors": (
        "AggregateNotFoundError",
        "AppendConditionError",
        "ArchiveError",
        "CacheError",
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
        "StreamDeletedError",
        "SubjectForgottenError",
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
    "._mongo.event_store": ("MongoEventStore",),
    "._follow.batches": ("Batch",),
    "._follow.catch_up": ("CatchUpSubscription",),
    "._mongo.mapper": ("MongoModelMapper",),
    "._mongo.outbox": ("MongoOutboxStore",),
    "._follow.projections": (
        "MemoryRows",
        "Projection",
        "ProjectionStatus",
        "on",
    ),
    "._follow.projector": ("Projector",),
    "._core.records": (
        "ExpectedVersion",
        "StoredEvent",
    ),
    "._core.registry": ("EventRegistry",),
    "._core.personal": ("Personal", "REDACTED", "Redacted"),
    "._aggregates.forgetting": ("Forgetting",),
    "._mongo.keys": ("MongoKeyStore",),
    "._shred.keys": ("KeyStore",),
    "._outbox.publishers": (
        "InMemoryPublisher",
        "LoggingPublisher",
        "Publisher",
    ),
    "._outbox.relay": (
        "OutboxRelay",
        "RelayHealth",
    ),
    "._mongo.repository": (
        "MongoRepository",
        "SearchResult",
    ),
    "._mongo.process_registry": ("Liveness",),
    "._mongo.snapshots": ("MongoSnapshotStore",),
    "._follow.subscriber": ("Subscriber",),
    "._follow.supervision": ("ConsumerHealth",),
    "._mongo.unit_of_work": (
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
        "ScavengeReport",
        "Snapshot",
        "StreamLifecycle",
        "StreamMetadata",
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
    "REDACTED",
    "AggregateNotFoundError",
    "AggregateRoot",
    "AggregateStore",
    "AppendConditionError",
    "ArchiveError",
    "Backend",
    "Batch",
    "CacheError",
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
    "Forgetting",
    "InMemoryPublisher",
    "InvalidEventError",
    "InvalidIdError",
    "InvalidNameError",
    "InvalidSpecificationError",
    "KeyStore",
    "Liveness",
    "LoggingPublisher",
    "MemoryRows",
    "MigrationError",
    "MongoCheckpointStore",
    "MongoConnectionManager",
    "MongoEventStore",
    "MongoKeyStore",
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
    "Personal",
    "PositionStrategy",
    "PositionsAbandonedError",
    "Projection",
    "ProjectionStatus",
    "Projector",
    "Publisher",
    "QueryOptions",
    "RebuildInProgressError",
    "Redacted",
    "RelayHealth",
    "Rows",
    "ScavengeReport",
    "SearchResult",
    "SerializationError",
    "Snapshot",
    "Specification",
    "SpecificationBuilder",
    "StoredEvent",
    "StreamDeletedError",
    "StreamLifecycle",
    "StreamMetadata",
    "SubjectForgottenError",
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

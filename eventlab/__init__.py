"""eventlab: an event-sourcing workbench and reference implementation on MongoDB.

The public surface is re-exported here; modules whose names start with ``_`` are private.
"""

from __future__ import annotations

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

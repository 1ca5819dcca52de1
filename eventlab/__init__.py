"""eventlab: an event-sourcing workbench and reference implementation on MongoDB.

The public surface is re-exported here; modules whose names start with ``_`` are private.
"""

from __future__ import annotations

from ._aggregate_store import AggregateStore
from ._connection import DeploymentInfo, MongoConnectionManager
from ._domain import AggregateRoot, DomainEvent, applies
from ._errors import (
    AggregateNotFoundError,
    ConcurrencyError,
    ConfigurationError,
    ConnectionFailedError,
    DocumentTooLargeError,
    DuplicateEventError,
    EmbeddedServerError,
    EmbeddedServerNotInstalledError,
    EventlabError,
    InvalidEventError,
    InvalidNameError,
    MigrationError,
    NotConnectedError,
    SerializationError,
    TransactionAbortedError,
    TransactionError,
    TransactionsUnsupportedError,
    TransactionTimeoutError,
    UnitOfWorkStateError,
    UnknownEventTypeError,
    UpcastError,
    WriteConflictError,
)
from ._event_store import EventStream, MongoEventStore
from ._mapper import MongoDBModelMapper
from ._outbox import (
    InMemoryPublisher,
    LoggingPublisher,
    MongoOutboxStorage,
    OutboxMessage,
    OutboxRelay,
    Publisher,
)
from ._records import ExpectedVersion, StoredEvent
from ._registry import EventRegistry
from ._repository import MongoRepository, SearchResult
from ._transactions import run_transaction
from ._unit_of_work import MongoUnitOfWork, run_unit_of_work
from .specification import (
    InvalidSpecificationError,
    QueryOptions,
    Specification,
    SpecificationBuilder,
)

__version__ = "0.1.0"

__all__ = [
    "AggregateNotFoundError",
    "AggregateRoot",
    "AggregateStore",
    "ConcurrencyError",
    "ConfigurationError",
    "ConnectionFailedError",
    "DeploymentInfo",
    "DocumentTooLargeError",
    "DomainEvent",
    "DuplicateEventError",
    "EmbeddedServerError",
    "EmbeddedServerNotInstalledError",
    "EventRegistry",
    "EventStream",
    "EventlabError",
    "ExpectedVersion",
    "InMemoryPublisher",
    "InvalidEventError",
    "InvalidNameError",
    "InvalidSpecificationError",
    "LoggingPublisher",
    "MigrationError",
    "MongoConnectionManager",
    "MongoDBModelMapper",
    "MongoEventStore",
    "MongoOutboxStorage",
    "MongoRepository",
    "MongoUnitOfWork",
    "NotConnectedError",
    "OutboxMessage",
    "OutboxRelay",
    "Publisher",
    "QueryOptions",
    "SearchResult",
    "SerializationError",
    "Specification",
    "SpecificationBuilder",
    "StoredEvent",
    "TransactionAbortedError",
    "TransactionError",
    "TransactionTimeoutError",
    "TransactionsUnsupportedError",
    "UnitOfWorkStateError",
    "UnknownEventTypeError",
    "UpcastError",
    "WriteConflictError",
    "applies",
    "run_transaction",
    "run_unit_of_work",
]

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
from ._records import ExpectedVersion, StoredEvent
from ._registry import EventRegistry
from ._transactions import run_transaction

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
    "InvalidEventError",
    "InvalidNameError",
    "MigrationError",
    "MongoConnectionManager",
    "MongoEventStore",
    "NotConnectedError",
    "SerializationError",
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
]

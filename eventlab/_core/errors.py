"""Typed errors. Every error eventlab raises derives from :class:`EventlabError`.

Errors are named after what went wrong, carry the facts a caller needs to react (ids, versions,
names), and keep the driver's exception as ``__cause__`` when there is one. Driver errors are
mapped once, where eventlab calls the driver (``_transaction_policy.map_error``). They are
grouped by what the caller should do (after PEP 249 and the ``eventsourcing`` library's
persistence errors); ``retryable`` is true only where the same call, made again unchanged,
may succeed **and cannot double an effect**:

==================================  ========================================================
catch                               and
==================================  ========================================================
:class:`ConflictError`              reload, decide again (a version, an id, a checkpoint moved)
:class:`TransientError`             retry the same call (``retryable``: nothing was written)
:class:`CommitOutcomeUnknownError`  re-send with the same ids; check non-idempotent effects
:class:`DeploymentError`            fix the deployment (a privilege, a setting); a retry fails
:class:`DataError`                  fix the data (it cannot be stored or read exactly as given)
:class:`ConfigurationError`         fix the code or the settings (nothing was written)
==================================  ========================================================

README's "Errors: what to catch" table is the one a test holds this hierarchy to. eventlab's
own control flow between its layers (a lost lease, a superseded generation, a migrated
strategy) uses :class:`InternalSignal`, which is not an :class:`EventlabError` and never
reaches a caller.
"""

from __future__ import annotations

from typing import Any


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), for our messages."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


class InternalSignal(Exception):
    """Private control flow between eventlab's layers (never raised to a caller), kept off
    the public hierarchy so that no ``except EventlabError`` of a caller can swallow it."""


class EventlabError(Exception):
    """Base class of every error raised by eventlab."""

    retryable: bool = False
    """Whether the same call, made again unchanged, may succeed."""


class ConflictError(EventlabError):
    """The state changed under the caller (a stream's version, a stored id, a checkpoint):
    reload and decide again. Nothing of the failed call was written."""


class TransientError(EventlabError):
    """The deployment had trouble (a lost connection, a write conflict, an election) and
    nothing of the call was written: the same call may succeed if made again, and making it
    again cannot apply anything twice."""

    retryable = True


class CommitOutcomeUnknownError(EventlabError):
    """The commit was sent but its outcome could not be learned: it may or may not have applied.

    Not a :class:`TransientError`: running the same unit of work again could apply its effects
    twice (a ``$inc``, a message sent). Re-send appends with the **same event ids**: an append
    that did apply is then recognised as an idempotent retry and returns the stored events; one
    that did not is written now. Check whether your other, non-idempotent effects applied
    before doing them again.
    """


class DeploymentError(EventlabError):
    """The deployment refused or failed the operation for a reason the same call will meet
    again (a missing privilege, a server-side error): fix the deployment, then run it again.
    Nothing of a transaction was committed. ``code`` is the server's error code, if any."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class NotAuthorizedError(DeploymentError):
    """The deployment's user lacks a privilege the operation needs (server code 13): grant
    the role (the message names the command), then run it again."""


class DataError(EventlabError, ValueError):
    """Data that cannot be stored or read exactly as given (nothing was written)."""


class ConfigurationError(EventlabError, ValueError):
    """An option, name or argument is invalid (raised before anything is written)."""


class InvalidNameError(ConfigurationError):
    """A database, collection or field name is not acceptable to MongoDB or to eventlab."""


class ConnectionFailedError(TransientError):
    """The MongoDB deployment could not be reached, or could not serve the operation at that
    moment (an election, a shutdown); the URI is named, credentials masked.

    eventlab's writes outside transactions are conditional (on a version, an owner, a claim)
    or only move forward, so making the same call again cannot apply one twice."""

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.uri = uri


class NotConnectedError(ConfigurationError):
    """An operation needs a connection that was never opened or was already closed (call
    ``await connection.connect()``, or use ``async with``)."""


class TransactionsUnsupportedError(ConfigurationError):
    """Transactions were required but the deployment is a standalone server."""


class WriteConflictError(TransientError):
    """Another transaction modified the same document first (server code 112)."""


class TransactionAbortedError(TransientError):
    """The server no longer knows the transaction: it was aborted or expired (code 251)."""


class TransactionTimeoutError(TransientError):
    """Retrying a transient transaction failure did not succeed within the time budget (every
    attempt was aborted: nothing was written)."""


class UnitOfWorkStateError(ConfigurationError):
    """A unit of work was used outside its ``async with`` block or after it finished."""


class CacheError(EventlabError):
    """A frame cache directory cannot be used: it is not a directory, or it cannot be
    written or locked (the path and the reason are named). A cache whose files or manifest
    fail their checks is never an error: the cache rebuilds what it must and says so."""


class ArchiveError(EventlabError):
    """An archive cannot be used as asked: its location holds another store's archive or
    files that are not an archive, it cannot be written or read, or its files fail their
    checksums (the location and the reason are named). Nothing was removed from the store."""


class EmbeddedServerError(EventlabError):
    """The embedded MongoDB-compatible server could not be started or stopped."""


class EmbeddedServerNotInstalledError(EmbeddedServerError):
    """The embedded server's package (the ``embedded`` extra) is not installed."""


class SerializationError(DataError):
    """A payload or event cannot be represented exactly in BSON (the path is named)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class DocumentTooLargeError(SerializationError):
    """An event or entity document exceeds MongoDB's 16 MiB document limit."""


class UnknownEventTypeError(DataError, LookupError):
    """An event type name has no registered class (and raw loading was not asked for)."""

    def __init__(self, event_type: str) -> None:
        super().__init__(
            f"unknown event type {event_type!r}: register its class with "
            "EventRegistry.register(), or load with unknown='raw' to get StoredEvent records"
        )
        self.event_type = event_type


class UpcastError(DataError):
    """An upcaster failed or the upcaster chain does not reach the current schema version."""


class ConcurrencyError(ConflictError):
    """The stream is not at the version the writer expected; nothing was written."""

    def __init__(self, aggregate_id: str, expected_version: Any, actual_version: int) -> None:
        super().__init__(
            f"stream {aggregate_id!r}: expected version {expected_version}, "
            f"but it is at version {actual_version}"
        )
        self.aggregate_id = aggregate_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class AppendConditionError(ConflictError):
    """A DCB append's condition failed: an event matching its query was recorded after the
    position the decision read. Nothing was written; read again and decide again."""

    def __init__(self, condition: Any, event: Any) -> None:
        tags = ", ".join(event.tags[:5]) or "no tags"
        super().__init__(
            f"append condition failed: event #{event.position} ({event.event_type}; {tags}) "
            f"matches the condition's query and was recorded after position {condition.after}"
        )
        self.condition = condition
        self.event = event


class CheckpointConflictError(ConflictError):
    """A subscriber's checkpoint moved under it: another instance of it is running."""


class PositionsAbandonedError(TransientError):
    """A follower recorded this append's preallocated positions as a permanent gap before the
    append inserted there; nothing of the unit of work is stored. Run it again."""


class ConsumerBusyError(EventlabError):
    """Another live process holds the lease of this subscriber or projector name."""

    def __init__(self, name: str, holder: str | None) -> None:
        super().__init__(
            f"{name!r} is running in another process ({holder or 'unknown holder'}), which "
            "keeps it up to date; stop that one, or run this one live (it stands by and takes "
            "over if the other stops)"
        )
        self.name = name
        self.holder = holder


class RebuildInProgressError(EventlabError):
    """Another rebuild of this projection is running; nothing was changed."""


class SubscriptionError(ConfigurationError):
    """A subscription or a consumer was misused (iterated twice, started twice, asked for a
    change stream where the deployment has none)."""


class DuplicateMessageError(ConflictError):
    """Outbox message ids are already stored with other content (so not an idempotent retry)."""

    def __init__(self, message_ids: list[str]) -> None:
        shown = ", ".join(message_ids[:5])
        more = f" and {len(message_ids) - 5} more" if len(message_ids) > 5 else ""
        super().__init__(
            f"outbox message id(s) {shown}{more} already stored with other content; "
            "an idempotent retry must resend identical messages"
        )
        self.message_ids = message_ids


class DuplicateEventError(ConflictError):
    """Event ids are already stored, but not as this exact batch (so not an idempotent retry).

    From a restore: the ids are stored already (``written`` events of the restore were)."""

    def __init__(self, event_ids: list[Any], *, written: int | None = None) -> None:
        shown = ", ".join(str(e) for e in event_ids[:5])
        more = f" and {len(event_ids) - 5} more" if len(event_ids) > 5 else ""
        if written is None:
            message = (
                f"event id(s) {shown}{more} already stored with other content or in another "
                "batch; an idempotent retry must resend the identical batch"
            )
        else:
            message = (
                f"restore stopped after {written:,} events: event id(s) {shown}{more} are "
                "stored already"
            )
        super().__init__(message)
        self.event_ids = event_ids
        self.written = written


class InvalidEventError(DataError):
    """An event or batch is malformed (versions not contiguous, mixed ids, bad fields)."""


class SubjectForgottenError(DataError):
    """An append carries personal data of a subject that has been forgotten (its key
    destroyed): refused, nothing written. A forgotten subject stays forgotten; a person who
    comes back is a new subject with a new id (docs/forgetting.md)."""

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"subject {subject[:80]!r} has been forgotten: its personal data cannot be "
            "written again (use a new subject id)"
        )
        self.subject = subject


class InvalidIdError(ConfigurationError):
    """An id or name given as an argument is not a plain value of an accepted type.

    Ids are values, never query operators: a dict such as ``{"$ne": None}`` from a JSON request
    body must not match (or delete) an arbitrary document. The message names the argument.
    """


class UniqueConstraintError(ConflictError):
    """A unique index other than the id refused a document (an email already taken, say).

    Not a version conflict: retrying with a fresh version cannot help. ``index`` names the
    index, ``key`` the value that is taken (as the server reported it).
    """

    def __init__(self, collection: str, index: str, key: Any) -> None:
        super().__init__(f"{collection}: unique index {index!r} already holds {key!r}")
        self.collection = collection
        self.index = index
        self.key = key


class InvalidSpecificationError(ConfigurationError):
    """A field path, operator or value is not acceptable in a specification."""


class AggregateNotFoundError(EventlabError, LookupError):
    """No events exist for the requested aggregate id."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(f"no events stored for aggregate {aggregate_id!r}")
        self.aggregate_id = aggregate_id


class MigrationError(DeploymentError):
    """An index migration could not be applied (a privilege, a sharded events collection,
    stored data a new unique index refuses): the message says which."""


class StreamDeletedError(EventlabError):
    """The stream was deleted permanently (``lifecycle.delete(..., permanent=True)``): it can
    be neither read nor appended to again; nothing was written."""

    def __init__(self, aggregate_id: str, version: int | None = None) -> None:
        at = f" at version {version}" if version is not None else ""
        super().__init__(f"stream {aggregate_id[:200]!r} was deleted permanently{at}")
        self.aggregate_id = aggregate_id
        self.version = version

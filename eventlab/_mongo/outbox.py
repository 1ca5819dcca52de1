"""Transactional outbox: messages written in the same transaction as the state they describe,
handed to relays by fenced, server-timed claims.

The ownership rules, in one place:

* A claim gives each message a fresh **claim token** (the fencing token) and increments its
  ``fence`` counter. Every later step of that claim (publish, fail, release, renew) is an update
  conditional on ``_id``, ``status: "claimed"`` **and** that token, and reports whether it
  applied. A relay whose lease ran out and was re-claimed by another can therefore change
  nothing: its token is gone.
* Leases and due times are computed by the server (``$$NOW`` in update pipelines,
  ``$currentDate``), and the "is it due?" question is asked with the server's time
  (:class:`~eventlab._mongo.clock.ServerClock`), so no client clock decides who owns a message.
* ``retry_count`` is incremented on the server in the same update that records a failure.
* Per-key order follows ``sequence`` (an event's version, or a per-key counter taken inside the
  saving transaction), never a client timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, PyMongoError

from .._core import telemetry as telemetry
from .._core.bson_values import check_collection_name, to_bson_value
from .._core.checks import check_id
from .._core.errors import (
    ConfigurationError,
    DuplicateMessageError,
    EventlabError,
    WriteConflictError,
)
from ..ports import OutboxLag, OutboxMessage, UnitOfWork
from .clock import ServerClock
from .connection import MongoConnectionManager
from .migrations import IndexSpec, Migration, MigrationResult, Migrator
from .outbox_claims import MongoClaims, from_doc
from .session import session_of
from .transaction_policy import map_error
from .transactions import run_transaction

_DUPLICATE_KEY = 11000
_WRITE_CONFLICT = 112


_CONTENT_FIELDS = ("event_type", "payload", "ordering_key", "headers")


def _to_doc(message: OutboxMessage, content: dict[str, Any], due_at: datetime) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": message.message_id,
        **content,
        "sequence": message.sequence,
        "created_at": to_bson_value(message.created_at, "created_at"),
        "status": "pending",
        "retry_count": 0,
        "fence": 0,
        "error": None,
        "due_at": due_at,
    }
    if message.ordering_key is not None:
        # Present only while the message is unfinished, so the ordering index answers "what
        # is the oldest unfinished message of this key" without reading the key's history.
        doc["open_key"] = message.ordering_key
    return doc


OUTBOX_MIGRATIONS = (
    Migration(
        1,
        "outbox_due",
        "outbox",
        (
            # Sparse: only unfinished messages carry due_at, so the index holds exactly the
            # messages a relay may still claim, ordered by when they are (or become) due.
            IndexSpec((("due_at", ASCENDING),), "due", sparse=True),
        ),
        "one index for claims and lag: unfinished messages by due time",
    ),
)

ORDERED_OUTBOX_MIGRATIONS = (
    Migration(
        2,
        "outbox_ordering",
        "outbox",
        (IndexSpec((("open_key", ASCENDING), ("sequence", ASCENDING)), "open_key_sequence"),),
        "ordered outboxes: the oldest unfinished message of each key",
    ),
)


class MongoOutboxStore(MongoClaims):
    """The outbox collection: saving messages (here) and handing them out (the claim
    protocol, :class:`~eventlab._mongo.outbox_claims.MongoClaims`).

    :param max_attempts: failures after which a message is dead-lettered (status ``dead``).
    :param backoff_base: seconds before the first retry; doubles per attempt, with jitter.
    :param backoff_max: cap of the retry delay in seconds.
    :param ordered: publish messages that share an ordering key one at a time, in ``sequence``
        order: a message is claimable only while no message of its key with a lower sequence is
        unfinished (pending, claimed, or failed awaiting a retry). Dead messages do not block.
    """

    def __init__(
        self,
        connection: MongoConnectionManager,
        collection: str = "outbox",
        *,
        max_attempts: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        ordered: bool = False,
    ) -> None:
        if max_attempts < 1:
            raise ConfigurationError("max_attempts must be >= 1")
        if backoff_base < 0 or backoff_max < 0:
            raise ConfigurationError("backoff_base and backoff_max must be >= 0")
        self.connection = connection
        self.collection_name = check_collection_name(collection)
        self.sequences_name = check_collection_name(f"{self.collection_name}_sequences")
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.ordered = ordered
        self._migrated = False
        self._clock: ServerClock | None = None

    @property
    def collection(self) -> Any:
        return self.connection.database[self.collection_name]

    @property
    def clock(self) -> ServerClock:
        """The server clock the claims are timed by."""
        if self._clock is None:
            self._clock = ServerClock(self.connection.database)
        return self._clock

    async def migrate(self) -> MigrationResult:
        """Create the outbox's indexes (idempotent; recorded in ``_migrations``)."""
        await self.connection.connect()  # idempotent
        migrator = Migrator(self.connection.database, {"outbox": self.collection_name})
        migrations = OUTBOX_MIGRATIONS + (ORDERED_OUTBOX_MIGRATIONS if self.ordered else ())
        try:
            result = await migrator.run(migrations)
        except PyMongoError as exc:
            raise map_error(exc) from exc
        self._migrated = True
        return result

    async def _ready(self) -> None:
        await self.connection.connect()  # idempotent
        if not self._migrated:
            await self.migrate()

    # -- writing -----------------------------------------------------------------------------

    async def save_messages(
        self, messages: Sequence[OutboxMessage], uow: UnitOfWork | None = None
    ) -> None:
        """Store messages, in the unit of work's transaction when ``uow`` is given.

        Idempotent by message id, like :meth:`MongoEventStore.append`: saving a message
        whose id is stored with the same content (type, payload, key, headers) is a no-op, so a
        unit of work retried after an unknown commit outcome goes through; the same id with
        other content raises :class:`~eventlab.DuplicateMessageError` and writes nothing.
        """
        if not messages:
            return
        with telemetry.span(
            f"create {self.collection_name}",
            {
                "messaging.system": "eventlab",
                "messaging.operation.type": "create",
                "messaging.operation.name": "save_messages",
                "messaging.batch.message_count": len(messages),
            },
            kind="producer",
        ):
            await self._save_messages(messages, uow)

    async def _save_messages(
        self, messages: Sequence[OutboxMessage], uow: UnitOfWork | None
    ) -> None:
        contents = [m.content() for m in messages]  # serialization errors before any I/O
        ids = [m.message_id for m in messages]
        if len(set(ids)) != len(ids):
            raise ConfigurationError("the same message id appears twice in one save")
        set_up_now = not self._migrated
        await self._ready()
        due_at = await self.clock.estimate()
        session = session_of(uow)
        try:
            if session is not None:
                try:
                    await self._write(messages, contents, due_at, session)
                except PyMongoError as exc:
                    if set_up_now and getattr(exc, "code", None) == _WRITE_CONFLICT:
                        raise WriteConflictError(
                            "the outbox's collection and indexes were created while this unit "
                            "of work's transaction was open, which conflicts with writing to "
                            "them in it: retry the unit of work, and call "
                            "await outbox.migrate() at startup"
                        ) from exc
                    raise
            elif self._needs_sequences(messages) and self.connection.supports_transactions:
                # Taking a sequence and inserting must commit together, or a later number could
                # become visible before an earlier one.
                await run_transaction(
                    self.connection.client,
                    lambda s: self._write(messages, contents, due_at, s),
                )
            else:
                await self._write(messages, contents, due_at, None)
        except EventlabError:
            raise
        except PyMongoError as exc:
            raise map_error(exc) from exc

    def _needs_sequences(self, messages: Sequence[OutboxMessage]) -> bool:
        return self.ordered and any(
            m.ordering_key is not None and m.sequence is None for m in messages
        )

    async def _write(
        self,
        messages: Sequence[OutboxMessage],
        contents: list[dict[str, Any]],
        due_at: datetime,
        session: AsyncClientSession | None,
    ) -> None:
        # Stored copies are looked for first: in a transaction a duplicate key would abort all of
        # the caller's work, and outside one a conflicting id must stop the whole save before
        # any message of it is written.
        stored = await self._stored(messages, contents, session)
        pending = [
            (m, c) for m, c in zip(messages, contents, strict=True) if m.message_id not in stored
        ]
        if not pending:
            return
        sequenced = await self._sequence([m for m, _ in pending], session)
        docs = [_to_doc(m, c, due_at) for m, (_, c) in zip(sequenced, pending, strict=True)]
        try:
            await self.collection.insert_many(docs, ordered=False, session=session)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if session is not None or not errors:
                raise  # in a transaction any write error has aborted it: never report success
            if any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise
            duplicates = [docs[e["index"]]["_id"] for e in errors]
            subset = [(m, c) for m, c in pending if m.message_id in set(duplicates)]
            await self._stored([m for m, _ in subset], [c for _, c in subset], session)

    async def _stored(
        self,
        messages: Sequence[OutboxMessage],
        contents: list[dict[str, Any]],
        session: AsyncClientSession | None,
    ) -> set[str]:
        """Ids already stored with the same content; a different content is an error."""
        ids = [m.message_id for m in messages]
        found = {
            doc["_id"]: doc
            async for doc in self.collection.find(
                {"_id": {"$in": ids}},
                {f: 1 for f in (*_CONTENT_FIELDS, "sequence")},
                session=session,
            )
        }
        differing = []
        for message, content in zip(messages, contents, strict=True):
            doc = found.get(message.message_id)
            if doc is None:
                continue
            same = all(doc.get(f) == content[f] for f in _CONTENT_FIELDS) and (
                message.sequence is None or doc.get("sequence") == message.sequence
            )
            if not same:
                differing.append(message.message_id)
        if differing:
            raise DuplicateMessageError(differing)
        return set(found)

    async def _sequence(
        self, messages: list[OutboxMessage], session: AsyncClientSession | None
    ) -> list[OutboxMessage]:
        """Give keyed messages without a sequence the next numbers of their key's counter."""
        if not self._needs_sequences(messages):
            return messages
        wanted: dict[str, int] = {}
        for message in messages:
            if message.ordering_key is not None and message.sequence is None:
                wanted[message.ordering_key] = wanted.get(message.ordering_key, 0) + 1
        counters = self.connection.database[self.sequences_name]
        next_of: dict[str, int] = {}
        for key, count in wanted.items():
            # Inside the transaction the counter document is locked until commit: a second
            # writer of the same key waits (write conflict, retried), so numbers commit in order.
            doc = await counters.find_one_and_update(
                {"_id": key},
                {"$inc": {"last": count}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            next_of[key] = int((doc or {}).get("last", count)) - count + 1
        result = []
        for message in messages:
            own_key = message.ordering_key
            if own_key is not None and message.sequence is None:
                message = replace(message, sequence=next_of[own_key])
                next_of[own_key] += 1
            result.append(message)
        return result

    # -- inspection and housekeeping ---------------------------------------------------------

    async def purge_published(self, older_than: timedelta) -> int:
        """Delete published messages older than ``older_than`` (by the server's clock).

        Not served by an index on purpose: purging is rare housekeeping, and an index on
        ``published_at`` would cost every publish (docs/persistence.md, "Indexes").
        """
        await self._ready()
        cutoff = await self.clock.now() - older_than
        try:
            result = await self.collection.delete_many(
                {"status": "published", "published_at": {"$lt": cutoff}}
            )
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return int(result.deleted_count)

    async def get(self, message_id: str) -> OutboxMessage | None:
        """One message as stored, or ``None``."""
        await self._ready()
        try:
            doc = await self.collection.find_one({"_id": check_id(message_id, "message_id")})
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return from_doc(doc) if doc else None

    async def counts(self) -> dict[str, int]:
        """Messages per status (a diagnostic: reads the whole collection)."""
        await self._ready()
        pipeline = [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]
        try:
            return {d["_id"]: d["n"] async for d in await self.collection.aggregate(pipeline)}
        except PyMongoError as exc:
            raise map_error(exc) from exc

    async def lag(self) -> OutboxLag:
        """Due and in-flight messages and the age of the oldest due one (server time)."""
        await self._ready()
        try:
            now = await self.clock.now()
            due_query = {"due_at": {"$lte": now}}
            due = await self.collection.count_documents(due_query)
            oldest = await self.collection.find_one(
                due_query, {"due_at": 1}, sort=[("due_at", ASCENDING)]
            )
            in_flight = await self.collection.count_documents(
                {"due_at": {"$gt": now}, "status": "claimed"}
            )
        except PyMongoError as exc:
            raise map_error(exc) from exc
        age = (now - oldest["due_at"]).total_seconds() if oldest else 0.0
        return OutboxLag(due=due, oldest_due_seconds=max(0.0, age), in_flight=in_flight)

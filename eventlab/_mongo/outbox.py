"""Transactional outbox: messages written in the same transaction as the state they describe
(:mod:`~eventlab._mongo.outbox_saves`), handed to relays by fenced, server-timed claims
(:mod:`~eventlab._mongo.outbox_claims`, where the ownership rules are), under one
:class:`~eventlab._outbox.policy.OutboxPolicy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Unpack

from pymongo import ASCENDING
from pymongo.errors import PyMongoError

from .._core.checks import check_id
from .._outbox.policy import OutboxOptions, OutboxPolicy
from ..ports import OutboxLag, OutboxMessage, UnitOfWork
from .clock import ServerClock
from .connection import MongoConnectionManager
from .migrations import MigrationResult
from .outbox_claims import MongoClaims, from_doc
from .outbox_collection import OutboxCollection
from .outbox_saves import OutboxSaves
from .transaction_policy import map_error


class MongoOutboxStore:
    """The outbox collection: saving messages (:class:`~eventlab._mongo.outbox_saves.OutboxSaves`)
    and handing them out by the claim protocol
    (:class:`~eventlab._mongo.outbox_claims.MongoClaims`), under one
    :class:`~eventlab._outbox.policy.OutboxPolicy` (the in-memory outbox's too).

    :param collection: the collection of messages (``{collection}_sequences`` beside it holds
        the per-key counters of an ordered outbox).
    :param options: the outbox's policy (:class:`~eventlab._outbox.policy.OutboxPolicy`):
        ``max_attempts`` (default 5), failures after which a message is dead-lettered (status
        ``dead``); ``backoff_base`` (1.0), seconds before the first retry, doubled per attempt,
        with jitter; ``backoff_max`` (300.0), the cap of that delay; ``ordered`` (``False``):
        publish messages that share an ordering key one at a time, in ``sequence`` order: a
        message is claimable only while no message of its key with a lower sequence is
        unfinished (pending, claimed, or failed awaiting a retry). Dead messages do not block.
    """

    def __init__(
        self,
        connection: MongoConnectionManager,
        collection: str = "outbox",
        **options: Unpack[OutboxOptions],
    ) -> None:
        self.policy = OutboxPolicy(**options)
        self.connection = connection
        self._place = OutboxCollection(connection, collection, ordered=self.policy.ordered)
        self.collection_name = self._place.name
        self._saves = OutboxSaves(self._place, self.policy)
        self._claims = MongoClaims(self._place, self.policy)

    @property
    def collection(self) -> Any:
        """The collection of messages (for your own queries; never write to it)."""
        return self._place.messages

    @property
    def clock(self) -> ServerClock:
        """The server clock the claims are timed by."""
        return self._place.clock

    async def migrate(self) -> MigrationResult:
        """Create the outbox's indexes (idempotent; recorded in ``_migrations``)."""
        return await self._place.migrate()

    async def _ready(self) -> None:
        await self._place.ready()

    # -- saving ------------------------------------------------------------------------------

    async def save_messages(
        self, messages: Sequence[OutboxMessage], uow: UnitOfWork | None = None
    ) -> None:
        """Store messages, in the unit of work's transaction when ``uow`` is given.

        Idempotent by message id, like :meth:`MongoEventStore.append`: saving a message
        whose id is stored with the same content (type, payload, key, headers) is a no-op, so a
        unit of work retried after an unknown commit outcome goes through; the same id with
        other content raises :class:`~eventlab.DuplicateMessageError` and writes nothing.
        """
        await self._saves.save(messages, uow)

    # -- claiming: every step after a claim conditional on its token ---------------------------

    async def get_pending(self, limit: int = 100) -> list[OutboxMessage]:
        """Messages due for publishing, longest due first (read only; use :meth:`claim`)."""
        return await self._claims.get_pending(limit)

    async def claim(
        self, worker_id: str, limit: int = 50, lease: float | timedelta = 30.0
    ) -> list[OutboxMessage]:
        """Hand up to ``limit`` due messages to ``worker_id`` until its lease ends; each carries
        its ``claim_token``, ``fence`` and server-set ``lease_until``. Two workers never both
        win a message; a worker that dies lets its lease run out, and the message is due."""
        return await self._claims.claim(worker_id, limit, lease)

    async def mark_published(self, messages: Sequence[OutboxMessage]) -> int:
        """Mark claimed messages published; how many this claim still owned (the others were
        claimed again by someone else, and are left as they are)."""
        return await self._claims.mark_published(messages)

    async def mark_failed(self, message: OutboxMessage, error: str) -> OutboxMessage | None:
        """Record a failed attempt of a claimed message; ``None`` if the claim is no longer
        held. Due again after a backoff with jitter, or dead at ``max_attempts``."""
        return await self._claims.mark_failed(message, error)

    async def release(self, messages: Sequence[OutboxMessage]) -> int:
        """Give claimed messages back, due at once; how many this claim still owned."""
        return await self._claims.release(messages)

    async def renew(self, messages: Sequence[OutboxMessage], lease: float | timedelta) -> set[str]:
        """Extend the lease of claimed messages to ``lease`` from the server's now; the ids
        whose claim is still held."""
        return await self._claims.renew(messages, lease)

    def retry_delay(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: base * 2^(attempts-1), capped, ±25% jitter."""
        return self.policy.retry_delay(attempts)

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

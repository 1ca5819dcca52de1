"""Transactional outbox: messages written in the same transaction as the state they describe,
published afterwards by relays that claim them with leases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import ConnectionFailure

from ._bson import check_collection_name, decimals_to_python, to_bson_value
from ._connection import MongoConnectionManager
from ._domain import utc_now
from ._errors import ConfigurationError, ConnectionFailedError
from ._migrations import IndexSpec, Migration, MigrationResult, Migrator
from ._session import SessionProvider

logger = logging.getLogger("eventlab.outbox")

Status = Literal["pending", "claimed", "published", "failed", "dead"]


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message waiting to be published (``status`` and the fields after it are the relay's)."""

    message_id: str
    event_type: str
    payload: dict[str, Any]
    created_at: datetime = field(default_factory=utc_now)
    ordering_key: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    status: Status = "pending"
    retry_count: int = 0
    error: str | None = None
    published_at: datetime | None = None
    claimed_by: str | None = None
    lease_until: datetime | None = None
    next_attempt_at: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.message_id, str) or not self.message_id:
            object.__setattr__(self, "message_id", str(self.message_id))
        if not self.event_type:
            raise ConfigurationError("an outbox message needs an event_type")

    @classmethod
    def from_stored_event(cls, event: Any) -> OutboxMessage:
        """The message announcing a :class:`StoredEvent` (ordering key: its aggregate id)."""
        return cls(
            message_id=str(event.event_id),
            event_type=event.event_type,
            payload=event.payload,
            created_at=event.occurred_at,
            ordering_key=event.aggregate_id,
            headers={
                "aggregate_id": event.aggregate_id,
                "aggregate_type": event.aggregate_type,
                "version": event.version,
                "position": event.position,
                **{k: v for k, v in event.metadata.items() if isinstance(v, str | int)},
            },
        )


def _to_doc(message: OutboxMessage) -> dict[str, Any]:
    doc = {
        "_id": message.message_id,
        "event_type": message.event_type,
        "payload": message.payload,
        "created_at": message.created_at,
        "ordering_key": message.ordering_key,
        "headers": message.headers,
        "status": "pending",
        "retry_count": 0,
        "error": None,
        "published_at": None,
        "claimed_by": None,
        "lease_until": None,
        "next_attempt_at": message.next_attempt_at or message.created_at,
    }
    converted: dict[str, Any] = to_bson_value(doc, f"outbox message {message.message_id}")
    return converted


def _from_doc(doc: dict[str, Any]) -> OutboxMessage:
    return OutboxMessage(
        message_id=doc["_id"],
        event_type=doc["event_type"],
        payload=decimals_to_python(doc.get("payload") or {}),
        created_at=doc["created_at"],
        ordering_key=doc.get("ordering_key"),
        headers=doc.get("headers") or {},
        status=doc.get("status", "pending"),
        retry_count=doc.get("retry_count", 0),
        error=doc.get("error"),
        published_at=doc.get("published_at"),
        claimed_by=doc.get("claimed_by"),
        lease_until=doc.get("lease_until"),
        next_attempt_at=doc.get("next_attempt_at"),
    )


OUTBOX_MIGRATIONS = (
    Migration(
        1,
        "outbox",
        "outbox",
        (
            IndexSpec((("status", ASCENDING), ("next_attempt_at", ASCENDING)), "status_due"),
            IndexSpec((("ordering_key", ASCENDING), ("created_at", ASCENDING)), "key_created"),
            IndexSpec((("status", ASCENDING), ("lease_until", ASCENDING)), "status_lease"),
            IndexSpec((("status", ASCENDING), ("published_at", ASCENDING)), "status_published"),
            IndexSpec((("claim_token", ASCENDING),), "claim_token"),
        ),
        "claim, ordering and purge indexes",
    ),
)


class MongoOutboxStore:
    """The outbox collection and its claim protocol.

    :param max_attempts: failures after which a message is dead-lettered (status ``dead``).
    :param backoff_base: seconds before the first retry; doubles per attempt, with jitter.
    :param backoff_max: cap of the retry delay in seconds.
    :param ordered: hold back a message while an older one with the same ordering key is not
        yet published (pending, claimed, or failed awaiting retry). Dead messages do not block.
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
        self.connection = connection
        self.collection_name = check_collection_name(collection)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.ordered = ordered
        self._migrated = False

    @property
    def collection(self) -> Any:
        return self.connection.database[self.collection_name]

    async def migrate(self) -> MigrationResult:
        """Create the outbox indexes (idempotent)."""
        migrator = Migrator(self.connection.database, {"outbox": self.collection_name})
        result = await migrator.run(OUTBOX_MIGRATIONS)
        self._migrated = True
        return result

    async def _ready(self) -> None:
        if not self.connection.is_connected:
            await self.connection.connect()
        if not self._migrated:
            await self.migrate()

    # -- writing -----------------------------------------------------------------------------

    async def save_messages(
        self, messages: Sequence[OutboxMessage], uow: SessionProvider | None = None
    ) -> None:
        """Store messages, in the unit of work's transaction when ``uow`` is given."""
        if not messages:
            return
        await self._ready()
        docs = [_to_doc(m) for m in messages]
        await self.collection.insert_many(docs, session=uow.session if uow else None)

    # -- relaying ----------------------------------------------------------------------------

    def _claimable(self, now: datetime) -> dict[str, Any]:
        return {
            "$or": [
                {"status": {"$in": ["pending", "failed"]}, "next_attempt_at": {"$lte": now}},
                {"status": "claimed", "lease_until": {"$lt": now}},
            ]
        }

    async def get_pending(self, limit: int = 100) -> list[OutboxMessage]:
        """Messages due for publishing, oldest first (read only; use :meth:`claim` to relay)."""
        await self._ready()
        cursor = self.collection.find(self._claimable(utc_now()), sort=[("created_at", 1)])
        return [_from_doc(d) async for d in cursor.limit(limit)]

    async def claim(
        self, worker_id: str, limit: int = 50, lease: float | timedelta = 30.0
    ) -> list[OutboxMessage]:
        """Atomically hand up to ``limit`` due messages to ``worker_id`` until the lease ends.

        Each message is claimed with one ``find_one_and_update`` whose filter re-checks that it
        is still claimable, so two workers can never hold the same live claim. A worker that
        dies simply lets its lease expire; the message is then claimable again.
        """
        await self._ready()
        lease_seconds = lease.total_seconds() if isinstance(lease, timedelta) else float(lease)
        now = utc_now()
        candidates = (
            await self.collection.find(
                self._claimable(now),
                {"_id": 1, "ordering_key": 1, "created_at": 1},
                sort=[("created_at", 1), ("_id", 1)],
            )
            .limit(limit * 4 if self.ordered else limit)
            .to_list(None)
        )
        chosen: list[Any] = []
        held_keys: set[str] = set()
        for candidate in candidates:
            if len(chosen) >= limit:
                break
            key = candidate.get("ordering_key")
            if self.ordered and key is not None:
                if key in held_keys or await self._older_unfinished(candidate):
                    continue
                held_keys.add(key)
            chosen.append(candidate["_id"])
        if not chosen:
            return []
        # One update for the whole batch. The filter is re-evaluated for each document as it is
        # updated, so a message another worker claimed in the meantime is skipped; the token
        # then tells exactly which messages this call won.
        token = uuid.uuid4().hex
        await self.collection.update_many(
            {"_id": {"$in": chosen}, **self._claimable(now)},
            {
                "$set": {
                    "status": "claimed",
                    "claimed_by": worker_id,
                    "claim_token": token,
                    "lease_until": now + timedelta(seconds=lease_seconds),
                }
            },
        )
        won = await self.collection.find({"claim_token": token}).to_list(None)
        order = {message_id: i for i, message_id in enumerate(chosen)}
        return sorted((_from_doc(d) for d in won), key=lambda m: order[m.message_id])

    async def _older_unfinished(self, candidate: dict[str, Any]) -> bool:
        older = await self.collection.find_one(
            {
                "ordering_key": candidate["ordering_key"],
                "status": {"$in": ["pending", "claimed", "failed"]},
                "$or": [
                    {"created_at": {"$lt": candidate["created_at"]}},
                    {"created_at": candidate["created_at"], "_id": {"$lt": candidate["_id"]}},
                ],
            },
            {"_id": 1},
        )
        return older is not None

    async def mark_published(self, message_ids: Sequence[str], worker_id: str | None = None) -> int:
        """Mark messages published (only those still claimed by ``worker_id``, if given)."""
        query: dict[str, Any] = {"_id": {"$in": list(message_ids)}}
        if worker_id is not None:
            query["claimed_by"] = worker_id
        result = await self.collection.update_many(
            query,
            {
                "$set": {"status": "published", "published_at": utc_now(), "error": None},
                "$unset": {"lease_until": ""},
            },
        )
        return int(result.modified_count)

    async def mark_failed(self, message_id: str, error: str) -> OutboxMessage | None:
        """Record a failed attempt: retry later with exponential backoff and jitter, or
        dead-letter after ``max_attempts``."""
        doc = await self.collection.find_one({"_id": message_id}, {"retry_count": 1})
        if doc is None:
            return None
        attempts = int(doc.get("retry_count", 0)) + 1
        dead = attempts >= self.max_attempts
        now = utc_now()
        delay = self.retry_delay(attempts)
        updated = await self.collection.find_one_and_update(
            {"_id": message_id},
            {
                "$set": {
                    "status": "dead" if dead else "failed",
                    "retry_count": attempts,
                    "error": error[:2000],
                    "next_attempt_at": now + timedelta(seconds=delay),
                    "claimed_by": None,
                    "lease_until": None,
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        return _from_doc(updated) if updated else None

    def retry_delay(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: base * 2^(attempts-1), capped, ±25% jitter."""
        raw = min(self.backoff_max, self.backoff_base * 2 ** (attempts - 1))
        return float(raw * random.uniform(0.75, 1.25))

    async def purge_published(self, older_than: timedelta) -> int:
        """Delete published messages older than ``older_than``; returns how many."""
        cutoff = utc_now() - older_than
        result = await self.collection.delete_many(
            {"status": "published", "published_at": {"$lt": cutoff}}
        )
        return int(result.deleted_count)

    async def get(self, message_id: str) -> OutboxMessage | None:
        doc = await self.collection.find_one({"_id": message_id})
        return _from_doc(doc) if doc else None

    async def counts(self) -> dict[str, int]:
        """Messages per status."""
        pipeline = [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]
        return {d["_id"]: d["n"] async for d in await self.collection.aggregate(pipeline)}


class Publisher(Protocol):
    """Where a relay sends messages (a broker client, an HTTP webhook, a test double)."""

    async def publish(self, message: OutboxMessage) -> None: ...


class LoggingPublisher:
    """Logs each message (for development)."""

    def __init__(self, logger_name: str = "eventlab.outbox.published") -> None:
        self._log = logging.getLogger(logger_name)

    async def publish(self, message: OutboxMessage) -> None:
        self._log.info("%s %s %s", message.event_type, message.message_id, message.payload)


class InMemoryPublisher:
    """Keeps published messages in a list (for notebooks and tests)."""

    def __init__(self) -> None:
        self.published: list[OutboxMessage] = []

    async def publish(self, message: OutboxMessage) -> None:
        self.published.append(message)


class OutboxRelay:
    """An asyncio worker: claim a batch, publish each message, mark it; repeat until stopped.

    ``await relay.run()`` runs in the current task; ``relay.start()`` runs it in a new task and
    ``await relay.stop()`` stops it gracefully (the batch in hand is finished first).
    """

    def __init__(
        self,
        outbox: MongoOutboxStore,
        publisher: Publisher,
        *,
        worker_id: str | None = None,
        batch_size: int = 50,
        lease: float = 30.0,
        poll_interval: float = 0.5,
    ) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.worker_id = worker_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.batch_size = batch_size
        self.lease = lease
        self.poll_interval = poll_interval
        self.published = 0
        self.failed = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """Claim and process one batch; returns how many messages were claimed."""
        batch = await self.outbox.claim(self.worker_id, self.batch_size, self.lease)
        done: list[str] = []
        for message in batch:
            try:
                await self.publisher.publish(message)
            except Exception as exc:  # a publisher failure is data, not a crash of the relay
                self.failed += 1
                await self.outbox.mark_failed(message.message_id, f"{type(exc).__name__}: {exc}")
            else:
                done.append(message.message_id)
        if done:
            self.published += await self.outbox.mark_published(done, self.worker_id)
        return len(batch)

    async def run(self) -> None:
        """Relay until :meth:`stop` is called."""
        while not self._stopping.is_set():
            try:
                claimed = await self.run_once()
            except ConnectionFailure as exc:
                logger.warning("outbox relay %s: %s; retrying", self.worker_id, exc)
                claimed = 0
            except ConnectionFailedError as exc:  # pragma: no cover - same as above, mapped
                logger.warning("outbox relay %s: %s; retrying", self.worker_id, exc)
                claimed = 0
            if claimed == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.poll_interval)

    def start(self) -> asyncio.Task[None]:
        """Run in a background task."""
        self._stopping.clear()
        self._task = asyncio.get_running_loop().create_task(self.run())
        return self._task

    async def stop(self) -> None:
        """Finish the batch in hand and stop."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

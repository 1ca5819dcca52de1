"""The transactional outbox in memory, with ``MongoOutboxStore``'s rules: messages saved in the
unit of work's transaction, idempotent by id and content; fenced claims (a claim token per
claim, every later step conditional on it); leases and due times by one clock; per-key order by
``sequence`` for an ordered outbox; retries with backoff, then dead."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

from .._core.bson_values import decimals_to_python
from .._core.checks import check_id
from .._outbox.policy import (
    OutboxOptions,
    OutboxPolicy,
    check_claim,
    check_stored_copies,
    claim_token_of,
    contents_of,
    lease_seconds,
)
from ..ports import OutboxLag, OutboxMessage, UnitOfWork
from ._database import MemoryDatabase, MemoryTransaction


class MemoryOutboxStore:
    """:class:`~eventlab.ports.OutboxStore` in memory; its options are those of an
    :class:`~eventlab._outbox.policy.OutboxPolicy` (``max_attempts``, ``backoff_base``,
    ``backoff_max``, ``ordered``), as ``MongoOutboxStore``'s."""

    def __init__(
        self,
        database: MemoryDatabase,
        name: str = "outbox",
        **options: Unpack[OutboxOptions],
    ) -> None:
        self.policy = OutboxPolicy(**options)
        self._db = database
        self._table = name
        self._sequences = f"{name}_sequences"

    # -- writing -----------------------------------------------------------------------------

    async def save_messages(
        self, messages: Sequence[OutboxMessage], uow: UnitOfWork | None = None
    ) -> None:
        if not messages:
            return
        contents = contents_of(messages)
        transaction: MemoryTransaction | None = uow.session if uow is not None else None
        found = {
            m.message_id: self._db.get(self._table, m.message_id, transaction) for m in messages
        }
        stored = {i: doc for i, doc in found.items() if doc is not None}
        check_stored_copies(messages, contents, stored)
        now = _now()
        for message, content in zip(messages, contents, strict=True):
            if message.message_id in stored:
                continue  # the same message again: an idempotent retry
            sequence = message.sequence
            if self.policy.ordered and message.ordering_key is not None and sequence is None:
                # Taken in the transaction: a second writer of the key conflicts and reruns.
                last = self._db.get(self._sequences, message.ordering_key, transaction)
                sequence = (last or 0) + 1
                self._db.put(self._sequences, message.ordering_key, sequence, transaction)
            doc = {
                **content,
                "message_id": message.message_id,
                "sequence": sequence,
                "created_at": message.created_at,
                "status": "pending",
                "retry_count": 0,
                "fence": 0,
                "error": None,
                "due_at": now,
                "published_at": None,
                "claimed_by": None,
                "lease_until": None,
                "claim_token": None,
            }
            self._db.put(self._table, message.message_id, doc, transaction)

    # -- claiming ----------------------------------------------------------------------------

    async def claim(
        self, worker_id: str, limit: int = 50, lease: float | timedelta = 30.0
    ) -> list[OutboxMessage]:
        check_claim(worker_id, limit)
        until = _now() + timedelta(seconds=lease_seconds(lease))
        docs = self._db.values(self._table)
        due = sorted(
            (d for d in docs.values() if d["due_at"] is not None and d["due_at"] <= _now()),
            key=lambda d: d["due_at"],
        )
        if self.policy.ordered:
            heads = _heads(docs.values())
            due = [
                d
                for d in due
                if d["ordering_key"] is None or heads.get(d["ordering_key"]) == d["message_id"]
            ]
        token = uuid.uuid4().hex
        won = []
        for doc in due[:limit]:
            doc.update(
                status="claimed",
                claimed_by=worker_id,
                claim_token=token,
                fence=doc["fence"] + 1,
                lease_until=until,
                due_at=until,
            )
            self._db.put(self._table, doc["message_id"], doc)
            won.append(_message(doc))
        return won

    def _held(self, message: OutboxMessage) -> dict[str, Any] | None:
        token = claim_token_of(message)
        doc: dict[str, Any] | None = self._db.get(self._table, message.message_id)
        if doc is None or doc["status"] != "claimed" or doc["claim_token"] != token:
            return None
        return doc

    async def mark_published(self, messages: Sequence[OutboxMessage]) -> int:
        items = [messages] if isinstance(messages, OutboxMessage) else list(messages)
        done = 0
        for message in items:
            doc = self._held(message)
            if doc is not None:
                doc.update(status="published", error=None, published_at=_now(), **_UNHELD)
                self._db.put(self._table, doc["message_id"], doc)
                done += 1
        return done

    async def mark_failed(self, message: OutboxMessage, error: str) -> OutboxMessage | None:
        doc = self._held(message)
        if doc is None:
            return None
        doc["retry_count"] += 1
        dead = doc["retry_count"] >= self.policy.max_attempts
        delay = timedelta(seconds=self.retry_delay(doc["retry_count"]))
        doc.update(
            status="dead" if dead else "failed",
            error=str(error)[:2000],
            due_at=None if dead else _now() + delay,
            claim_token=None,
            claimed_by=None,
            lease_until=None,
        )
        self._db.put(self._table, doc["message_id"], doc)
        return _message(doc)

    async def release(self, messages: Sequence[OutboxMessage]) -> int:
        done = 0
        for message in messages:
            doc = self._held(message)
            if doc is not None:
                doc.update(status="pending", due_at=_now(), claim_token=None, claimed_by=None)
                doc["lease_until"] = None
                self._db.put(self._table, doc["message_id"], doc)
                done += 1
        return done

    async def renew(self, messages: Sequence[OutboxMessage], lease: float | timedelta) -> set[str]:
        until = _now() + timedelta(seconds=lease_seconds(lease))
        still = set()
        for message in messages:
            doc = self._held(message)
            if doc is not None:
                doc.update(lease_until=until, due_at=until)
                self._db.put(self._table, doc["message_id"], doc)
                still.add(message.message_id)
        return still

    def retry_delay(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: base * 2^(attempts-1), capped, ±25% jitter."""
        return self.policy.retry_delay(attempts)

    # -- inspection --------------------------------------------------------------------------

    async def get(self, message_id: str) -> OutboxMessage | None:
        doc = self._db.get(self._table, check_id(message_id, "message_id"))
        return _message(doc) if doc is not None else None

    async def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for doc in self._db.values(self._table).values():
            counted[doc["status"]] = counted.get(doc["status"], 0) + 1
        return counted

    async def lag(self) -> OutboxLag:
        now = _now()
        docs = list(self._db.values(self._table).values())
        due = [d["due_at"] for d in docs if d["due_at"] is not None and d["due_at"] <= now]
        in_flight = sum(1 for d in docs if d["status"] == "claimed" and d["due_at"] > now)
        oldest = (now - min(due)).total_seconds() if due else 0.0
        return OutboxLag(due=len(due), oldest_due_seconds=max(0.0, oldest), in_flight=in_flight)


_UNHELD = {"due_at": None, "claim_token": None, "claimed_by": None, "lease_until": None}


def _now() -> datetime:
    return datetime.now(UTC)


def _heads(docs: Any) -> dict[str, str]:
    """The lowest unfinished sequence of each key: the only message of it that may go now."""
    heads: dict[str, tuple[int, str]] = {}
    for doc in docs:
        key = doc["ordering_key"]
        if key is None or doc["status"] not in ("pending", "claimed", "failed"):
            continue
        ranked = (doc["sequence"] or 0, doc["message_id"])
        if key not in heads or ranked < heads[key]:
            heads[key] = ranked
    return {key: message_id for key, (_, message_id) in heads.items()}


def _message(doc: dict[str, Any]) -> OutboxMessage:
    status = doc["status"]
    message = OutboxMessage(
        message_id=doc["message_id"],
        event_type=doc["event_type"],
        payload=decimals_to_python(doc["payload"]),
        created_at=doc["created_at"],
        ordering_key=doc["ordering_key"],
        headers=decimals_to_python(doc["headers"]),
        sequence=doc["sequence"],
    )
    return replace(
        message,
        status=status,
        retry_count=doc["retry_count"],
        error=doc["error"],
        published_at=doc["published_at"],
        claimed_by=doc["claimed_by"],
        lease_until=doc["lease_until"],
        next_attempt_at=doc["due_at"] if status in ("pending", "failed") else None,
        claim_token=doc["claim_token"],
        fence=doc["fence"],
    )

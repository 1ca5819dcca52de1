"""The outbox's claim protocol on MongoDB: fenced, server-timed claims.

* A claim gives each message a fresh **claim token** (the fencing token) and increments its
  ``fence`` counter. Every later step of that claim (publish, fail, release, renew) is an update
  conditional on ``_id``, ``status: "claimed"`` **and** that token, and reports whether it
  applied. A relay whose lease ran out and was re-claimed by another can therefore change
  nothing: its token is gone.
* Leases and due times are computed by the server (``$$NOW`` in update pipelines,
  ``$currentDate``), and the "is it due?" question is asked with the server's time
  (:class:`~eventlab._mongo.clock.ServerClock`), so no client clock decides who owns a message.
* ``retry_count`` is incremented on the server in the same update that records a failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.errors import PyMongoError

from .._core.bson_values import decimals_to_python
from .._outbox.policy import OutboxPolicy, check_claim, claim_token_of, lease_seconds
from ..ports import OutboxMessage
from .outbox_collection import OutboxCollection
from .transaction_policy import map_error

_FINISH_UNSET = {"due_at": "", "open_key": "", "lease_until": "", "claim_token": ""}


class MongoClaims:
    """Hands out due messages of an outbox collection by fenced claims (the claim side of
    :class:`~eventlab.MongoOutboxStore`; :class:`~eventlab._mongo.outbox_saves.OutboxSaves`
    is the save side)."""

    def __init__(self, place: OutboxCollection, policy: OutboxPolicy) -> None:
        self._place = place
        self._policy = policy

    # -- claiming ----------------------------------------------------------------------------

    async def get_pending(self, limit: int = 100) -> list[OutboxMessage]:
        """Messages due for publishing, longest due first (read only; use :meth:`claim`)."""
        await self._place.ready()
        now = await self._place.clock.now()
        cursor = self._place.messages.find({"due_at": {"$lte": now}}, sort=[("due_at", ASCENDING)])
        try:
            return [from_doc(d) async for d in cursor.limit(limit)]
        except PyMongoError as exc:
            raise map_error(exc) from exc

    async def claim(
        self, worker_id: str, limit: int = 50, lease: float | timedelta = 30.0
    ) -> list[OutboxMessage]:
        """Hand up to ``limit`` due messages to ``worker_id`` until its lease ends.

        The candidates are read by the ``due`` index (longest due first); one update claims
        them, re-checking for each document that it is still due, so two workers can never
        both win a message; the claim token then tells exactly which messages this call won.
        Each returned message carries its ``claim_token``, ``fence`` and server-set
        ``lease_until``. A worker that dies lets its lease run out; the message is then due.
        """
        check_claim(worker_id, limit)
        lease_millis = lease_ms(lease)
        await self._place.ready()
        try:
            now = await self._place.clock.now()
            candidates = (
                await self._place.messages.find(
                    {"due_at": {"$lte": now}},
                    {"_id": 1, "ordering_key": 1, "due_at": 1},
                    sort=[("due_at", ASCENDING)],
                )
                .limit(limit * 4 if self._policy.ordered else limit)
                .to_list(None)
            )
            chosen = (
                await self._eligible(candidates, now, limit) if self._policy.ordered else candidates
            )
            if not chosen:
                return []
            ids = [c["_id"] for c in chosen]
            token = uuid.uuid4().hex
            until = {"$add": ["$$NOW", lease_millis]}
            await self._place.messages.update_many(
                {"_id": {"$in": ids}, "due_at": {"$lte": now}},
                [
                    {
                        "$set": {
                            "status": "claimed",
                            "claimed_by": worker_id,
                            "claim_token": token,
                            "fence": {"$add": [{"$ifNull": ["$fence", 0]}, 1]},
                            "lease_until": until,
                            "due_at": until,
                        }
                    }
                ],
            )
            won = await self._place.messages.find(
                {"_id": {"$in": ids}, "claim_token": token}
            ).to_list(None)
        except PyMongoError as exc:
            raise map_error(exc) from exc
        order = {message_id: i for i, message_id in enumerate(ids)}
        return sorted((from_doc(d) for d in won), key=lambda m: order[m.message_id])

    async def _eligible(
        self, candidates: list[dict[str, Any]], now: datetime, limit: int
    ) -> list[dict[str, Any]]:
        """Due messages that may be published now: keyless ones, and the head of each key (its
        lowest unfinished sequence) when that head is due.

        The heads come from one aggregation over ``open_key_sequence`` (on MongoDB a distinct
        scan, one entry per key), not from the due candidates: a window of due but blocked
        messages must never starve a key whose head is due later (a retry after a failure).
        """
        heads = [
            d
            async for d in await self._place.messages.aggregate(
                [
                    {"$match": {"open_key": {"$gte": ""}}},
                    {"$sort": {"open_key": 1, "sequence": 1}},
                    {"$group": {"_id": "$open_key", "head": {"$first": "$_id"},
                                "due_at": {"$first": "$due_at"}}},
                    {"$match": {"due_at": {"$lte": now}}},
                    {"$sort": {"due_at": 1}},
                    {"$limit": limit},
                ]
            )
        ]  # fmt: skip
        chosen = [c for c in candidates if c.get("ordering_key") is None]
        chosen += [
            {"_id": h["head"], "ordering_key": h["_id"], "due_at": h["due_at"]} for h in heads
        ]
        chosen.sort(key=lambda c: c["due_at"])
        return chosen[:limit]

    # -- the claim's steps: each conditional on the fencing token ---------------------------

    @staticmethod
    def _held(message: OutboxMessage) -> dict[str, Any]:
        """The filter that matches ``message`` only while its claim is held."""
        token = claim_token_of(message)
        return {"_id": message.message_id, "status": "claimed", "claim_token": token}

    async def mark_published(self, messages: Sequence[OutboxMessage]) -> int:
        """Mark claimed messages published; returns how many this claim still owned.

        A message whose claim token changed (its lease ran out and another worker claimed it)
        or that is no longer claimed is left as it is.
        """
        items: Sequence[Any] = [messages] if isinstance(messages, str | OutboxMessage) else messages
        return await self._update_held(
            items,
            {
                "$set": {"status": "published", "error": None},
                "$currentDate": {"published_at": True},
                "$unset": _FINISH_UNSET,
            },
        )

    async def mark_failed(self, message: OutboxMessage, error: str) -> OutboxMessage | None:
        """Record a failed attempt of a claimed message; ``None`` if the claim is no longer held.

        ``retry_count`` is incremented on the server; the message is due again after an
        exponential backoff with jitter, or dead-lettered (status ``dead``) at ``max_attempts``.
        """
        held = self._held(message)
        delay_ms = int(self._policy.retry_delay(message.retry_count + 1) * 1000)
        is_dead = {"$gte": ["$retry_count", self._policy.max_attempts]}
        try:
            updated = await self._place.messages.find_one_and_update(
                held,
                [
                    {"$set": {"retry_count": {"$add": [{"$ifNull": ["$retry_count", 0]}, 1]}}},
                    {
                        "$set": {
                            "status": {"$cond": [is_dead, "dead", "failed"]},
                            "error": str(error)[:2000],
                            "due_at": {
                                "$cond": [is_dead, "$$REMOVE", {"$add": ["$$NOW", delay_ms]}]
                            },
                            "open_key": {"$cond": [is_dead, "$$REMOVE", "$open_key"]},
                        }
                    },
                    {"$unset": ["claim_token", "claimed_by", "lease_until"]},
                ],
                return_document=ReturnDocument.AFTER,
            )
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return from_doc(updated) if updated else None

    async def release(self, messages: Sequence[OutboxMessage]) -> int:
        """Give claimed messages back, due at once (a relay stopping before it got to them);
        returns how many this claim still owned."""
        return await self._update_held(
            messages,
            {
                "$set": {"status": "pending"},
                "$currentDate": {"due_at": True},
                "$unset": {"claim_token": "", "claimed_by": "", "lease_until": ""},
            },
        )

    async def _update_held(self, messages: Sequence[Any], update: dict[str, Any]) -> int:
        """Apply ``update`` to each message whose claim is still held; how many applied."""
        filters = [self._held(m) for m in messages]
        if not filters:
            return 0
        try:
            result = await self._place.messages.bulk_write(
                [UpdateOne(f, update) for f in filters], ordered=False
            )
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return int(result.modified_count)

    async def renew(self, messages: Sequence[OutboxMessage], lease: float | timedelta) -> set[str]:
        """Extend the lease of claimed messages to ``lease`` from the server's now; returns the
        ids whose claim is still held (the others belong to someone else now)."""
        lease_millis = lease_ms(lease)
        by_token: dict[str, list[str]] = {}
        for message in messages:
            held = self._held(message)
            by_token.setdefault(held["claim_token"], []).append(message.message_id)
        still: set[str] = set()
        until = {"$add": ["$$NOW", lease_millis]}
        try:
            for token, ids in by_token.items():
                query = {"_id": {"$in": ids}, "status": "claimed", "claim_token": token}
                result = await self._place.messages.update_many(
                    query, [{"$set": {"lease_until": until, "due_at": until}}]
                )
                if result.matched_count == len(ids):
                    still.update(ids)
                else:
                    still.update(
                        [d["_id"] async for d in self._place.messages.find(query, {"_id": 1})]
                    )
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return still


def from_doc(doc: dict[str, Any]) -> OutboxMessage:
    status = doc.get("status", "pending")
    return OutboxMessage(
        message_id=doc["_id"],
        event_type=doc["event_type"],
        payload=decimals_to_python(doc.get("payload") or {}),
        created_at=doc["created_at"],
        ordering_key=doc.get("ordering_key"),
        headers=decimals_to_python(doc.get("headers") or {}),
        sequence=doc.get("sequence"),
        status=status,
        retry_count=doc.get("retry_count", 0),
        error=doc.get("error"),
        published_at=doc.get("published_at"),
        claimed_by=doc.get("claimed_by"),
        lease_until=doc.get("lease_until"),
        next_attempt_at=doc.get("due_at") if status in ("pending", "failed") else None,
        claim_token=doc.get("claim_token"),
        fence=doc.get("fence", 0),
    )


def lease_ms(lease: float | timedelta) -> int:
    return max(1, int(lease_seconds(lease) * 1000))

"""The outbox's save path on MongoDB: messages written in the same transaction as the state
they describe, idempotent by id and content; per-key order by ``sequence`` (an event's
version, or a per-key counter taken inside the saving transaction), never a client timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, PyMongoError

from .._core import telemetry as telemetry
from .._core.bson_values import to_bson_value
from .._core.errors import EventlabError, WriteConflictError
from .._outbox.policy import CONTENT_FIELDS, OutboxPolicy, check_stored_copies, contents_of
from ..ports import OutboxMessage, UnitOfWork
from .lookups import find_in
from .outbox_collection import OutboxCollection
from .session import session_of
from .transaction_policy import map_error
from .transactions import run_transaction

_DUPLICATE_KEY = 11000
_WRITE_CONFLICT = 112


class OutboxSaves:
    """Saves messages into an outbox collection
    (:meth:`~eventlab.ports.OutboxStore.save_messages`)."""

    def __init__(self, place: OutboxCollection, policy: OutboxPolicy) -> None:
        self._place = place
        self._policy = policy

    async def save(self, messages: Sequence[OutboxMessage], uow: UnitOfWork | None) -> None:
        if not messages:
            return
        with telemetry.span(
            f"create {self._place.name}",
            {
                "messaging.system": "eventlab",
                "messaging.operation.type": "create",
                "messaging.operation.name": "save_messages",
                "messaging.batch.message_count": len(messages),
            },
            kind="producer",
        ):
            await self._save(messages, uow)

    async def _save(self, messages: Sequence[OutboxMessage], uow: UnitOfWork | None) -> None:
        contents = contents_of(messages)  # serialization errors before any I/O
        set_up_now = not self._place.migrated
        await self._place.ready()
        due_at = await self._place.clock.estimate()
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
            elif self._needs_sequences(messages) and self._place.connection.supports_transactions:
                # Taking a sequence and inserting must commit together, or a later number could
                # become visible before an earlier one.
                await run_transaction(
                    self._place.connection.client,
                    lambda s: self._write(messages, contents, due_at, s),
                )
            else:
                await self._write(messages, contents, due_at, None)
        except EventlabError:
            raise
        except PyMongoError as exc:
            raise map_error(exc) from exc

    def _needs_sequences(self, messages: Sequence[OutboxMessage]) -> bool:
        return self._policy.ordered and any(
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
            await self._place.messages.insert_many(docs, ordered=False, session=session)
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
            for doc in await find_in(
                self._place.messages,
                "_id",
                ids,
                projection={f: 1 for f in (*CONTENT_FIELDS, "sequence")},
                session=session,
            )
        }
        check_stored_copies(messages, contents, found)
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
        next_of: dict[str, int] = {}
        for key, count in wanted.items():
            # Inside the transaction the counter document is locked until commit: a second
            # writer of the same key waits (write conflict, retried), so numbers commit in order.
            doc = await self._place.sequences.find_one_and_update(
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

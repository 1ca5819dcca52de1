"""Restore: put exported events back exactly as they were (positions and times kept).

Not an append (there is no expectation to check), but bound by the writer's invariants:

* a restored position must lie above every position the store has handed out (the counter), so
  a follower checkpointed anywhere never misses a restored event and no position is reused; an
  empty store accepts any export;
* the counter is moved past each chunk *inside the same guard* as the chunk's insert (one
  transaction that first takes the counter document), so no concurrent append can take a
  position inside the range being restored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, ConnectionFailure

from .._core.domain import utc_now
from .._core.errors import DuplicateEventError, InvalidEventError
from .._core.event_codec import stored_bson, stored_document
from .._core.progress import progress_bar
from .._core.records import StoredEvent
from .frames import renew_incarnation
from .schema import EventStoreSchema
from .transaction_policy import DUPLICATE_KEY
from .transactions import run_transaction


async def restore(
    schema: EventStoreSchema,
    events: Sequence[StoredEvent],
    *,
    chunk_size: int = 1000,
    progress: bool | None = None,
    encoded_bodies: Sequence[bytes] | None = None,
) -> int:
    """Insert ``events`` as they were; returns how many were written (see the module doc).

    ``encoded_bodies``: each event's body as BSON already (an import's file check encoded
    them), so that neither eventlab nor the driver encodes the documents again."""
    mode = await schema.ready()
    missing = [e.event_id for e in events if e.position is None]
    if missing:
        raise InvalidEventError(f"{len(missing)} event(s) have no position, e.g. {missing[0]}")
    bodies = list(encoded_bodies) if encoded_bodies is not None else [None] * len(events)
    ordered = sorted(zip(events, bodies, strict=True), key=lambda pair: pair[0].position or 0)
    written = 0
    try:
        # Before the first chunk: a copy of the log (a frame cache) made before this restore
        # into an emptied store is recognised as out of date even if it stops part-way.
        await renew_incarnation(schema)
        with progress_bar(len(ordered), progress, "restoring") as bar:
            for start in range(0, len(ordered), chunk_size):
                chunk = ordered[start : start + chunk_size]
                documents = [_document(event, body) for event, body in chunk]
                restore_chunk = partial(_restore_chunk, schema, documents)
                if mode.transactions:
                    await run_transaction(schema.connection.client, restore_chunk)
                else:
                    await restore_chunk(None)
                written += len(chunk)
                bar.update(len(chunk))
    except InvalidEventError as exc:
        raise InvalidEventError(f"restore stopped after {written} events: {exc}") from exc
    except DuplicateEventError as exc:
        raise DuplicateEventError(exc.event_ids, written=written) from exc
    except ConnectionFailure as exc:
        raise schema.connection.unreachable(exc) from exc
    return written


def _document(event: StoredEvent, body: bytes | None) -> dict[str, Any] | RawBSONDocument:
    """The stored document of ``event`` (its ``recorded_at`` now, where it has none)."""
    recorded_at = event.recorded_at or utc_now()
    if body is not None:
        return stored_bson(body, event.position or 0, recorded_at)
    return stored_document(replace(event, recorded_at=recorded_at))


async def _restore_chunk(
    schema: EventStoreSchema,
    documents: list[dict[str, Any] | RawBSONDocument],
    session: AsyncClientSession | None,
) -> None:
    lowest = documents[0]["position"]
    highest = documents[-1]["position"]
    before = await schema.counters.find_one_and_update(
        {"_id": schema.counter_id},
        {"$max": {"seq": highest}},
        upsert=True,
        return_document=ReturnDocument.BEFORE,
        projection={"seq": 1},
        session=session,
    )
    handed_out = int(before["seq"]) if before else 0
    if lowest <= handed_out:  # raised inside the transaction: the counter move is undone too
        raise InvalidEventError(
            f"restore would reuse position {lowest}: this store has already handed out positions "
            f"up to {handed_out}. Restore into an empty store (or an export whose positions "
            "all lie above the store's), or import the events as new appends instead"
        )
    try:
        await schema.events.insert_many(documents, ordered=True, session=session)
    except BulkWriteError as exc:
        first = (exc.details.get("writeErrors") or [{}])[0]
        failed = documents[first.get("index", 0)] if first.get("index") is not None else None
        if first.get("code") == DUPLICATE_KEY and failed is not None:
            # Raised inside the transaction: the chunk and its counter move are undone.
            raise DuplicateEventError([failed["_id"]]) from exc
        raise InvalidEventError(str(first.get("errmsg", exc))) from exc

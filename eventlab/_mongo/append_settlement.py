"""How an append on MongoDB learns what is committed (for the shared
:class:`~eventlab._core.settlement.Settlement`), and how it names what the server refused."""

from __future__ import annotations

from typing import Any, Literal, overload

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError

from .._core.appends import StreamAppend
from .._core.errors import DeploymentError, DocumentTooLargeError, SerializationError
from .._core.event_codec import oversized_event, unencodable_body
from .._core.settlement import KeyCollision, Settlement
from .._core.tombstones import TOMBSTONE_FIELD, is_tombstone
from .lookups import find_in
from .readers import StreamReader
from .schema import EventStoreSchema


class MongoSettlement(Settlement):
    """Settles a MongoDB store's appends by what its events collection holds."""

    def __init__(self, schema: EventStoreSchema, streams: StreamReader) -> None:
        self._schema = schema
        self._streams = streams

    async def stored_copies(
        self, batch: list[StreamAppend], session: AsyncClientSession | None = None
    ) -> list[dict[str, Any]]:
        ids = [body["_id"] for s in batch for body in s.bodies]
        return await find_in(self._schema.events, "_id", ids, session=session)

    async def stream_head(self, aggregate_id: str) -> tuple[int, bool]:
        return await self._streams.head_of(aggregate_id, None)

    async def abandoned(self, position: int | None) -> bool:
        if position is None:
            return False
        found = await self._schema.events.find_one({"position": position}, {TOMBSTONE_FIELD: 1})
        return is_tombstone(found)

    def counter_behind(self, collision: KeyCollision) -> DeploymentError:
        return DeploymentError(
            f"duplicate key on index {collision.index!r} of {self._schema.events_collection_name}:"
            " the position counter is behind the stored events (was it reset?)"
        )

    @overload
    def too_large(
        self, batch: list[StreamAppend], *, only_if_found: Literal[False] = False
    ) -> DocumentTooLargeError: ...

    @overload
    def too_large(
        self, batch: list[StreamAppend], *, only_if_found: Literal[True]
    ) -> DocumentTooLargeError | None: ...

    def too_large(
        self, batch: list[StreamAppend], *, only_if_found: bool = False
    ) -> DocumentTooLargeError | None:
        """The event over the server's size limit, named (or, unless ``only_if_found``, the
        batch as a whole)."""
        limit = self._schema.connection.info.max_bson_object_size
        found = oversized_event((body for stream in batch for body in stream.bodies), limit)
        if found is not None or only_if_found:
            return found
        return DocumentTooLargeError("the batch exceeds the server's message size limit")


def unencodable(batch: list[StreamAppend], exc: Exception) -> SerializationError:
    """The event that does not encode to BSON (an integer beyond 64 bits, text that is not
    Unicode), named."""
    found = unencodable_body(body for stream in batch for body in stream.bodies)
    return found or SerializationError(f"the batch does not encode to BSON: {exc}")


def key_collision(exc: BulkWriteError) -> KeyCollision | None:
    """The unique index a bulk insert hit, or ``None`` when the error is not a duplicate key."""
    errors = exc.details.get("writeErrors") or []
    if not errors or errors[0].get("code") != 11000:
        return None
    first = errors[0]
    op = first.get("op") or {}
    pattern = first.get("keyPattern") or {}
    if "_id" in pattern:
        index = "_id"
    elif "version" in pattern:
        index = "stream_version"
    elif "position" in pattern:
        index = "position"
    else:  # servers that omit keyPattern name the index in the message
        message = str(first.get("errmsg", ""))
        index = next(
            (n for n in ("stream_version", "position", "_id_") if f"index: {n}" in message),
            "unknown",
        )
        index = "_id" if index == "_id_" else index
    return KeyCollision(index, op.get("aggregate_id"), op.get("position"))

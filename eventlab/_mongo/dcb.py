"""Dynamic Consistency Boundaries on a ``MongoEventStore``'s events collection: the storage the
shared decision logic runs over (``_dcb_decisions``), through the store's write access.

A read's parts are one indexed query per item (``_dcb_query``), bounded by the head; a
condition is checked by the same queries inside the append's transaction, after the counter
was taken (docs/dcb.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, DocumentTooLarge, PyMongoError

from .._core.errors import ConfigurationError, DeploymentError, SerializationError
from .._core.event_codec import oversized_event, unencodable_body
from .._dcb.records import ItemParts
from .._dcb.store import DecisionStore, wrong_strategy
from .dcb_query import NEAR_HEAD, has_tags, selection
from .event_store import MongoEventStore
from .lookups import find_in
from .migrations import DCB_MIGRATIONS
from .positions import StrategyChanged
from .transaction_policy import is_duplicate_key, map_error
from .write_access import WriteAccess

T = TypeVar("T")


class MongoDCBStorage:
    """The DCB storage of one MongoDB store (the decision logic's ``DCBStorage``)."""

    def __init__(self, access: WriteAccess) -> None:
        self._access = access
        self._positions = access.transactional_positions()

    async def prepare(self) -> None:
        mode = await self._access.ready(DCB_MIGRATIONS)
        if mode.positions != "transactional" or not mode.transactions:
            raise wrong_strategy(mode.positions if mode.transactions else "no transactions")

    def check(self, bodies: Sequence[dict[str, Any]]) -> None:
        return None  # the server refuses what is too large (see failure)

    def failure(self, bodies: Sequence[dict[str, Any]], error: Exception) -> Exception:
        if isinstance(error, StrategyChanged):
            return wrong_strategy("preallocated")
        if isinstance(error, OverflowError | UnicodeEncodeError):
            return unencodable_body(bodies) or SerializationError(
                f"the append does not encode to BSON: {error}"
            )
        if isinstance(error, DocumentTooLarge | PyMongoError | DeploymentError):
            # A server refuses an oversized document with an error of its own: name the event.
            too_large = oversized_event(bodies, self._access.max_document_size)
            if too_large is not None:
                return too_large
            mapped = map_error(error)
            return mapped if isinstance(mapped, Exception) else error
        return error

    async def head(self) -> int:
        return await self._access.head()

    async def matching(
        self, item: ItemParts | None, after: int, through: int, limit: int | None
    ) -> list[dict[str, Any]]:
        query, rest = selection(item, after, through)
        events = self._access.events
        try:
            if "tags" in query:
                # Sorted here, not by the server: asked to sort, a planner may prefer the
                # position index (in order) over the tag's few keys. The limit applies after.
                found = [d async for d in events.find(query) if has_tags(d, rest)]
                found.sort(key=lambda doc: doc["position"])
                return found if limit is None else found[:limit]
            cursor = events.find(query, sort=[("position", 1)], limit=limit or 0)
            return [doc async for doc in cursor]
        except PyMongoError as exc:
            raise map_error(exc) from exc

    async def transaction(self, attempt: Callable[[Any], Awaitable[T]]) -> T:
        return await self._access.transaction(attempt)

    async def take_positions(self, count: int, transaction: AsyncClientSession) -> int:
        return await self._positions.reserve(count, transaction)

    async def first_match(
        self,
        reads: Sequence[ItemParts | None],
        after: int,
        first: int,
        transaction: AsyncClientSession,
    ) -> dict[str, Any] | None:
        near = first - 1 - after <= NEAR_HEAD
        events = self._access.events
        for item in reads:
            query, rest = selection(item, after, position_first=near)
            if not rest:
                clash = await events.find_one(query, session=transaction)
            else:
                cursor = events.find(query, session=transaction)
                clash = await anext((d async for d in cursor if has_tags(d, rest)), None)
            if clash is not None:
                return clash
        return None

    async def insert(
        self, documents: list[dict[str, Any]], transaction: AsyncClientSession
    ) -> bool:
        try:
            await self._access.events.insert_many(documents, ordered=True, session=transaction)
        except BulkWriteError as exc:
            if not is_duplicate_key(exc):
                raise
            return False
        return True

    async def abort(self, transaction: AsyncClientSession) -> None:
        if transaction.in_transaction:
            await transaction.abort_transaction()

    async def stored(self, event_ids: Sequence[Any]) -> list[dict[str, Any]]:
        try:
            return await find_in(self._access.events, "_id", event_ids)
        except PyMongoError as exc:
            raise map_error(exc) from exc


class MongoDCBStore(DecisionStore):
    """Dynamic Consistency Boundaries over a :class:`~eventlab.MongoEventStore` (the
    :class:`~eventlab.ports.DCBStore` port): the same events collection, counter and positions
    as its streams.

    Needs the ``transactional`` position strategy (:class:`~eventlab.ConfigurationError`
    otherwise; docs/dcb.md says why). The first use applies the tags index (a sparse multikey
    index on ``(tags, position)``: stream events have no tags and no keys).
    """

    def __init__(self, store: MongoEventStore) -> None:
        if not isinstance(store, MongoEventStore):
            raise ConfigurationError(f"store must be a MongoEventStore, got {store!r:.80}")
        self.store = store
        super().__init__(MongoDCBStorage(store.write_access()))

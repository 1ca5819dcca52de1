"""Dynamic Consistency Boundaries on eventlab's events collection (``eventlab.dcb``).

A decision reads the events matching a query, decides, and appends on the condition that
nothing matching the same query was recorded after the position it read. Why the condition
holds (docs/dcb.md): every append takes the store's position counter inside its transaction
(the ``transactional`` strategy) *before* it checks its condition. Two appends in flight both
write the counter document, so one commits and the other meets a write conflict and runs
again, now seeing what the first stored. A condition checked this way can never be broken by
an append it did not see (no write skew), whatever boundaries the two decisions drew.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, DocumentTooLarge, PyMongoError

from ._dcb_query import (
    MAX_QUERY_ITEMS,
    NEAR_HEAD,
    ItemParts,
    Selection,
    check_after,
    check_text,
    check_texts,
    has_tags,
    merged,
    selections,
)
from ._domain import utc_now
from ._errors import (
    AppendConditionError,
    ConfigurationError,
    DuplicateEventError,
    InvalidSpecificationError,
    SerializationError,
    TransactionError,
)
from ._event_codec import event_body, from_document, oversized_event, unencodable_int
from ._migrations import DCB_MIGRATIONS, Migrator
from ._positions import StrategyChanged, TransactionalPositions
from ._race_points import DCB_APPEND_BEFORE_CHECK, DCB_READ_BETWEEN_ITEMS, DCB_READ_HEAD_TAKEN
from ._records import StoredEvent, event_id_from
from ._transaction_policy import is_duplicate_key, map_error
from ._transactions import run_transaction

if TYPE_CHECKING:
    from ._event_store import MongoEventStore

DCB_AGGREGATE_TYPE = "DCB"
"""The aggregate type of DCB events: each is stored as stream ``dcb:<position>``, version 1, so
the log, frames, subscriptions and projections see it like any other event."""
MAX_APPEND = 10_000
"""Events per conditional append (one transaction)."""


@dataclass(frozen=True, slots=True)
class QueryItem:
    """Events of any of ``types`` (all types when empty) carrying every one of ``tags``."""

    types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "types", check_texts(self.types, "event type", InvalidSpecificationError)
        )
        object.__setattr__(self, "tags", check_texts(self.tags, "tag", InvalidSpecificationError))

    def matches(self, event: StoredEvent) -> bool:
        if self.types and event.event_type not in self.types:
            return False
        return set(self.tags) <= set(event.tags)


@dataclass(frozen=True, slots=True)
class Query:
    """Events matching any of ``items``; no items: every event."""

    items: tuple[QueryItem, ...] = ()

    def __post_init__(self) -> None:
        items = self.items
        if isinstance(items, list):
            items = tuple(items)
        if not isinstance(items, tuple) or not all(isinstance(i, QueryItem) for i in items):
            raise InvalidSpecificationError(f"a query's items must be QueryItems: {items!r:.80}")
        if len(items) > MAX_QUERY_ITEMS:
            raise InvalidSpecificationError(
                f"at most {MAX_QUERY_ITEMS} items per query, got {len(items)}"
            )
        object.__setattr__(self, "items", items)

    @classmethod
    def of(cls, *, types: Sequence[str] = (), tags: Sequence[str] = ()) -> Query:
        """A query of one item: ``Query.of(types=["Joined"], tags=["course:c1"])``."""
        return cls((QueryItem(tuple(types), tuple(tags)),))

    def __or__(self, other: Query) -> Query:
        """Events matching either query (an empty query already matches everything)."""
        if not isinstance(other, Query):
            return NotImplemented
        if not self.items or not other.items:
            return Query()
        return Query(self.items + other.items)

    def matches(self, event: StoredEvent) -> bool:
        return not self.items or any(item.matches(event) for item in self.items)

    @property
    def parts(self) -> list[ItemParts]:
        return [(item.types, item.tags) for item in self.items]


@dataclass(frozen=True, slots=True)
class AppendCondition:
    """Refuse the append if an event matching ``fail_if_events_match`` was recorded after
    position ``after`` (the ``head`` of the read the decision was made on)."""

    fail_if_events_match: Query
    after: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.fail_if_events_match, Query):
            raise InvalidSpecificationError(
                f"fail_if_events_match must be a Query, got {self.fail_if_events_match!r:.80}"
            )
        check_after(self.after, InvalidSpecificationError)


@dataclass(frozen=True, slots=True)
class TaggedEvent:
    """An event to append with its tags (what a DCB query selects by)."""

    event_type: str
    payload: dict[str, Any]
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DecisionRead:
    """What a decision read: the matching events and ``head``, the position its append
    condition names (``read.condition()``)."""

    query: Query
    events: list[StoredEvent]
    head: int

    def condition(self) -> AppendCondition:
        """The condition "nothing matching this read's query recorded after what it saw"."""
        return AppendCondition(self.query, self.head)


class DCBStore:
    """Dynamic Consistency Boundaries over a :class:`~eventlab.MongoEventStore`: the same events
    collection, counter and positions as its streams.

    Needs the ``transactional`` position strategy (:class:`~eventlab.ConfigurationError`
    otherwise; docs/dcb.md says why). The first use applies the tags index (a sparse multikey
    index on ``(tags, position)``: stream events have no tags and no keys).
    """

    def __init__(self, store: MongoEventStore) -> None:
        self.store = store
        self._schema = store._schema
        self._ready = False

    async def read(
        self, query: Query | None = None, *, after: int = 0, limit: int | None = None
    ) -> DecisionRead:
        """The events matching ``query`` after ``after``, in position order (at most
        ``limit``), and the head to append after."""
        query = _check_query(query)
        after = check_after(after, InvalidSpecificationError)
        if limit is not None and (type(limit) is not int or not 0 < limit <= MAX_APPEND * 100):
            raise InvalidSpecificationError(f"limit must be a positive int, got {limit!r:.80}")
        await self._prepare()
        try:
            # The head first: every position at or below it is committed (the counter moves in
            # the appends' transactions), so the events read next include all of them.
            head = (await self.store.log.head()).position
            if DCB_READ_HEAD_TAKEN.armed:
                await DCB_READ_HEAD_TAKEN.reach()
            pages: list[list[dict[str, Any]]] = []
            for selection, rest in selections(query.parts, after):
                if pages and DCB_READ_BETWEEN_ITEMS.armed:
                    await DCB_READ_BETWEEN_ITEMS.reach()
                pages.append(await self._matching(selection, rest, limit))
        except PyMongoError as exc:
            raise map_error(exc) from exc
        events = [from_document(doc) for doc in merged(pages, limit)]
        last = (events[-1].position or 0) if events else 0
        if limit is not None and len(events) == limit:
            head = last  # a full page: the next read, and a condition, start after it
        return DecisionRead(query, events, max(head, last))

    async def append(
        self, events: Sequence[TaggedEvent], condition: AppendCondition | None = None
    ) -> list[StoredEvent]:
        """Store ``events`` atomically at the next positions, unless ``condition`` fails:
        then :class:`~eventlab.AppendConditionError` and nothing is written.

        Idempotent by event ids: the same events sent again (a retry after an unknown commit
        outcome) are returned as stored, not appended twice.
        """
        bodies = _bodies(events)
        if condition is not None and not isinstance(condition, AppendCondition):
            raise InvalidSpecificationError(
                f"condition must be an AppendCondition, got {condition!r:.80}"
            )
        parts = condition.fail_if_events_match.parts if condition is not None else []
        await self._prepare()
        positions = TransactionalPositions(self._schema.counters, self._schema.counter_id)

        async def write(session: AsyncClientSession) -> list[StoredEvent] | StoredEvent | str:
            # The counter first: it is what serialises appends (see the module's docstring).
            first = await positions.reserve(len(bodies), session)
            if DCB_APPEND_BEFORE_CHECK.armed:
                await DCB_APPEND_BEFORE_CHECK.reach()
            clash = None
            if condition is not None:
                near = first - 1 - condition.after <= NEAR_HEAD
                checks = selections(parts, condition.after, position_first=near)
                clash = await self._clash(checks, session)
            if clash is not None:
                await session.abort_transaction()
                return from_document(clash)
            documents, stored = _placed(bodies, first)
            try:
                await self._schema.events.insert_many(documents, ordered=True, session=session)
            except BulkWriteError as exc:
                if not is_duplicate_key(exc):
                    raise
                if session.in_transaction:
                    await session.abort_transaction()
                return "duplicate"
            return stored

        try:
            outcome = await run_transaction(
                self.store.connection.client, write, time_budget=self.store._time_budget
            )
        except StrategyChanged:
            raise _wrong_strategy("preallocated") from None
        except OverflowError as exc:
            raise unencodable_int(bodies) or SerializationError(
                "an integer in the append does not fit BSON's 64-bit integers"
            ) from exc
        except (DocumentTooLarge, PyMongoError, TransactionError) as exc:
            # A server refuses an oversized document with an error of its own: name the event.
            too_large = oversized_event(bodies, self.store.connection.info.max_bson_object_size)
            if too_large is None and isinstance(exc, TransactionError):
                raise
            raise (too_large or map_error(exc)) from exc
        if isinstance(outcome, list):
            return outcome
        stored_copies = await self._stored_copies(bodies)
        if stored_copies is not None:
            return stored_copies  # this very append committed before: an idempotent retry
        if isinstance(outcome, StoredEvent):
            raise AppendConditionError(condition, outcome)
        raise DuplicateEventError([body["_id"] for body in bodies])

    async def _matching(
        self, selection: dict[str, Any], rest: tuple[str, ...], limit: int | None
    ) -> list[dict[str, Any]]:
        if "tags" in selection:
            # Sorted here, not by the server: asked to sort, a planner may prefer the position
            # index (in order) over the tag's few keys. A limit then applies after merging.
            found = [d async for d in self._schema.events.find(selection) if has_tags(d, rest)]
            return sorted(found, key=lambda doc: doc["position"])
        cursor = self._schema.events.find(selection, sort=[("position", 1)], limit=limit or 0)
        return [doc async for doc in cursor]

    async def _clash(
        self, checks: list[Selection], session: AsyncClientSession
    ) -> dict[str, Any] | None:
        """The first stored event that fails the condition, or ``None``."""
        for selection, rest in checks:
            if not rest:
                clash = await self._schema.events.find_one(selection, session=session)
            else:
                cursor = self._schema.events.find(selection, session=session)
                clash = await anext((d async for d in cursor if has_tags(d, rest)), None)
            if clash is not None:
                return clash
        return None

    async def _stored_copies(self, bodies: list[dict[str, Any]]) -> list[StoredEvent] | None:
        ids = [body["_id"] for body in bodies]
        found = await self._schema.events.find({"_id": {"$in": ids}}).to_list(None)
        if len(found) != len(ids):
            return None
        by_id = {doc["_id"]: doc for doc in found}
        for body in bodies:
            doc = by_id[body["_id"]]
            if (doc.get("event_type"), doc.get("tags", [])) != (body["event_type"], body["tags"]):
                return None  # an id reused for another event
        return sorted((from_document(doc) for doc in found), key=lambda e: e.position or 0)

    async def _prepare(self) -> None:
        if self._ready:
            return
        mode = await self._schema.ready()
        if mode.positions != "transactional" or not mode.transactions:
            raise _wrong_strategy(mode.positions if mode.transactions else "no transactions")
        if self._schema.auto_migrate:
            migrator = Migrator(
                self.store.connection.database, {"events": self._schema.events_collection_name}
            )
            try:
                await migrator.run(DCB_MIGRATIONS)
            except PyMongoError as exc:
                raise map_error(exc) from exc
        self._ready = True


def _wrong_strategy(found: str) -> ConfigurationError:
    return ConfigurationError(
        f"Dynamic Consistency Boundaries need the 'transactional' position strategy; this "
        f"store has {found!r}. With preallocated positions two appends do not write one "
        "document, so both could pass their conditions (docs/dcb.md); migrate the store with "
        "change_position_strategy('transactional')"
    )


def _check_query(query: Any) -> Query:
    if query is None:
        return Query()
    if not isinstance(query, Query):
        raise InvalidSpecificationError(f"query must be a Query, got {query!r:.80}")
    return query


def _bodies(events: Any) -> list[dict[str, Any]]:
    if isinstance(events, TaggedEvent) or not isinstance(events, list | tuple):
        raise InvalidSpecificationError(f"events must be a list of TaggedEvent: {events!r:.80}")
    if not 0 < len(events) <= MAX_APPEND:
        raise InvalidSpecificationError(
            f"an append takes 1 to {MAX_APPEND} events, got {len(events)}"
        )
    bodies = []
    for event in events:
        if not isinstance(event, TaggedEvent):
            raise InvalidSpecificationError(f"not a TaggedEvent: {type(event).__name__}")
        record = StoredEvent(
            event_id=event_id_from(event.event_id),
            event_type=check_text(event.event_type, "event type", InvalidSpecificationError),
            aggregate_id="dcb:pending",
            aggregate_type=DCB_AGGREGATE_TYPE,
            version=1,
            payload=event.payload,
            metadata=event.metadata,
            occurred_at=event.occurred_at or utc_now(),
            tags=check_texts(event.tags, "tag", InvalidSpecificationError),
        )
        body = event_body(record)  # checks the payload and metadata encode, before any I/O
        body["tags"] = list(record.tags)
        bodies.append(body)
    return bodies


def _placed(
    bodies: list[dict[str, Any]], first: int
) -> tuple[list[dict[str, Any]], list[StoredEvent]]:
    recorded_at = utc_now()
    documents = []
    for offset, body in enumerate(bodies):
        position = first + offset
        documents.append(
            {
                **body,
                "aggregate_id": f"dcb:{position}",
                "position": position,
                "recorded_at": recorded_at,
            }
        )
    return documents, [from_document(doc) for doc in documents]

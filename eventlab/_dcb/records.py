"""Dynamic Consistency Boundaries' records and rules, the same for every backend: queries,
conditions, tagged events and what a decision read; the checks every input passes before any
I/O; what a stored DCB event looks like; and what "the same event again" means.

A query is a list of items; an event matches an item when its type is one of the item's types
(or the item names none) and it carries every one of the item's tags; it matches the query
when it matches any item. A query with no items matches every event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._core.domain import utc_now
from .._core.errors import DuplicateEventError, InvalidEventError, InvalidSpecificationError
from .._core.event_codec import event_body, from_document, same_client_content
from .._core.records import DCB_STREAM_PREFIX, StoredEvent, event_id_from

DCB_AGGREGATE_TYPE = "DCB"
"""The aggregate type of DCB events: each is stored as stream ``dcb:<position>``, version 1, so
the log, frames, subscriptions and projections see it like any other event."""
MAX_APPEND = 10_000
"""Events per conditional append (one transaction)."""
MAX_QUERY_ITEMS = 100
"""Items per query: each is one indexed read of a condition check."""
MAX_ITEM_VALUES = 100
"""Types or tags per item."""
MAX_TEXT = 512
"""Characters per type or tag."""
MAX_POSITION = 2**63 - 1
MAX_LIMIT = MAX_APPEND * 100

ItemParts = tuple[Sequence[str], Sequence[str]]
"""(types, tags) of one query item."""


# -- checks ------------------------------------------------------------------------------------


def check_text(value: Any, what: str, error: type[Exception]) -> str:
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > MAX_TEXT:
        raise error(
            f"{what} must be a non-empty string of at most {MAX_TEXT} characters, got {value!r:.80}"
        )
    return value


def check_texts(values: Any, what: str, error: type[Exception]) -> tuple[str, ...]:
    """A tuple of strings from a list or tuple of them (a bare string is refused: it would be
    read as its characters)."""
    if isinstance(values, str | bytes) or not isinstance(values, list | tuple | set | frozenset):
        raise error(f"{what}s must be a list of strings, got {values!r:.80}")
    if len(values) > MAX_ITEM_VALUES:
        raise error(f"at most {MAX_ITEM_VALUES} {what}s per item, got {len(values)}")
    return tuple(check_text(v, what, error) for v in values)


def check_after(after: Any, error: type[Exception]) -> int:
    """A position to read or check after (``None`` is the start of the log)."""
    if after is None:
        return 0
    if type(after) is not int or not 0 <= after <= MAX_POSITION:
        raise error(f"after must be a position (an int from 0 to 2**63-1), got {after!r:.80}")
    return after


def check_limit(limit: Any) -> int | None:
    if limit is not None and (type(limit) is not int or not 0 < limit <= MAX_LIMIT):
        raise InvalidSpecificationError(
            f"limit must be a positive int of at most {MAX_LIMIT:,}, got {limit!r:.80}"
        )
    return limit


# -- records -----------------------------------------------------------------------------------


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
        return item_matches((self.types, self.tags), event.event_type, event.tags)


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
        # Checked before the tuples: a bare string would become its characters.
        types_ = check_texts(types, "event type", InvalidSpecificationError)
        tags_ = check_texts(tags, "tag", InvalidSpecificationError)
        return cls((QueryItem(types_, tags_),))

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
    condition names (``read.condition()``): every matching event at or below it (and after the
    read's ``after``) is among ``events``."""

    query: Query
    events: list[StoredEvent]
    head: int

    def condition(self) -> AppendCondition:
        """The condition "nothing matching this read's query recorded after what it saw"."""
        return AppendCondition(self.query, self.head)


def check_query(query: Any) -> Query:
    if query is None:
        return Query()
    if not isinstance(query, Query):
        raise InvalidSpecificationError(f"query must be a Query, got {query!r:.80}")
    return query


def check_condition(condition: Any) -> AppendCondition | None:
    if condition is not None and not isinstance(condition, AppendCondition):
        raise InvalidSpecificationError(
            f"condition must be an AppendCondition, got {condition!r:.80}"
        )
    return condition


# -- matching and stored documents --------------------------------------------------------------


def item_matches(item: ItemParts, event_type: str, tags: Iterable[str]) -> bool:
    types, wanted = item
    return (not types or event_type in types) and set(wanted) <= set(tags)


def reads_of(items: Sequence[ItemParts]) -> list[ItemParts | None]:
    """The reads that answer a query: one per item, or one of every event (``None``) for a
    query without items or with an item that names neither types nor tags."""
    if not items or any(not types and not tags for types, tags in items):
        return [None]
    return list(items)


def merged(pages: Iterable[list[dict[str, Any]]], limit: int | None) -> list[dict[str, Any]]:
    """The documents of several reads, each in position order, as one list in position order
    without repeats (an event can match two items), cut at ``limit``."""
    by_position = {doc["position"]: doc for page in pages for doc in page}
    ordered = [by_position[p] for p in sorted(by_position)]
    return ordered if limit is None else ordered[:limit]


def dcb_bodies(events: Any) -> list[dict[str, Any]]:
    """The bodies of ``events`` (a list of :class:`TaggedEvent`), checked and encoded before
    any I/O: types and tags, payloads and metadata as MongoDB stores them."""
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
            aggregate_id=f"{DCB_STREAM_PREFIX}pending",
            aggregate_type=DCB_AGGREGATE_TYPE,
            version=1,
            payload=event.payload,
            metadata=event.metadata,
            occurred_at=event.occurred_at or utc_now(),
            tags=check_texts(event.tags, "tag", InvalidSpecificationError),
        )
        body = event_body(record)  # checks the payload and metadata encode
        body["tags"] = list(record.tags)
        bodies.append(body)
    if len({body["_id"] for body in bodies}) != len(bodies):
        raise InvalidEventError("the append repeats an event_id")
    return bodies


def placed(bodies: Sequence[dict[str, Any]], first: int) -> list[dict[str, Any]]:
    """The documents of ``bodies`` at positions ``first`` onwards: each a stream of its own,
    ``dcb:<position>``, at version 1."""
    recorded_at = utc_now()
    return [
        {
            **body,
            "aggregate_id": f"{DCB_STREAM_PREFIX}{first + offset}",
            "position": first + offset,
            "recorded_at": recorded_at,
        }
        for offset, body in enumerate(bodies)
    ]


def same_dcb_event(body: dict[str, Any], stored: dict[str, Any]) -> bool:
    """Whether a stored document is the event ``body`` describes: the stream API's rule
    (:func:`~eventlab._core.event_codec.same_client_content`) with the placeholder stream id set
    aside, and the same tags."""
    if list(body.get("tags") or ()) != list(stored.get("tags") or ()):
        return False
    mine = {**body, "aggregate_id": stored.get("aggregate_id")}
    return same_client_content(mine, stored, check_version=True)


def idempotent_copies(
    bodies: Sequence[dict[str, Any]], stored: Sequence[dict[str, Any]]
) -> list[StoredEvent] | None:
    """The stored events of a resent append, in position order, when every id is stored as
    the same event; ``None`` when none of the ids is stored; otherwise
    :class:`~eventlab.DuplicateEventError` naming the ids stored with other content (or, when
    none differs, the ids another append stored)."""
    if not stored:
        return None
    by_id = {doc["_id"]: doc for doc in stored}
    differing = [
        body["_id"]
        for body in bodies
        if body["_id"] in by_id and not same_dcb_event(body, by_id[body["_id"]])
    ]
    if differing or len(by_id) != len(bodies):
        raise DuplicateEventError(differing or [b["_id"] for b in bodies if b["_id"] in by_id])
    return sorted((from_document(doc) for doc in stored), key=lambda e: e.position or 0)


# -- what an append did ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Appended:
    """The events are stored (their documents, in position order)."""

    documents: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Refused:
    """The condition failed: ``document`` matches its query and is after its position."""

    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Duplicate:
    """An insert met a stored event id (an idempotent retry, or an id reused)."""


AppendOutcome = Appended | Refused | Duplicate


@dataclass(frozen=True, slots=True)
class Found:
    """What a decision's read found: ``documents`` in position order; every event matching
    the query with ``after < position <= through`` is among them."""

    documents: list[dict[str, Any]]
    head: int
    """The log's head when the read began: every part of the read was bounded by it."""
    through: int
    """``head``, or the last document's position when the read was cut by its limit."""

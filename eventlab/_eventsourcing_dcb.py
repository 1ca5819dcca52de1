"""Dynamic Consistency Boundaries for the ``eventsourcing`` library, on eventlab's events
collection (``PERSISTENCE_MODULE=eventlab.eventsourcing``, ``DCBApplication``).

Why it is safe: every append takes eventlab's position counter inside its transaction (the
``transactional`` strategy, the only one this module writes), before it checks its condition.
Two appends in flight therefore write the same counter document: one commits, the other's
transaction meets a write conflict and runs again, checking its condition against what the
first one stored. A condition checked in a transaction can never be broken by an append it did
not see (no write skew), whatever boundaries the two decisions drew.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from eventsourcing.dcb.api import (
    DCBAppendCondition,
    DCBEvent,
    DCBQuery,
    DCBReadResponse,
    DCBRecorder,
    DCBSequencedEvent,
)
from eventsourcing.dcb.persistence import DCBListenNotifySubscription
from eventsourcing.persistence import IntegrityError, ProgrammingError
from pymongo import ASCENDING
from pymongo.client_session import ClientSession
from pymongo.read_concern import ReadConcern

from ._domain import utc_now
from ._log import TOMBSTONE_FIELD

DCB_AGGREGATE_TYPE = "DCB"
"""The aggregate type of DCB events in the events collection (frames and stats show it)."""
_WAKE_EVERY = 0.1


class DCBRecorderMixin:
    """The DCB recorder's operations; mixed into the module's recorder over its datastore."""

    datastore: Any
    events: Any
    counters: Any
    counter_id: str

    _take_positions: Callable[[ClientSession, int], int]  # the module's recorder's

    def create_dcb_indexes(self) -> None:
        # Tags are a list: a multikey index, one key per tag (about 0.05 ms per tag of every
        # append on the embedded server); the condition check reads only its keys.
        self.events.create_index(
            [("tags", ASCENDING), ("position", ASCENDING)], name="dcb_tags_position"
        )

    def read(
        self,
        query: DCBQuery | None = None,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> DCBReadResponse:
        if limit is not None and (type(limit) is not int or limit < 0):
            raise ProgrammingError(f"limit must be a non-negative int, got {limit!r}")
        events = self.events.with_options(read_concern=ReadConcern("majority"))
        if limit == 0:
            return _Response(iter(()), None)
        head = None if limit is not None else self._head()
        cursor = events.find(_selection(query, after), sort=[("position", ASCENDING)])
        if limit is not None:
            cursor = cursor.limit(limit)
        found = [_sequenced(doc) for doc in cursor]
        if limit is not None:
            head = found[-1].position if found else None
        return _Response(iter(found), head)

    def append(
        self, events: Sequence[DCBEvent], condition: DCBAppendCondition | None = None
    ) -> int:
        if len(events) == 0:
            raise ProgrammingError("an append needs at least one event")
        documents = [_document(event) for event in events]

        def write(session: ClientSession) -> int:
            # The counter first: it is what serialises appends (see the module's docstring).
            first = self._take_positions(session, len(documents))
            if condition is not None:
                clash = self.events.find_one(
                    _selection(condition.fail_if_events_match, condition.after),
                    {"_id": 1},
                    session=session,
                )
                if clash is not None:
                    raise IntegrityError(condition)
            now = utc_now()
            for offset, document in enumerate(documents):
                position = first + offset
                document.update(
                    position=position,
                    aggregate_id=f"dcb:{position}",
                    recorded_at=now,
                    occurred_at=now,
                )
            self.events.insert_many(documents, ordered=True, session=session)
            return first + len(documents) - 1

        position: int = self.datastore.transaction(write)
        return position

    def subscribe(self, query: DCBQuery | None = None, *, after: int | None = None) -> Any:
        """A :class:`MongoDCBSubscription` (``with recorder.subscribe(query) as events: ...``)."""
        return MongoDCBSubscription(self, query=query, after=after)

    def _head(self) -> int | None:
        counter = self.counters.find_one({"_id": self.counter_id}, {"seq": 1})
        if counter is None or not counter.get("seq"):
            return None
        return int(counter["seq"])


class MongoDCBSubscription(DCBListenNotifySubscription[DCBRecorder]):
    """Blocks when it has delivered what is recorded, and wakes when the position counter
    moves (read every 0.1 s: one small document)."""

    def __init__(
        self, recorder: Any, query: DCBQuery | None = None, after: int | None = None
    ) -> None:
        super().__init__(recorder=recorder, query=query, after=after)
        self._stopped = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="eventlab-dcb", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        seen: int | None = None
        while not self._stopped.is_set():
            try:
                head = self._recorder._head()  # type: ignore[attr-defined]
            except Exception:
                head = seen
            if head != seen:
                seen = head
                self._has_been_notified.set()
            self._stopped.wait(_WAKE_EVERY)

    def stop(self) -> None:
        self._stopped.set()
        super().stop()


def _selection(query: DCBQuery | None, after: int | None) -> dict[str, Any]:
    """The MongoDB filter of a DCB query: an event matches an item when its type is one of the
    item's types (or there are none) and it carries all the item's tags."""
    selection: dict[str, Any] = {
        "position": {"$gt": _after(after)},
        TOMBSTONE_FIELD: {"$exists": False},
    }
    items = []
    for item in (query or DCBQuery()).items:
        condition: dict[str, Any] = {}
        if item.types:
            condition["event_type"] = {"$in": [_text(t, "a type") for t in item.types]}
        if item.tags:
            condition["tags"] = {"$all": [_text(t, "a tag") for t in item.tags]}
        if not condition:
            return selection  # an item without types or tags matches every event
        items.append(condition)
    if items:
        selection["$or"] = items
    return selection


def _after(after: Any) -> int:
    if after is None:
        return 0
    if type(after) is not int or not 0 <= after < 2**63:
        raise ProgrammingError(f"after must be a position (a non-negative int), got {after!r}")
    return after


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ProgrammingError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _document(event: DCBEvent) -> dict[str, Any]:
    if not isinstance(event, DCBEvent):
        raise ProgrammingError(f"not a DCBEvent: {type(event).__name__}")
    return {
        "_id": uuid.uuid4(),
        "event_type": _text(event.type, "an event type"),
        "aggregate_type": DCB_AGGREGATE_TYPE,
        "version": 1,
        "tags": [_text(tag, "a tag") for tag in event.tags],
        "data": bytes(event.data),
        "payload": {},
        "metadata": {"library": "eventsourcing", "dcb": True},
        "schema_version": 1,
    }


def _sequenced(doc: dict[str, Any]) -> DCBSequencedEvent:
    return DCBSequencedEvent(
        event=DCBEvent(type=doc["event_type"], data=bytes(doc["data"]), tags=list(doc["tags"])),
        position=int(doc["position"]),
    )


class _Response(DCBReadResponse):
    def __init__(self, events: Iterator[DCBSequencedEvent], head: int | None) -> None:
        self._events = events
        self._head = head

    @property
    def head(self) -> int | None:
        return self._head

    def __next__(self) -> DCBSequencedEvent:
        return next(self._events)

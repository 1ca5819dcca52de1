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

from . import _races as races
from ._dcb import DCB_AGGREGATE_TYPE
from ._dcb_query import (
    MAX_QUERY_ITEMS,
    NEAR_HEAD,
    ItemParts,
    check_after,
    check_text,
    check_texts,
    has_tags,
    merged,
    selections,
)
from ._domain import utc_now
from ._migrations import DCB_MIGRATIONS

_WAKE_EVERY = 0.1
BETWEEN_ITEMS = races.point("dcb.read.between_items")


class DCBRecorderMixin:
    """The DCB recorder's operations; mixed into the module's recorder over its datastore."""

    datastore: Any
    events: Any
    counters: Any
    counter_id: str

    _take_positions: Callable[[ClientSession, int], int]  # the module's recorder's

    def create_dcb_indexes(self) -> None:
        # The same index as eventlab.dcb's (one definition): sparse multikey on (tags,
        # position); a condition check reads the few keys past the position it names.
        self.events.create_indexes([spec.model() for m in DCB_MIGRATIONS for spec in m.indexes])

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
        pages = []
        chosen = selections(_parts(query), check_after(after, ProgrammingError))
        for index, (selection, rest) in enumerate(chosen):
            if index and BETWEEN_ITEMS.armed:
                BETWEEN_ITEMS.reach_sync()
            if "tags" in selection:  # sorted here: see eventlab._dcb's reads by tag
                found = [doc for doc in events.find(selection) if has_tags(doc, rest)]
                pages.append(sorted(found, key=lambda doc: doc["position"]))
                continue
            cursor = events.find(selection, sort=[("position", ASCENDING)])
            pages.append(list(cursor.limit(limit) if limit is not None else cursor))
        found = [_sequenced(doc) for doc in merged(pages, limit)]
        if limit is not None:
            head = found[-1].position if found else None
        return _Response(iter(found), head)

    def append(
        self, events: Sequence[DCBEvent], condition: DCBAppendCondition | None = None
    ) -> int:
        if len(events) == 0:
            raise ProgrammingError("an append needs at least one event")
        documents = [_document(event) for event in events]
        parts = _parts(condition.fail_if_events_match) if condition is not None else []
        after = check_after(condition.after, ProgrammingError) if condition is not None else 0

        def write(session: ClientSession) -> int:
            # The counter first: it is what serialises appends (see the module's docstring).
            first = self._take_positions(session, len(documents))
            near = first - 1 - after <= NEAR_HEAD  # see eventlab._dcb_query.selections
            checks = selections(parts, after, position_first=near) if condition else []
            for selection, rest in checks:
                cursor = self.events.find(selection, {"tags": 1}, session=session)
                if any(has_tags(doc, rest) for doc in cursor):
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


def _parts(query: DCBQuery | None) -> list[ItemParts]:
    """The (types, tags) of a library query's items, checked (the library's error type)."""
    items = (query or DCBQuery()).items
    if len(items) > MAX_QUERY_ITEMS:
        raise ProgrammingError(f"at most {MAX_QUERY_ITEMS} items per query, got {len(items)}")
    return [
        (
            check_texts(list(item.types), "type", ProgrammingError),
            check_texts(list(item.tags), "tag", ProgrammingError),
        )
        for item in items
    ]


def _text(value: Any, what: str) -> str:
    return check_text(value, what, ProgrammingError)


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

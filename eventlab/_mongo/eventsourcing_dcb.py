"""Dynamic Consistency Boundaries for the ``eventsourcing`` library, on eventlab's events
collection (``PERSISTENCE_MODULE=eventlab.eventsourcing``, ``DCBApplication``).

Why it is safe: every append takes eventlab's position counter inside its transaction (the
``transactional`` strategy, the only one this module writes), before it checks its condition.
Two appends in flight therefore write the same counter document: one commits, the other's
transaction meets a write conflict and runs again, checking its condition against what the
first one stored. A condition checked in a transaction can never be broken by an append it did
not see (no write skew), whatever boundaries the two decisions drew. A read takes the head
first and bounds every query of its items by it, so nothing appended between two of them can
fall below the head it reports. The decision logic is eventlab's own, generated as sync code
(``_dcb_decisions_sync``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

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
from pymongo.errors import BulkWriteError
from pymongo.read_concern import ReadConcern

from .._core.domain import utc_now
from .._dcb.decisions_sync import append_decision, read_decision
from .._dcb.records import (
    DCB_AGGREGATE_TYPE,
    MAX_LIMIT,
    MAX_QUERY_ITEMS,
    Appended,
    ItemParts,
    check_after,
    check_text,
    check_texts,
)
from .dcb_query import NEAR_HEAD, has_tags, selection
from .migrations import DCB_MIGRATIONS
from .transaction_policy import is_duplicate_key

T = TypeVar("T")

_WAKE_EVERY = 0.1


class DCBRecorderMixin:
    """The DCB recorder's operations; mixed into the module's recorder over its datastore.

    The decision logic is eventlab's own (``_dcb_decisions``, generated as sync code): a read
    bounded by the head it takes first, an append that takes the counter, checks and inserts
    in one transaction."""

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
        if limit is not None and (type(limit) is not int or not 0 <= limit <= MAX_LIMIT):
            raise ProgrammingError(
                f"limit must be an int from 0 to {MAX_LIMIT:,} (0: nothing), got {limit!r:.80}"
            )
        if limit == 0:
            return _Response(iter(()), None)
        parts = _parts(query)
        found = read_decision(_Storage(self), parts, check_after(after, ProgrammingError), limit)
        events = [_sequenced(doc) for doc in found.documents]
        if limit is None:  # the library's head: the log's last position
            return _Response(iter(events), found.head or None)
        # With a limit, the library's head is the last event read: every matching event up to
        # it is among them (every part of the read was bounded by the head taken first).
        return _Response(iter(events), events[-1].position if events else None)

    def append(
        self, events: Sequence[DCBEvent], condition: DCBAppendCondition | None = None
    ) -> int:
        if len(events) == 0:
            raise ProgrammingError("an append needs at least one event")
        documents = [_document(event) for event in events]
        checked = None
        if condition is not None:
            after = check_after(condition.after, ProgrammingError)
            checked = (_parts(condition.fail_if_events_match), after)
        outcome = append_decision(_Storage(self), documents, checked)
        if not isinstance(outcome, Appended):
            raise IntegrityError(condition)
        return int(outcome.documents[-1]["position"])

    def subscribe(self, query: DCBQuery | None = None, *, after: int | None = None) -> Any:
        """A :class:`MongoDCBSubscription` (``with recorder.subscribe(query) as events: ...``)."""
        return MongoDCBSubscription(self, query=query, after=after)

    def _head(self) -> int | None:
        counter = self.counters.with_options(read_concern=ReadConcern("majority")).find_one(
            {"_id": self.counter_id}, {"seq": 1}
        )
        if counter is None or not counter.get("seq"):
            return None
        return int(counter["seq"])


class _Storage:
    """The recorder's collections as the decision logic's storage (sync)."""

    def __init__(self, recorder: DCBRecorderMixin) -> None:
        self._recorder = recorder
        self._events = recorder.events

    def head(self) -> int:
        return self._recorder._head() or 0

    def matching(
        self, item: ItemParts | None, after: int, through: int, limit: int | None
    ) -> list[dict[str, Any]]:
        events = self._events.with_options(read_concern=ReadConcern("majority"))
        query, rest = selection(item, after, through)
        if "tags" in query:  # sorted here: see eventlab._mongo.dcb's reads by tag
            found = [doc for doc in events.find(query) if has_tags(doc, rest)]
            found.sort(key=lambda doc: doc["position"])
            return found if limit is None else found[:limit]
        cursor = events.find(query, sort=[("position", ASCENDING)])
        return list(cursor.limit(limit) if limit is not None else cursor)

    def transaction(self, attempt: Callable[[ClientSession], T]) -> T:
        result: T = self._recorder.datastore.transaction(attempt)
        return result

    def take_positions(self, count: int, session: ClientSession) -> int:
        return self._recorder._take_positions(session, count)

    def first_match(
        self, reads: Sequence[ItemParts | None], after: int, first: int, session: ClientSession
    ) -> dict[str, Any] | None:
        near = first - 1 - after <= NEAR_HEAD  # see eventlab._mongo.dcb_query.selection
        for item in reads:
            query, rest = selection(item, after, position_first=near)
            for doc in self._events.find(query, {"tags": 1, "position": 1}, session=session):
                if has_tags(doc, rest):
                    return dict(doc)
        return None

    def insert(self, documents: list[dict[str, Any]], session: ClientSession) -> bool:
        try:
            self._events.insert_many(documents, ordered=True, session=session)
        except BulkWriteError as exc:
            if not is_duplicate_key(exc):
                raise
            return False
        return True

    def abort(self, session: ClientSession) -> None:
        if session.in_transaction:
            session.abort_transaction()


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
            check_texts(item.types, "type", ProgrammingError),
            check_texts(item.tags, "tag", ProgrammingError),
        )
        for item in items
    ]


def _text(value: Any, what: str) -> str:
    return check_text(value, what, ProgrammingError)


def _document(event: DCBEvent) -> dict[str, Any]:
    if not isinstance(event, DCBEvent):
        raise ProgrammingError(f"not a DCBEvent: {type(event).__name__}")
    if not isinstance(event.data, bytes | bytearray | memoryview):
        raise ProgrammingError(f"a DCBEvent's data must be bytes, got {type(event.data).__name__}")
    now = utc_now()
    return {
        "_id": uuid.uuid4(),
        "event_type": _text(event.type, "an event type"),
        "aggregate_type": DCB_AGGREGATE_TYPE,
        "version": 1,
        "tags": list(check_texts(event.tags, "tag", ProgrammingError)),
        "data": bytes(event.data),
        "payload": {},
        "metadata": {"library": "eventsourcing", "dcb": True},
        "schema_version": 1,
        "occurred_at": now,
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

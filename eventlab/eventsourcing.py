"""MongoDB persistence for the ``eventsourcing`` library, on eventlab's layout.

Select it the library's usual way::

    os.environ["PERSISTENCE_MODULE"] = "eventlab.eventsourcing"
    os.environ["MONGODB_URI"] = "mongodb://localhost:27017/?replicaSet=rs0"  # optional
    os.environ["MONGODB_DATABASE"] = "bank"  # optional, default "eventsourcing"

With no URI (neither ``MONGODB_URI`` nor ``EVENTLAB_MONGODB_URI``) an embedded server is
started for the process. Needs the extra: ``pip install 'eventlab[eventsourcing]'``.

The library's recorders are synchronous, so these are built on PyMongo's synchronous client
(``MongoClient``) over eventlab's document layout, not on a sync facade over the async core: a
facade would run an event loop in a thread and hop to it for every call, and the library's
own tests write from many threads at once (docs/eventsourcing.md says more). What is shared
with the async core is the layout, so eventlab's reads (``read_frame``, ``find_gaps``, the CLI,
subscriptions, projections) open an application's store as they open their own:

==================  ==========================================================
eventsourcing       eventlab document field
==================  ==========================================================
originator_id       ``aggregate_id`` (as text) and ``originator_id`` (as given)
originator_version  ``version``
topic               ``event_type``; ``aggregate_type`` is the topic's class path
state (bytes)       ``state``, kept exactly; JSON states also as ``payload``
notification id     ``position`` (the transactional counter, as eventlab's)
==================  ==========================================================

Notification ids are taken from eventlab's position counter **inside** each insert's
transaction, so concurrent inserts never interleave and ids become visible in commit order
(the guarantee the library's ``NonInterleavingNotificationIDsBaseCase`` checks).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    Notification,
    OperationalError,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from ._bson import check_collection_name, to_bson_value
from ._connection import URI_ENV_VAR
from ._domain import utc_now
from ._errors import SerializationError
from ._log import TOMBSTONE_FIELD
from ._transactions import TRANSIENT, UNKNOWN_COMMIT, backoff_delay, has_label

T = TypeVar("T")

_NAMESPACE = uuid.UUID("6f9c5d1e-3a4b-4c2d-9e8f-7a6b5c4d3e2f")
_DUPLICATE_KEY = 11000
_MAJORITY = WriteConcern("majority")

_embedded_lock = threading.Lock()
_embedded: Any = None


def _embedded_uri() -> str:
    """One embedded server for the process, started on first use, stopped at exit."""
    global _embedded
    with _embedded_lock:
        if _embedded is None or not _embedded.running:
            from .embedded import EmbeddedMongo

            _embedded = EmbeddedMongo().start()
            atexit.register(_embedded.stop)
        return str(_embedded.uri)


class MongoDatastore:
    """A synchronous ``MongoClient`` and the database the recorders write in."""

    def __init__(self, uri: str, database: str) -> None:
        self.client: MongoClient[dict[str, Any]] = MongoClient(
            uri,
            tz_aware=True,
            uuidRepresentation="standard",
            serverSelectionTimeoutMS=10_000,
            heartbeatFrequencyMS=500,
        )
        self.uri = uri
        self.database = self.client[database]

    def transaction(self, callback: Callable[[ClientSession], T], time_budget: float = 120.0) -> T:
        """Run ``callback(session)`` in a transaction, by the drivers' retry rules with
        eventlab's jittered backoff; a duplicate key becomes the library's ``IntegrityError``.

        Not the driver's ``with_transaction``: it retries a write conflict at once, and ten
        threads that all take the position counter then keep colliding (the library's
        concurrency test livelocked for its whole two-minute budget). Backing off with full
        jitter, as eventlab's async writer does, spreads them apart.
        """
        try:
            with self.client.start_session() as session:
                return _with_backoff(session, callback, time.monotonic() + time_budget)
        except (DuplicateKeyError, BulkWriteError) as exc:
            if _is_duplicate(exc):
                raise IntegrityError(str(exc).splitlines()[0]) from exc
            raise OperationalError(str(exc).splitlines()[0]) from exc
        except PyMongoError as exc:
            raise OperationalError(str(exc).splitlines()[0]) from exc

    def close(self) -> None:
        self.client.close()


def _with_backoff(
    session: ClientSession, callback: Callable[[ClientSession], T], deadline: float
) -> T:
    attempt = 0
    while True:
        if attempt:
            time.sleep(backoff_delay(attempt))
        session.start_transaction(write_concern=_MAJORITY)
        try:
            result = callback(session)
        except BaseException as exc:
            if session.in_transaction:
                session.abort_transaction()
            if has_label(exc, TRANSIENT) and time.monotonic() < deadline:
                attempt += 1
                continue
            raise
        while True:
            try:
                session.commit_transaction()
                return result
            except PyMongoError as exc:
                if has_label(exc, UNKNOWN_COMMIT) and time.monotonic() < deadline:
                    continue  # the commit may have applied: commit again (idempotent)
                if has_label(exc, TRANSIENT) and time.monotonic() < deadline:
                    attempt += 1
                    break
                raise


def _is_duplicate(exc: PyMongoError) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    errors = getattr(exc, "details", {}).get("writeErrors") or []
    return any(e.get("code") == _DUPLICATE_KEY for e in errors)


class MongoRecorder:
    """What every recorder here shares: the datastore and the event layout."""

    def __init__(self, datastore: MongoDatastore, events_collection: str) -> None:
        self.datastore = datastore
        self.events_collection_name = check_collection_name(events_collection)
        self.counter_id = f"{self.events_collection_name}.position"  # eventlab's counter

    @property
    def events(self) -> Any:
        return self.datastore.database[self.events_collection_name]

    @property
    def counters(self) -> Any:
        return self.datastore.database["counters"]

    def create_table(self) -> None:
        """The indexes eventlab's own migration creates (same keys, same names)."""
        self.events.create_index(
            [("aggregate_id", ASCENDING), ("version", ASCENDING)],
            name="stream_version",
            unique=True,
        )
        self.events.create_index([("position", ASCENDING)], name="position", unique=True)

    def _insert(self, session: ClientSession, stored_events: Sequence[StoredEvent]) -> list[int]:
        first = self._take_positions(session, len(stored_events))
        now = utc_now()
        documents = [_document(event, first + i, now) for i, event in enumerate(stored_events)]
        self.events.insert_many(documents, ordered=True, session=session)
        return [first + i for i in range(len(stored_events))]

    def _take_positions(self, session: ClientSession, count: int) -> int:
        """Take ``count`` positions from eventlab's counter inside the insert's transaction:
        the ``transactional`` strategy, recorded with the counter like eventlab's own stores
        record theirs (docs/positions.md)."""
        counter = self.counters.find_one_and_update(
            {"_id": self.counter_id, "strategy": "transactional"},
            {"$inc": {"seq": count}},
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if counter is None:
            found = self.counters.find_one({"_id": self.counter_id}, session=session)
            if found is not None and found.get("strategy") not in (None, "transactional"):
                raise ProgrammingError(
                    f"{self.events_collection_name} takes {found['strategy']!r} positions; "
                    "this module writes 'transactional' ones only (notification ids must "
                    "become visible in order)"
                )
            counter = self.counters.find_one_and_update(
                {"_id": self.counter_id},
                {"$inc": {"seq": count}, "$set": {"strategy": "transactional"}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
        return int(counter["seq"]) - count + 1


def _topic_parts(topic: str) -> tuple[str, str]:
    """(event type, aggregate type) of a topic such as ``bank.domain:Account.Opened``."""
    qualname = topic.split(":", 1)[1] if ":" in topic else topic
    aggregate = qualname.rsplit(".", 1)[0] if "." in qualname else qualname
    return topic, aggregate


def _payload(state: bytes) -> dict[str, Any]:
    """The state's fields where it is a JSON object (the default transcoder, uncompressed and
    unencrypted), so frames show them as columns; otherwise nothing (``state`` is the truth)."""
    if state[:1] != b"{":
        return {}
    try:
        value = json.loads(state)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    try:
        payload: dict[str, Any] = to_bson_value(value)
    except SerializationError:  # keys MongoDB does not store as given ($-prefixed, NUL)
        return {}
    return payload


def _document(event: StoredEvent, position: int, now: datetime) -> dict[str, Any]:
    event_type, aggregate_type = _topic_parts(event.topic)
    aggregate_id = str(event.originator_id)
    return {
        "_id": uuid.uuid5(_NAMESPACE, f"{aggregate_id}:{event.originator_version}"),
        "event_type": event_type,
        "aggregate_id": aggregate_id,
        "aggregate_type": aggregate_type,
        "version": event.originator_version,
        "payload": _payload(event.state),
        "metadata": {"library": "eventsourcing"},
        "occurred_at": now,
        "schema_version": 1,
        "position": position,
        "recorded_at": now,
        "originator_id": event.originator_id,
        "state": event.state,
    }


def _stored_event(doc: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        originator_id=doc["originator_id"],
        originator_version=doc["version"],
        topic=doc["event_type"],
        state=bytes(doc["state"]),
    )


def _notification(doc: dict[str, Any]) -> Notification:
    return Notification(
        id=doc["position"],
        originator_id=doc["originator_id"],
        originator_version=doc["version"],
        topic=doc["event_type"],
        state=bytes(doc["state"]),
    )


_PROJECTION = {
    "originator_id": 1,
    "version": 1,
    "event_type": 1,
    "state": 1,
    "position": 1,
    TOMBSTONE_FIELD: 1,
}


class MongoAggregateRecorder(MongoRecorder, AggregateRecorder):
    """Aggregate sequences: unique (aggregate_id, version), every batch atomic."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._insert_events(stored_events, **kwargs)
        return None

    def _insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return None
        return self.datastore.transaction(lambda s: self._insert(s, stored_events))

    def select_events(
        self,
        originator_id: uuid.UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        query: dict[str, Any] = {"aggregate_id": str(originator_id)}
        versions: dict[str, int] = {}
        if gt is not None:
            versions["$gt"] = gt
        if lte is not None:
            versions["$lte"] = lte
        if versions:
            query["version"] = versions
        cursor = self.events.find(
            query, _PROJECTION, sort=[("version", DESCENDING if desc else ASCENDING)]
        )
        if limit is not None:
            cursor = cursor.limit(limit)
        return [_stored_event(d) for d in cursor]


class MongoApplicationRecorder(MongoAggregateRecorder, ApplicationRecorder):
    """Aggregate sequences plus the application sequence (notification ids = positions)."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self._insert_events(stored_events, **kwargs)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        # Bounded position ranges, as eventlab's log reader pages: an open-ended
        # `position >= start` with a limit makes a server that does not stop an index scan at
        # the limit (the embedded one) read the whole tail for every page.
        low = (start or 0) if inclusive_of_start or start is None else start + 1
        low = max(low, 1)
        head = self.max_notification_id() or 0
        top = head if stop is None else min(stop, head)
        events = self.events.with_options(read_concern=ReadConcern("majority"))
        found: list[Notification] = []
        width = limit
        while low <= top and len(found) < limit:
            high = min(top, low + width - 1)
            query: dict[str, Any] = {"position": {"$gte": low, "$lte": high}}
            if topics:
                query["event_type"] = {"$in": list(topics)}
            page = list(events.find(query, _PROJECTION, sort=[("position", ASCENDING)]))
            notes = [_notification(d) for d in page if not d.get(TOMBSTONE_FIELD)]
            found += notes[: limit - len(found)]
            width = width * 2 if not page else limit  # a filtered, sparse stretch: widen
            low = high + 1
        return found

    def max_notification_id(self) -> int | None:
        # The position counter, taken in every insert's transaction (rolled back with it), is
        # the highest committed notification id: one document read, not an index walk.
        counter = self.counters.find_one({"_id": self.counter_id}, {"seq": 1})
        if counter is None or not counter.get("seq"):
            return None
        return int(counter["seq"])

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return MongoSubscription(self, gt=gt, topics=topics)


class MongoSubscription(Subscription[MongoApplicationRecorder]):
    """The library's blocking iterator over eventlab's catch-up subscription.

    A thread runs an event loop with an :class:`~eventlab.CatchUpSubscription` on the same
    collection (woken by a change stream where the deployment has one, bounded position reads,
    contiguous positions) and hands notifications over through a bounded queue: a consumer that
    does not read holds the reader back instead of filling memory.
    """

    def __init__(
        self,
        recorder: MongoApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._queue: queue.Queue[Notification | BaseException | None] = queue.Queue(maxsize=500)
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._follower: Any = None
        self._thread = threading.Thread(target=self._run, name="eventlab-subscription", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._follow())
        except BaseException as exc:  # handed to the consumer, raised from __next__
            self._put(exc)

    async def _follow(self) -> None:
        from ._connection import MongoConnectionManager
        from ._event_store import MongoEventStore

        recorder = self._recorder
        self._loop = asyncio.get_running_loop()
        async with MongoConnectionManager(
            recorder.datastore.uri, database=recorder.datastore.database.name
        ) as connection:
            store = MongoEventStore(connection, events_collection=recorder.events_collection_name)
            subscription = store.subscribe(
                start=self._last_notification_id or 0,
                event_types=list(self._topics) or None,
                poll_interval=0.5,
            )
            self._follower = subscription
            if self._stop.is_set():
                return
            async with subscription, contextlib.aclosing(subscription.batches()) as batches:
                async for batch in batches:
                    if self._stop.is_set():
                        break
                    # The library's notification needs fields eventlab's record leaves out
                    # (originator_id as given, state): one read per batch, not one per event.
                    ids = [event.event_id for event in batch.events]
                    docs = {
                        d["_id"]: d
                        async for d in store.events.find({"_id": {"$in": ids}}, _PROJECTION)
                    }
                    for event_id in ids:
                        if not await asyncio.to_thread(self._put, _notification(docs[event_id])):
                            return

    def _put(self, item: Notification | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def stop(self) -> None:
        super().stop()
        self._stop.set()
        loop, follower = self._loop, self._follower
        if loop is not None and follower is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop has just ended
                asyncio.run_coroutine_threadsafe(follower.aclose(), loop)

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)
        finally:
            self._thread.join(timeout=10)

    def __next__(self) -> Notification:
        while True:
            if self._has_been_stopped:
                raise StopIteration
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                self.stop()
                raise item
            if item is None:
                continue
            self._last_notification_id = item.id
            return item


class MongoTrackingRecorder(MongoRecorder, TrackingRecorder):
    """Tracking: one document per upstream application, holding the highest notification id
    processed. A tracking record at or below it is refused (``IntegrityError``), so a process
    can never record an older notification after a newer one, even from two threads."""

    def __init__(
        self,
        datastore: MongoDatastore,
        events_collection: str = "stored_events",
        tracking_collection: str = "notification_tracking",
    ) -> None:
        super().__init__(datastore, events_collection)
        self.tracking_collection_name = check_collection_name(tracking_collection)

    @property
    def tracking(self) -> Any:
        return self.datastore.database[self.tracking_collection_name]

    def create_table(self) -> None:
        """Nothing to create: one document per application, by ``_id``."""

    def insert_tracking(self, tracking: Tracking) -> None:
        self.datastore.transaction(lambda s: self._insert_tracking(s, tracking))

    def _insert_tracking(self, session: ClientSession, tracking: Tracking) -> None:
        # Matches only while the stored id is lower; otherwise the upsert inserts the same _id
        # again, a duplicate key: the record is older than one already processed.
        self.tracking.update_one(
            {
                "_id": tracking.application_name,
                "notification_id": {"$lt": tracking.notification_id},
            },
            {"$set": {"notification_id": tracking.notification_id}},
            upsert=True,
            session=session,
        )

    def max_tracking_id(self, application_name: str) -> int | None:
        doc = self.tracking.find_one({"_id": application_name}, {"notification_id": 1})
        return int(doc["notification_id"]) if doc else None


class MongoProcessRecorder(MongoTrackingRecorder, MongoApplicationRecorder, ProcessRecorder):
    """New events and the tracking record of what caused them, in one transaction."""

    def create_table(self) -> None:
        MongoRecorder.create_table(self)
        MongoTrackingRecorder.create_table(self)

    def _insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        tracking: Tracking | None = kwargs.get("tracking")

        def write(session: ClientSession) -> list[int] | None:
            if tracking is not None:
                self._insert_tracking(session, tracking)
            return self._insert(session, stored_events) if stored_events else None

        if not stored_events and tracking is None:
            return None
        return self.datastore.transaction(write)


class MongoFactory(InfrastructureFactory[MongoTrackingRecorder]):
    """The infrastructure factory the library finds in this module."""

    MONGODB_URI = "MONGODB_URI"
    MONGODB_DATABASE = "MONGODB_DATABASE"
    CREATE_TABLE = "CREATE_TABLE"

    aggregate_recorder_class = MongoAggregateRecorder
    application_recorder_class = MongoApplicationRecorder
    tracking_recorder_class = MongoTrackingRecorder
    process_recorder_class = MongoProcessRecorder

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        uri = self.env.get(self.MONGODB_URI) or self.env.get(URI_ENV_VAR) or _os_uri()
        database = self.env.get(self.MONGODB_DATABASE) or "eventsourcing"
        self.datastore = MongoDatastore(uri or _embedded_uri(), database)

    def _prefix(self, default: str) -> str:
        return (self.env.name.lower() or default).replace(".", "_")

    def _created(self, recorder: T) -> T:
        if self.env_create_table():
            recorder.create_table()  # type: ignore[attr-defined]
        return recorder

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        collection = f"{self._prefix('stored')}_{purpose}"
        return self._created(self.aggregate_recorder_class(self.datastore, collection))

    def application_recorder(self) -> ApplicationRecorder:
        cls = self._class(self.APPLICATION_RECORDER_TOPIC, self.application_recorder_class)
        return self._created(cls(self.datastore, f"{self._prefix('stored')}_events"))

    def tracking_recorder(
        self, tracking_recorder_class: type[MongoTrackingRecorder] | None = None
    ) -> MongoTrackingRecorder:
        cls = tracking_recorder_class or self._class(
            self.TRACKING_RECORDER_TOPIC, self.tracking_recorder_class
        )
        prefix = self._prefix("notification")
        return self._created(cls(self.datastore, f"{prefix}_events", f"{prefix}_tracking"))

    def process_recorder(self) -> ProcessRecorder:
        cls = self._class(self.PROCESS_RECORDER_TOPIC, self.process_recorder_class)
        prefix = self._prefix("stored")
        return self._created(cls(self.datastore, f"{prefix}_events", f"{prefix}_tracking"))

    def _class(self, topic_key: str, default: type[T]) -> type[T]:
        topic = self.env.get(topic_key)
        return resolve_topic(topic) if topic else default

    def env_create_table(self) -> bool:
        default = "yes"
        return bool(strtobool(self.env.get(self.CREATE_TABLE, default) or default))

    def close(self) -> None:
        self.datastore.close()


def _os_uri() -> str | None:
    import os

    return os.environ.get(URI_ENV_VAR)


__all__ = [
    "MongoAggregateRecorder",
    "MongoApplicationRecorder",
    "MongoDatastore",
    "MongoFactory",
    "MongoProcessRecorder",
    "MongoSubscription",
    "MongoTrackingRecorder",
]

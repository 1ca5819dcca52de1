"""MongoDB persistence for the ``eventsourcing`` library, on eventlab's layout.

Select it the library's usual way::

    os.environ["PERSISTENCE_MODULE"] = "eventlab.eventsourcing"
    os.environ["MONGODB_URI"] = "mongodb://localhost:27017/?replicaSet=rs0"
    os.environ["MONGODB_DATABASE"] = "bank"  # optional, default "eventsourcing"

The deployment, in this order: ``MONGODB_URI`` (the driver's options in its query string:
timeouts, TLS, the heartbeat), ``EVENTLAB_MONGODB_URI``, the ``eventlab serve`` running in the
current directory (as the CLI finds it), or, only when asked with ``MONGODB_EMBEDDED_STORAGE``
(a directory), an embedded server keeping its data there (the ``embedded`` extra). Anything
else is an ``InterfaceError`` saying which to set: an application never writes its events to a
server whose data disappears with the process. Needs the extra:
the ``eventsourcing`` extra.

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
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from eventsourcing.dcb.api import DCBQuery, DCBReadResponse, DCBRecorder
from eventsourcing.dcb.persistence import DCBInfrastructureFactory
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DatabaseError,
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    Notification,
    OperationalError,
    PersistenceError,
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
from pymongo.errors import ConfigurationError as PyMongoConfigurationError
from pymongo.errors import (
    ConnectionFailure,
    InvalidURI,
    PyMongoError,
)
from pymongo.read_concern import ReadConcern

from ._core.bson_values import check_collection_name, to_bson_value
from ._core.deployment import URI_ENV_VAR, running_serve
from ._core.domain import utc_now
from ._core.errors import (
    CommitOutcomeUnknownError,
    DeploymentError,
    EventlabError,
    SerializationError,
    TransientError,
    first_line,
)
from ._core.tombstones import TOMBSTONE_FIELD
from ._core.uris import mask_uri, scrub, uri_options
from ._mongo import liveness as liveness
from ._mongo.connection import DEFAULT_HEARTBEAT_MS
from ._mongo.eventsourcing_dcb import DCBRecorderMixin, MongoDCBSubscription
from ._mongo.lookups import find_in
from ._mongo.process_registry import DEFAULT_PROCESS_LEASE
from ._mongo.transaction_policy import is_duplicate_key
from ._mongo.transactions_sync import run_transaction

T = TypeVar("T")

_NAMESPACE = uuid.UUID("6f9c5d1e-3a4b-4c2d-9e8f-7a6b5c4d3e2f")

EMBEDDED_STORAGE = "MONGODB_EMBEDDED_STORAGE"
"""Names a directory: with no URI and no ``eventlab serve``, start an embedded server there."""

_embedded_lock = threading.Lock()
_embedded: dict[Path, Any] = {}


def _embedded_uri(storage: Path) -> str:
    """One embedded server per storage directory for the process, kept across restarts of the
    process (its data is durable), stopped at exit."""
    with _embedded_lock:
        server = _embedded.get(storage)
        if server is None or not server.running:
            from .embedded import EmbeddedMongo

            try:
                server = EmbeddedMongo(storage_path=storage).start()
            except EventlabError as exc:
                raise InterfaceError(f"{EMBEDDED_STORAGE}={storage}: {first_line(exc)}") from exc
            _embedded[storage] = server
            atexit.register(server.stop)
        return str(server.uri)


def _deployment(env: Environment) -> str:
    """The URI to connect to (see the module's docstring for the order)."""
    uri = env.get(MongoFactory.MONGODB_URI) or env.get(URI_ENV_VAR) or os.environ.get(URI_ENV_VAR)
    if uri:
        return uri
    serving = running_serve()
    if serving:
        return serving
    storage = env.get(EMBEDDED_STORAGE)
    if storage:
        return _embedded_uri(Path(storage).resolve())
    raise InterfaceError(
        "no MongoDB to store the events in: set MONGODB_URI (e.g. "
        "mongodb://localhost:27017/?replicaSet=rs0), run `eventlab serve` in this directory, or "
        f"set {EMBEDDED_STORAGE} to a directory to start an embedded server that keeps its "
        "data there"
    )


class MongoDatastore:
    """A synchronous ``MongoClient`` and the database the recorders write in.

    The client's options come from the URI (parsed by the driver): eventlab adds aware UTC
    datetimes and standard UUIDs, and where the URI sets none, a 10 s server selection timeout
    and a 500 ms heartbeat (after a step-down the driver finds the primary again in half a
    second, not ten, so a commit fault stalls no one for long). Every driver error leaves as
    the library's own (:func:`library_errors`).
    """

    def __init__(self, uri: str, database: str, **client_options: Any) -> None:
        self.uri = uri
        given = uri_options(uri)
        options: dict[str, Any] = {"tz_aware": True, "uuidRepresentation": "standard"}
        if "serverselectiontimeoutms" not in given:
            options["serverSelectionTimeoutMS"] = 10_000
        if "heartbeatfrequencyms" not in given:
            options["heartbeatFrequencyMS"] = DEFAULT_HEARTBEAT_MS
        options.update(client_options)
        try:
            self.client: MongoClient[dict[str, Any]] = MongoClient(uri, **options)
        except (PyMongoError, ValueError, TypeError, OSError) as exc:
            # OSError: a TLS file named in the URI that cannot be read.
            raise InterfaceError(
                f"invalid MongoDB URI {mask_uri(uri)}: {scrub(first_line(exc), uri)}"
            ) from exc
        self.database = self.client[database]
        # A process killed inside one of the recorders' transactions has it ended by the
        # processes it holds up (docs/positions.md, "A writer killed mid-transaction").
        self._registry = liveness.attach(self.client, database, DEFAULT_PROCESS_LEASE)

    def __repr__(self) -> str:
        return f"<MongoDatastore {mask_uri(self.uri)} database={self.database.name!r}>"

    def transaction(self, callback: Callable[[ClientSession], T], time_budget: float = 120.0) -> T:
        """Run ``callback(session)`` in a transaction by eventlab's policy (the same runner as
        the async core, generated from it): ``w: "majority"``, transient errors rerun with
        jittered backoff, an unknown commit retried as a commit and the session ended on the
        server when given up on.

        Not the driver's ``with_transaction``: it retries a write conflict at once, and ten
        threads that all take the position counter then keep colliding (the library's
        concurrency test livelocked for its whole two-minute budget).
        """
        with library_errors(self.uri):
            return run_transaction(self.client, callback, time_budget=time_budget)

    def close(self) -> None:
        liveness.detach(self._registry)
        self.client.close()


@contextlib.contextmanager
def library_errors(uri: str | None) -> Iterator[None]:
    """Driver and eventlab errors raised inside become the library's ``PersistenceError``
    subclasses, their messages without the URI's secrets (the original as ``__cause__``)."""
    try:
        yield
    except PersistenceError:
        raise
    except (PyMongoError, EventlabError) as exc:
        raise _library_error(exc, uri) from exc


def _library_error(exc: BaseException, uri: str | None) -> PersistenceError:
    driver = exc
    while isinstance(driver, EventlabError) and driver.__cause__ is not None:
        driver = driver.__cause__
    message = scrub(first_line(exc), uri)
    if isinstance(driver, PyMongoError) and is_duplicate_key(driver):
        return IntegrityError(message)
    if isinstance(driver, InvalidURI | PyMongoConfigurationError):
        return InterfaceError(f"invalid MongoDB URI {mask_uri(uri or '')}: {message}")
    if isinstance(driver, ConnectionFailure) or isinstance(
        exc, TransientError | CommitOutcomeUnknownError | DeploymentError
    ):
        return OperationalError(message)
    return DatabaseError(message)


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
        with library_errors(self.datastore.uri):
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
        with library_errors(self.datastore.uri):
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
        with library_errors(self.datastore.uri):
            return self._select_notifications(start, limit, stop, topics, inclusive_of_start)

    def _select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None,
        topics: Sequence[str],
        inclusive_of_start: bool,
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
        with library_errors(self.datastore.uri):
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
        except (PyMongoError, EventlabError) as exc:  # handed over as the library's own
            error = _library_error(exc, self._recorder.datastore.uri)
            error.__cause__ = exc
            self._put(error)
        except BaseException as exc:  # handed to the consumer, raised from __next__
            self._put(exc)

    async def _follow(self) -> None:
        from ._mongo.connection import MongoConnectionManager
        from ._mongo.event_store import MongoEventStore

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
                        for d in await find_in(store.events, "_id", ids, projection=_PROJECTION)
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
        with library_errors(self.datastore.uri):
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


class MongoDCBRecorder(DCBRecorderMixin, MongoRecorder, DCBRecorder):
    """Dynamic Consistency Boundaries on eventlab's events collection: read by query (types
    and tags), append under a condition, subscribe (docs/eventsourcing.md, "DCB")."""

    def create_table(self) -> None:
        super().create_table()
        with library_errors(self.datastore.uri):
            self.create_dcb_indexes()

    def read(
        self,
        query: DCBQuery | None = None,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> DCBReadResponse:
        with library_errors(self.datastore.uri):
            return super().read(query, after=after, limit=limit)


class MongoFactory(
    InfrastructureFactory[MongoTrackingRecorder], DCBInfrastructureFactory[MongoTrackingRecorder]
):
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
        database = self.env.get(self.MONGODB_DATABASE) or "eventsourcing"
        self.datastore = MongoDatastore(_deployment(self.env), database)

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

    def dcb_recorder(self) -> DCBRecorder:
        return self._created(MongoDCBRecorder(self.datastore, f"{self._prefix('stored')}_events"))

    def _class(self, topic_key: str, default: type[T]) -> type[T]:
        topic = self.env.get(topic_key)
        return resolve_topic(topic) if topic else default

    def env_create_table(self) -> bool:
        default = "yes"
        return bool(strtobool(self.env.get(self.CREATE_TABLE, default) or default))

    def close(self) -> None:
        self.datastore.close()


__all__ = [
    "MongoAggregateRecorder",
    "MongoApplicationRecorder",
    "MongoDCBRecorder",
    "MongoDCBSubscription",
    "MongoDatastore",
    "MongoFactory",
    "MongoProcessRecorder",
    "MongoSubscription",
    "MongoTrackingRecorder",
]

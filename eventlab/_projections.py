"""Projections: read models that follow the log, with exactly-once effect, rebuilt beside the
live one and swapped in, with their lag as a first-class number.

A :class:`Projection` is pure: handlers per event type that read and write **rows** (plain
dicts by key) through the :class:`Rows` port. The same handlers therefore run against MongoDB
(:class:`Projector`, in the transaction that also moves the checkpoint) and against memory (the
workbench's ``replay_projection`` and ``diff_projections``), so what a notebook shows is what
the service will write.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pymongo import DeleteOne, ReplaceOne
from pymongo.errors import PyMongoError

from ._bson import check_collection_name, decimals_to_python, to_bson_value
from ._checkpoints import MongoCheckpointStore
from ._display import HtmlRecord
from ._domain import DomainEvent
from ._errors import ConfigurationError, EventlabError
from ._records import StoredEvent
from ._session import SessionProvider, session_of
from ._subscriptions import Subscriber
from ._tasks import finish
from ._transactions import map_error
from ._unit_of_work import run_unit_of_work

if TYPE_CHECKING:
    import pandas as pd

    from ._event_store import MongoEventStore

STATE_COLLECTION = "projections"


class Rows(Protocol):
    """The rows of a read model, by key, as a projection's handlers see them."""

    async def get(self, key: str) -> dict[str, Any] | None:
        """The row stored under ``key`` (a copy), or ``None``."""
        ...

    def put(self, key: str, row: dict[str, Any]) -> None:
        """Store ``row`` under ``key`` (replacing it)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the row under ``key``."""
        ...


_EventHandler = Callable[[Any, Rows, StoredEvent], Awaitable[None]]


def on(*event_types: str | type[DomainEvent]) -> Callable[[_EventHandler], _EventHandler]:
    """Mark a :class:`Projection` method as the handler of these event types."""
    names = tuple(t if isinstance(t, str) else t.event_type for t in event_types)

    def mark(func: _EventHandler) -> _EventHandler:
        func.__eventlab_on__ = names  # type: ignore[attr-defined]
        return func

    return mark


class Projection:
    """A read model's logic: ``@on("EventType")`` methods ``async def f(self, rows, event)``.

    ``name`` (default: the class name in snake case) names the read model and its checkpoint;
    bump ``version`` when the handlers change what they write, then :meth:`Projector.rebuild`.
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    _handlers: ClassVar[dict[str, _EventHandler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
        check_collection_name(cls.name)
        handlers = dict(cls._handlers)
        for attr in cls.__dict__.values():
            for event_type in getattr(attr, "__eventlab_on__", ()):
                handlers[event_type] = attr
        cls._handlers = handlers

    @classmethod
    def event_types(cls) -> list[str]:
        """The event types it handles (the subscription reads only those)."""
        return sorted(cls._handlers)

    async def apply(self, rows: Rows, event: StoredEvent) -> bool:
        """Apply one event; whether the projection handles its type."""
        handler = self._handlers.get(event.event_type)
        if handler is None:
            return False
        await handler(self, rows, event)
        return True


class MemoryRows:
    """:class:`Rows` in a dict (the workbench, tests)."""

    def __init__(self, rows: dict[str, dict[str, Any]] | None = None) -> None:
        self.rows: dict[str, dict[str, Any]] = rows if rows is not None else {}

    async def get(self, key: str) -> dict[str, Any] | None:
        row = self.rows.get(key)
        return copy.deepcopy(row) if row is not None else None

    def put(self, key: str, row: dict[str, Any]) -> None:
        self.rows[str(key)] = copy.deepcopy(row)

    def delete(self, key: str) -> None:
        self.rows.pop(str(key), None)


class _MongoRows:
    """:class:`Rows` over a collection in a transaction: read on first use, written once per
    key when the batch ends (one ``bulk_write``)."""

    def __init__(self, collection: Any, session: Any) -> None:
        self._collection = collection
        self._session = session
        self._cache: dict[str, dict[str, Any] | None] = {}
        self._dirty: set[str] = set()

    async def prefetch(self, keys: Iterable[str]) -> None:
        wanted = [k for k in set(keys) if k not in self._cache]
        if not wanted:
            return
        found = {
            d["_id"]: d
            async for d in self._collection.find({"_id": {"$in": wanted}}, session=self._session)
        }
        for key in wanted:
            doc = found.get(key)
            self._cache[key] = _row_of(doc) if doc is not None else None

    async def get(self, key: str) -> dict[str, Any] | None:
        key = str(key)
        if key not in self._cache:
            await self.prefetch([key])
        row = self._cache[key]
        return copy.deepcopy(row) if row is not None else None

    def put(self, key: str, row: dict[str, Any]) -> None:
        self._cache[str(key)] = copy.deepcopy(row)
        self._dirty.add(str(key))

    def delete(self, key: str) -> None:
        self._cache[str(key)] = None
        self._dirty.add(str(key))

    async def flush(self) -> None:
        operations: list[Any] = []
        for key in sorted(self._dirty):
            row = self._cache[key]
            if row is None:
                operations.append(DeleteOne({"_id": key}))
            else:
                body = to_bson_value(row, f"read-model row {key}")
                operations.append(ReplaceOne({"_id": key}, {"_id": key, **body}, upsert=True))
        if operations:
            await self._collection.bulk_write(operations, ordered=True, session=self._session)
        self._dirty.clear()


def _row_of(doc: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = decimals_to_python({k: v for k, v in doc.items() if k != "_id"})
    return row


@dataclass(frozen=True, slots=True)
class ProjectionStatus(HtmlRecord):
    """Where a projection stands."""

    name: str
    version: int
    """The version of the handlers that built the live read model."""
    code_version: int
    """The version of the handlers in this process (differs: rebuild)."""
    generation: int
    collection: str
    position: int
    head: int
    behind: int
    """Positions between the read model's checkpoint and the head of the log."""
    seconds_behind: float
    """How long ago the oldest event not yet in the read model was recorded (0: caught up)."""
    rows: int

    @property
    def stale(self) -> bool:
        """The live read model was built by other handlers than this process's."""
        return self.version != self.code_version


class _Superseded(EventlabError):
    """The generation this projector writes is no longer the live one (a rebuild swapped)."""


class Projector:
    """Runs a :class:`Projection` into a MongoDB read model.

    Each batch's row writes and the checkpoint commit in one transaction (exactly-once effect).
    The read model lives in ``<prefix><name>_<generation>``; the ``projections`` collection
    says which generation is live. :meth:`rebuild` builds the next generation beside the live
    one and swaps the pointer, so readers that resolve :meth:`collection` first never see an
    empty or half-built read model.
    """

    def __init__(
        self,
        store: MongoEventStore,
        projection: Projection,
        *,
        prefix: str = "rm_",
        batch_size: int = 200,
        checkpoints: MongoCheckpointStore | None = None,
        **subscription_options: Any,
    ) -> None:
        self.store = store
        self.projection = projection
        self.name = type(projection).name
        self.prefix = prefix
        self.batch_size = batch_size
        self.checkpoints = checkpoints or MongoCheckpointStore(store.connection)
        self._options = subscription_options
        self._subscriber: Subscriber | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # -- where things live -------------------------------------------------------------------

    @property
    def _state(self) -> Any:
        return self.store.connection.database[STATE_COLLECTION]

    def collection_name(self, generation: int) -> str:
        return check_collection_name(f"{self.prefix}{self.name}_{generation}")

    def checkpoint_name(self, generation: int) -> str:
        return f"projection:{self.name}:{generation}"

    async def _live(self) -> dict[str, Any]:
        """The state document, created at generation 1 for a new projection."""
        await self.store.connection.connect()  # idempotent
        doc = await self._state.find_one({"_id": self.name})
        if doc is None:
            with contextlib.suppress(PyMongoError):  # two projectors creating it at once
                await self._state.insert_one(
                    {"_id": self.name, "generation": 1, "version": type(self.projection).version}
                )
            doc = await self._state.find_one({"_id": self.name})
        if doc is None:  # pragma: no cover - inserted just above
            raise EventlabError(f"projection state of {self.name} could not be created")
        state: dict[str, Any] = doc
        return state

    async def collection(self) -> Any:
        """The live read model's collection (resolve it per read: a rebuild swaps it)."""
        return self.store.connection.database[
            self.collection_name((await self._live())["generation"])
        ]

    async def rows(self) -> list[dict[str, Any]]:
        """Every row of the live read model, ``_id`` first."""
        collection = await self.collection()
        return [decimals_to_python(d) async for d in collection.find({}, sort=[("_id", 1)])]

    async def frame(self) -> pd.DataFrame:
        """The live read model as a DataFrame indexed by row key."""
        import pandas as pd

        rows = await self.rows()
        frame = pd.DataFrame(rows)
        return frame.set_index("_id") if "_id" in frame else frame

    # -- running -----------------------------------------------------------------------------

    def _writer(self, generation: int, *, guard: bool) -> Callable[..., Awaitable[None]]:
        target = self.store.connection.database[self.collection_name(generation)]

        async def write(events: tuple[StoredEvent, ...], uow: SessionProvider | None) -> None:
            session = session_of(uow)
            if guard:
                # A write to the state document, so that a swap and this batch conflict
                # (snapshot isolation only sees write-write conflicts): after a rebuild swapped
                # generations, an old projector can no longer write to its old read model.
                moved = await self._state.update_one(
                    {"_id": self.name, "generation": generation},
                    {"$inc": {"batches": 1}},
                    session=session,
                )
                if moved.matched_count == 0:
                    raise _Superseded(f"{self.name}: generation {generation} is no longer live")
            rows = _MongoRows(target, session)
            # Most projections key rows by aggregate id: read those in one query per batch;
            # any other key a handler asks for is read on first use.
            await rows.prefetch(e.aggregate_id for e in events)
            for event in events:
                await self.projection.apply(rows, event)
            await rows.flush()

        return write

    def _subscriber_for(self, generation: int, *, guard: bool) -> Subscriber:
        return Subscriber(
            self.store,
            self.checkpoint_name(generation),
            None,
            on_batch=self._writer(generation, guard=guard),
            checkpoints=self.checkpoints,
            batch_size=self.batch_size,
            event_types=type(self.projection).event_types(),
            **self._options,
        )

    async def run(self, *, until_caught_up: bool = False) -> None:
        """Keep the live read model up to date (until :meth:`stop`, or until caught up);
        follows a rebuild's swap to the new generation by itself."""
        self._stopping = False
        while not self._stopping:
            generation = int((await self._live())["generation"])
            subscriber = self._subscriber_for(generation, guard=True)
            self._subscriber = subscriber
            try:
                await subscriber.run(until_caught_up=until_caught_up)
            except _Superseded:
                continue
            return

    async def run_until_caught_up(self) -> None:
        """Bring the live read model to the head of the log and return."""
        await self.run(until_caught_up=True)

    def start(self) -> asyncio.Task[None]:
        """Run in a background task."""
        self._task = asyncio.get_running_loop().create_task(self.run())
        return self._task

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop after the batch in hand."""
        self._stopping = True
        if self._subscriber is not None:
            await self._subscriber.stop(timeout)
        task, self._task = self._task, None
        if task is not None:
            await finish(task, timeout)

    async def rebuild(self) -> ProjectionStatus:
        """Build the read model again from the first event, beside the live one, and swap.

        Readers keep reading the live generation while the next one is built; the swap is one
        transaction that moves the pointer only once the new generation has caught up with the
        live one. The old generation and its checkpoint are dropped afterwards.
        """
        live = await self._live()
        old = int(live["generation"])
        new = old + 1
        database = self.store.connection.database
        await database[self.collection_name(new)].drop()  # a rebuild that died half-way
        await self.checkpoints.delete(self.checkpoint_name(new))
        builder = self._subscriber_for(new, guard=False)
        while True:
            await builder.run(until_caught_up=True)  # again: what was appended meanwhile
            outcome = await run_unit_of_work(
                self.store.connection, lambda uow: self._swap(uow, old, new)
            )
            if outcome == "swapped":
                break
            if outcome == "superseded":
                await database[self.collection_name(new)].drop()
                raise EventlabError(f"{self.name}: another rebuild swapped first; nothing changed")
        await database[self.collection_name(old)].drop()
        await self.checkpoints.delete(self.checkpoint_name(old))
        return await self.status()

    async def _swap(self, uow: SessionProvider, old: int, new: int) -> str:
        """Make ``new`` the live generation if it is at least as far as ``old``.

        One transaction: the checkpoints are read and the pointer moved together. A live
        projector's batch writes the same state document, so it and the swap cannot both
        commit on what the other has not seen: readers never see the read model go back to an
        earlier position (``"behind"``: catch up and try again).
        """
        live = await self.checkpoints.get(self.checkpoint_name(old), uow=uow)
        built = await self.checkpoints.get(self.checkpoint_name(new), uow=uow)
        if (built.position if built else 0) < (live.position if live else 0):
            return "behind"
        swapped = await self._state.update_one(
            {"_id": self.name, "generation": old},
            {"$set": {"generation": new, "version": type(self.projection).version,
                      "rebuilt_at": datetime.now(UTC)}},
            session=uow.session,
        )  # fmt: skip
        return "swapped" if swapped.matched_count else "superseded"

    async def status(self) -> ProjectionStatus:
        """Generation, checkpoint, lag in positions and seconds, rows."""
        live = await self._live()
        generation = int(live["generation"])
        position = await self.checkpoints.position(self.checkpoint_name(generation))
        log = await self.store._log()
        try:
            head = await log.head()
            oldest = await self.store.get_events_after(position, 1) if head > position else []
            rows = await self.store.connection.database[
                self.collection_name(generation)
            ].estimated_document_count()
        except PyMongoError as exc:
            raise map_error(exc) from exc
        seconds = 0.0
        if oldest and oldest[0].recorded_at is not None:
            seconds = max(0.0, (datetime.now(UTC) - oldest[0].recorded_at).total_seconds())
        return ProjectionStatus(
            name=self.name,
            version=int(live.get("version", 1)),
            code_version=type(self.projection).version,
            generation=generation,
            collection=self.collection_name(generation),
            position=position,
            head=head,
            behind=max(0, head - position),
            seconds_behind=seconds,
            rows=int(rows),
        )


def check_projection(projection: Any) -> Projection:
    if not isinstance(projection, Projection):
        raise ConfigurationError(f"expected a Projection instance, got {projection!r:.60}")
    return projection

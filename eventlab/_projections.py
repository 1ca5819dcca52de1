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
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pymongo import DeleteOne, ReplaceOne, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from ._bson import check_collection_name, decimals_to_python, to_bson_value
from ._checkpoints import MongoCheckpointStore
from ._checks import check_name, check_page_size
from ._display import HtmlRecord
from ._domain import DomainEvent
from ._errors import ConfigurationError, EventlabError, RebuildInProgressError
from ._records import StoredEvent
from ._session import SessionProvider, session_of
from ._subscriptions import Subscriber
from ._tasks import finish
from ._transaction_policy import map_error
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


DEFAULT_KEEP_RETIRED = 300.0
"""Seconds a read model replaced by a rebuild stays readable (docs/projections.md)."""


class Projector:
    """Runs a :class:`Projection` into a MongoDB read model.

    Each batch's row writes and the checkpoint commit in one transaction (exactly-once effect).
    The read model lives in ``<prefix><name>_<generation>``; the ``projections`` collection
    says which generation is live. :meth:`rebuild` builds a new generation beside the live one
    and swaps the pointer; the replaced generation stays readable for ``keep_retired`` seconds,
    so a reader that resolved :meth:`collection` just before a swap still reads a whole read
    model. One process runs a projection at a time (a lease, as :class:`Subscriber`); one
    rebuild runs at a time (a claim: a second gets :class:`~eventlab.RebuildInProgressError`).
    """

    def __init__(
        self,
        store: MongoEventStore,
        projection: Projection,
        *,
        prefix: str = "rm_",
        batch_size: int = 200,
        checkpoints: MongoCheckpointStore | None = None,
        keep_retired: float = DEFAULT_KEEP_RETIRED,
        **subscription_options: Any,
    ) -> None:
        self.store = store
        self.projection = check_projection(projection)
        self.name = type(projection).name
        self.prefix = check_name(prefix, "prefix") if prefix else ""
        # The longest collection name this projection will use, checked before anything is
        # written (a name MongoDB refuses must not fail at the first batch).
        self.collection_name(2**31)
        self.batch_size = check_page_size(batch_size, "batch_size")
        if isinstance(keep_retired, bool) or not isinstance(keep_retired, int | float):
            raise ConfigurationError(f"keep_retired must be a number of seconds: {keep_retired!r}")
        if keep_retired < 0:
            raise ConfigurationError(f"keep_retired must be >= 0: {keep_retired!r}")
        self.keep_retired = float(keep_retired)
        self.checkpoints = checkpoints or MongoCheckpointStore(store.connection)
        # Checked now: an option the subscription refuses fails at construction.
        Subscriber(self.store, "check", None, on_batch=_no_batch, **subscription_options)
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
        try:
            doc = await self._state.find_one({"_id": self.name})
            if doc is None:
                with contextlib.suppress(DuplicateKeyError):  # two projectors creating it
                    await self._state.insert_one(
                        {
                            "_id": self.name,
                            "generation": 1,
                            "version": type(self.projection).version,
                            "retired": [],
                        }
                    )
                doc = await self._state.find_one({"_id": self.name})
        except PyMongoError as exc:
            raise map_error(exc) from exc
        if doc is None:  # pragma: no cover - inserted just above
            raise EventlabError(f"projection state of {self.name} could not be created")
        state: dict[str, Any] = doc
        return state

    async def collection(self) -> Any:
        """The live read model's collection (resolve it per read: a rebuild swaps it; the one
        replaced stays readable for ``keep_retired`` seconds)."""
        return self.store.connection.database[
            self.collection_name((await self._live())["generation"])
        ]

    async def rows(self) -> list[dict[str, Any]]:
        """Every row of the live read model, ``_id`` first.

        Never an empty or half-built read model: the generation read is checked again after
        the read, and read anew if it was dropped meanwhile (a reader slower than
        ``keep_retired``).
        """
        for _ in range(5):
            generation = int((await self._live())["generation"])
            collection = self.store.connection.database[self.collection_name(generation)]
            try:
                rows = [decimals_to_python(d) async for d in collection.find({}, sort=[("_id", 1)])]
            except PyMongoError as exc:
                raise map_error(exc) from exc
            if generation in _readable(await self._live()):
                return rows
        raise EventlabError(f"{self.name}: the read model kept being replaced while read")

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

        Readers keep reading the live generation while a new one is built; the swap is one
        transaction that moves the pointer only once the new generation has caught up with the
        live one, and only while this rebuild still holds its claim. The replaced generation
        stays readable for ``keep_retired`` seconds and is dropped by a later rebuild.

        :raises RebuildInProgressError: another rebuild of this projection is running.
        """
        claim = f"projection:{self.name}:rebuild"
        owner = f"rebuild:{uuid.uuid4().hex}"
        grant = await self.checkpoints.claim(claim, owner, lease=_REBUILD_LEASE)
        if not grant.granted:
            raise RebuildInProgressError(
                f"{self.name}: another rebuild is running ({grant.holder or 'elsewhere'}); "
                "nothing was changed"
            )
        renewer = asyncio.get_running_loop().create_task(self._keep_claim(claim, owner))
        try:
            await self._drop_retired()
            new = await self._allocate_generation()
            builder = self._subscriber_for(new, guard=False)
            while True:
                await builder.run(until_caught_up=True)  # again: what was appended meanwhile
                outcome = await run_unit_of_work(
                    self.store.connection, lambda uow: self._swap(uow, new, claim, owner)
                )
                if outcome == "swapped":
                    break
                if outcome == "superseded":
                    raise RebuildInProgressError(
                        f"{self.name}: this rebuild lost its claim to another; nothing changed"
                    )
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await self.checkpoints.release(claim, owner)
        return await self.status()

    async def _keep_claim(self, claim: str, owner: str) -> None:
        while True:
            await asyncio.sleep(_REBUILD_LEASE / 3)
            with contextlib.suppress(EventlabError):
                await self.checkpoints.renew(claim, owner, lease=_REBUILD_LEASE)

    async def _allocate_generation(self) -> int:
        """A generation number no reader or earlier rebuild has used: a rebuild that died
        half-way leaves a collection that is never taken again (and is dropped later)."""
        live = await self._live()
        counters = self.store.connection.database[STATE_COLLECTION]
        try:
            doc = await counters.find_one_and_update(
                {"_id": f"{self.name}:generations"},
                {"$max": {"seq": int(live["generation"])}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            doc = await counters.find_one_and_update(
                {"_id": f"{self.name}:generations"},
                {"$inc": {"seq": 1}},
                return_document=ReturnDocument.AFTER,
            )
        except PyMongoError as exc:
            raise map_error(exc) from exc
        assert doc is not None  # created just above
        return int(doc["seq"])

    async def _swap(self, uow: SessionProvider, new: int, claim: str, owner: str) -> str:
        """Make ``new`` the live generation if it is at least as far as the live one.

        One transaction: the checkpoints are read and the pointer moved together. A live
        projector's batch writes the same state document, so it and the swap cannot both
        commit on what the other has not seen: readers never see the read model go back to an
        earlier position (``"behind"``: catch up and try again). The claim is written in the
        same transaction: a rebuild whose claim was taken over cannot swap (``"superseded"``).
        """
        held = await self.checkpoints.leases.update_one(
            {"_id": claim, "owner": owner}, {"$inc": {"swaps": 1}}, session=uow.session
        )
        if held.matched_count == 0:
            return "superseded"
        live = await self._state.find_one({"_id": self.name}, session=uow.session)
        assert live is not None  # created before the rebuild started
        old = int(live["generation"])
        current = await self.checkpoints.get(self.checkpoint_name(old), uow=uow)
        built = await self.checkpoints.get(self.checkpoint_name(new), uow=uow)
        if (built.position if built else 0) < (current.position if current else 0):
            return "behind"
        await self._state.update_one(
            {"_id": self.name, "generation": old},
            {
                "$set": {
                    "generation": new,
                    "version": type(self.projection).version,
                    "rebuilt_at": datetime.now(UTC),
                },
                "$push": {"retired": {"generation": old, "retired_at": datetime.now(UTC)}},
            },
            session=uow.session,
        )
        return "swapped"

    async def _drop_retired(self) -> None:
        """Drop generations replaced more than ``keep_retired`` seconds ago, and collections
        of rebuilds that died before swapping (never readable: no pointer names them)."""
        live = await self._live()
        cutoff = datetime.now(UTC) - timedelta(seconds=self.keep_retired)
        database = self.store.connection.database
        expired = [r for r in live.get("retired") or [] if r["retired_at"] < cutoff]
        kept = _readable(live) - {int(r["generation"]) for r in expired}
        try:
            for entry in expired:
                # Off the list first, dropped second: a reader that sees the list without it
                # reads again (rows()), never an empty collection it believed readable.
                await self._state.update_one(
                    {"_id": self.name}, {"$pull": {"retired": {"generation": entry["generation"]}}}
                )
            pattern = re.compile(rf"^{re.escape(self.prefix + self.name)}_(\d+)$")
            for collection in await database.list_collection_names():
                found = pattern.match(collection)
                if found and int(found.group(1)) not in kept:
                    await database[collection].drop()
                    await self.checkpoints.delete(self.checkpoint_name(int(found.group(1))))
        except PyMongoError as exc:
            raise map_error(exc) from exc

    async def status(self) -> ProjectionStatus:
        """Generation, checkpoint, lag in positions and seconds, rows."""
        live = await self._live()
        generation = int(live["generation"])
        position = await self.checkpoints.position(self.checkpoint_name(generation))
        head = (await self.store.log.head()).position
        try:
            oldest = (
                await self.store.read_all(position, max_count=1, gap_timeout=0).to_list()
                if head > position
                else []
            )
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


_REBUILD_LEASE = 10.0


async def _no_batch(events: tuple[StoredEvent, ...], uow: SessionProvider | None) -> None:
    return None


def _readable(state: dict[str, Any]) -> set[int]:
    """The generations a reader may read: the live one and the retired ones not yet dropped."""
    return {int(state["generation"])} | {int(r["generation"]) for r in state.get("retired") or []}


def check_projection(projection: Any) -> Projection:
    if not isinstance(projection, Projection):
        raise ConfigurationError(f"expected a Projection instance, got {projection!r:.60}")
    return projection

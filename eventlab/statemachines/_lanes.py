"""Lanes: the backends a state machine drives side by side, one lane per backend and position
strategy, each with its own store, checkpoints, snapshots and read models.

A lane says what its backend can do (DCB, preallocated positions) and which race points its
code marks, found by probing it once: a rule that needs an interleaving runs it at the point
where the lane marks it, and in the equivalent order where it does not.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from .. import memory
from .._core.race_points import (
    APPEND_POSITIONS_TAKEN,
    BATCH_HANDLED,
    DCB_APPEND_BEFORE_CHECK,
    DCB_READ_BETWEEN_ITEMS,
    DCB_READ_HEAD_TAKEN,
    FOLLOW_HEAD_READ,
    LEASE_EXPIRED_SEEN,
    LEASE_TAKEN_OVER,
    UOW_BEFORE_COMMIT,
)
from .._core.races import acting_at
from .._core.records import StoredEvent
from .._core.registry import EventRegistry
from .._dcb.records import AppendCondition, Query, QueryItem, TaggedEvent
from .._follow.catch_up import CatchUpSubscription
from .._follow.subscriber import Subscriber
from .._mongo.checkpoints import MongoCheckpointStore
from .._mongo.connection import MongoConnectionManager
from .._mongo.dcb import MongoDCBStore
from .._mongo.event_store import MongoEventStore
from .._mongo.read_models import MongoReadModels
from .._mongo.snapshots import MongoSnapshotStore
from ..ports import CheckpointStore, EventStore, PositionStrategy, ReadModelStore, SnapshotStore
from ..testing import eventually
from ._domain import machine_registry

T = TypeVar("T")

CURRENT_ACTOR: contextvars.ContextVar[str] = contextvars.ContextVar(
    "eventlab_machine_actor", default=""
)
"""Who is running: a lane's name, or ``<lane>:<consumer>`` for a consumer's task. Race points
are global; an action armed for one actor ignores every other actor that reaches the point."""


@dataclass
class Lane:
    """One backend under test, for one example of a state machine."""

    name: str
    strategy: PositionStrategy
    store: EventStore
    checkpoints: CheckpointStore
    snapshots: SnapshotStore
    read_models: ReadModelStore
    dcb: Any
    """A DCB store over ``store`` (``read``/``append``), or ``None`` where the backend has none."""
    points: frozenset[str] = frozenset()
    """The race points this lane's code marks (probed)."""
    tag: str = ""
    """A short name for this lane's projections (read models of lanes may share a database)."""
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def run(self, work: Callable[[], Awaitable[T]], actor: str | None = None) -> T:
        """Run ``work()`` as this lane (or as ``actor`` of it): race points armed for another
        actor ignore it, and tasks it starts inherit who it is."""
        context = contextvars.copy_context()
        context.run(CURRENT_ACTOR.set, actor or self.name)
        return await asyncio.get_running_loop().create_task(work(), context=context)  # type: ignore[arg-type]

    def spawn(self, work: Callable[[], Awaitable[T]], actor: str) -> asyncio.Task[T]:
        """Start ``work()`` in the background as ``actor`` of this lane."""
        context = contextvars.copy_context()
        context.run(CURRENT_ACTOR.set, actor)
        return asyncio.get_running_loop().create_task(work(), context=context)  # type: ignore[arg-type]

    def marks(self, point: str) -> bool:
        return point in self.points

    async def read_log(self) -> list[StoredEvent]:
        """The whole log as a follower reads it; a hole is abandoned at once (steps run one
        after the other, so no append can still fill one when this runs)."""
        return await CatchUpSubscription(self.store.log, live=False, gap_timeout=0).to_list()


class LaneFactory(Protocol):
    """Opens the lanes of one backend for each example, and cleans up after it."""

    name: str

    async def open(self) -> list[Lane]:
        """Fresh lanes (empty stores) for an example."""
        ...

    async def reset(self) -> None:
        """Forget everything the example wrote (its tasks are already stopped)."""
        ...

    async def close(self) -> None:
        """Release what the factory holds (connections)."""
        ...


def dcb_for(store: EventStore) -> Any | None:
    """The DCB store of a store (the :class:`~eventlab.ports.DCBStore` port), or ``None``
    where DCB does not apply: it needs the ``transactional`` strategy (docs/dcb.md)."""
    if getattr(store, "position_strategy", "transactional") != "transactional":
        return None
    if isinstance(store, MongoEventStore):
        return MongoDCBStore(store)
    if isinstance(store, memory.MemoryEventStore):
        return memory.MemoryDCBStore(store)
    return None


def memory_strategies() -> list[PositionStrategy]:
    """The position strategies the in-memory backend offers (a capability check)."""
    offers = "positions" in inspect.signature(memory.MemoryEventStore).parameters
    return ["transactional", "preallocated"] if offers else ["transactional"]


class MemoryLanes:
    """The in-memory backend: the reference model, one lane per strategy it offers."""

    name = "memory"

    def __init__(self, registry: EventRegistry | None = None) -> None:
        self._registry = registry or machine_registry()
        self._points: dict[PositionStrategy, frozenset[str]] = {}

    def _lane(self, strategy: PositionStrategy, name: str) -> Lane:
        backend = memory.MemoryBackend()
        options: dict[str, Any] = {} if strategy == "transactional" else {"positions": strategy}
        store = memory.MemoryEventStore(backend, registry=self._registry, **options)
        return Lane(
            name=name,
            strategy=strategy,
            store=store,
            checkpoints=backend.checkpoints(),
            snapshots=backend.snapshots(),
            read_models=backend.read_models("rm_"),
            dcb=dcb_for(store),
            points=self._points.get(strategy, frozenset()),
            tag="m" if strategy == "transactional" else "mp",
        )

    async def open(self) -> list[Lane]:
        lanes = []
        for strategy in memory_strategies():
            if strategy not in self._points:
                self._points[strategy] = await probe(self._lane(strategy, "probe"))
            suffix = "" if strategy == "transactional" else "/preallocated"
            lanes.append(self._lane(strategy, f"memory{suffix}"))
        return lanes

    async def reset(self) -> None:
        return None

    async def close(self) -> None:
        return None


class MongoLanes:
    """A MongoDB deployment: one lane per strategy, in one database (collections prefixed by
    lane), emptied after each example."""

    name = "mongo"

    def __init__(
        self,
        uri: str,
        database: str,
        *,
        strategies: tuple[PositionStrategy, ...] = ("transactional", "preallocated"),
        registry: EventRegistry | None = None,
        server_selection_timeout: float | None = None,
    ) -> None:
        self._uri = uri
        self._database = database
        self._strategies = strategies
        self._registry = registry or machine_registry()
        self._timeout = server_selection_timeout
        self._connection: MongoConnectionManager | None = None
        self._points: dict[str, frozenset[str]] = {}

    async def _connected(self) -> MongoConnectionManager:
        if self._connection is None:
            self._connection = MongoConnectionManager(
                self._uri, database=self._database, server_selection_timeout=self._timeout
            )
            await self._connection.connect()
        return self._connection

    def _lane(
        self, conn: MongoConnectionManager, strategy: PositionStrategy, tag: str, name: str
    ) -> Lane:
        store = MongoEventStore(
            conn,
            registry=self._registry,
            events_collection=f"{tag}_events",
            counters_collection=f"{tag}_counters",
            positions=strategy,
        )
        return Lane(
            name=name,
            strategy=strategy,
            store=store,
            checkpoints=MongoCheckpointStore(conn, f"{tag}_checkpoints"),
            snapshots=MongoSnapshotStore(conn, f"{tag}_snapshots"),
            read_models=MongoReadModels(conn, f"{tag}_rm_"),
            dcb=dcb_for(store),
            points=self._points.get(strategy, frozenset()),
            tag=tag,
        )

    async def open(self) -> list[Lane]:
        conn = await self._connected()
        for strategy in self._strategies:
            if strategy not in self._points:
                probing = self._lane(conn, strategy, f"probe_{strategy[:3]}", "probe")
                self._points[strategy] = await probe(probing)
        return [
            self._lane(conn, strategy, strategy[:3], f"mongo/{strategy}")
            for strategy in self._strategies
        ]

    async def reset(self) -> None:
        conn = await self._connected()
        for collection in await conn.database.list_collection_names():
            await conn.database.drop_collection(collection)

    async def close(self) -> None:
        if self._connection is not None:
            await self.reset()
            await self._connection.disconnect()
            self._connection = None


# -- probing race points ------------------------------------------------------------------------


def _probe_event(aggregate_id: str, version: int) -> StoredEvent:
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type="Probed",
        aggregate_id=aggregate_id,
        aggregate_type="Probe",
        version=version,
        payload={"n": version},
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def probe(lane: Lane) -> frozenset[str]:
    """The race points ``lane``'s code reaches, found by running one operation per point with
    the point armed (probe data: the lane is thrown away)."""
    store = lane.store

    async def nothing() -> None:
        return None

    async def subscriber_pass() -> None:
        handler = _ignore
        await Subscriber(
            store, "probe", handler, checkpoints=lane.checkpoints
        ).run_until_caught_up()

    async def takeover(name: str) -> None:
        await lane.checkpoints.claim(name, "first", lease=0.001)

        async def taken() -> bool:
            return (await lane.checkpoints.claim(name, "second", lease=60)).took_over

        await eventually(taken, "a lease of a millisecond expires")

    operations: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        (APPEND_POSITIONS_TAKEN.name, lambda: store.append("probe", [_probe_event("probe", 1)], 0)),
        (UOW_BEFORE_COMMIT.name, lambda: store.backend.run(lambda uow: nothing())),
        (FOLLOW_HEAD_READ.name, lane.read_log),
        (BATCH_HANDLED.name, subscriber_pass),
        (LEASE_EXPIRED_SEEN.name, lambda: takeover("probe-expired")),
        (LEASE_TAKEN_OVER.name, lambda: takeover("probe-taken")),
    ]
    dcb = lane.dcb
    if dcb is not None:
        two_items = Query((QueryItem(tags=("probe:a",)), QueryItem(tags=("probe:b",))))
        operations += [
            (DCB_READ_HEAD_TAKEN.name, lambda: dcb.read(two_items)),
            (DCB_READ_BETWEEN_ITEMS.name, lambda: dcb.read(two_items)),
            (
                DCB_APPEND_BEFORE_CHECK.name,
                lambda: dcb.append(
                    [TaggedEvent("Probed", {}, ("probe:a",))], AppendCondition(two_items, 0)
                ),
            ),
        ]
    marked = set()
    for name, operation in operations:
        async with acting_at(name, nothing, times=1_000) as point:
            before = point.reached_count
            await operation()
            if point.reached_count > before:
                marked.add(name)
    return frozenset(marked)


async def _ignore(*_: Any) -> None:
    return None

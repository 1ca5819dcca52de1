"""The consumers' contracts: conditional checkpoints, leases with standby and takeover,
subscribers with exactly-once effects, snapshots that never move backwards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from .._aggregates.store import AggregateStore
from .._core.errors import (
    CheckpointConflictError,
    ConcurrencyError,
    ConfigurationError,
    EventlabError,
)
from .._core.records import ExpectedVersion, StoredEvent
from .._follow.subscriber import Subscriber
from ..ports import EventStore, Snapshot, UnitOfWork
from ..testing import eventually
from ._support import NeedsAStore, contract_event, unique


async def _in_a_failed_unit(
    store: EventStore, write: Callable[[UnitOfWork], Awaitable[None]]
) -> None:
    """``write`` in a unit of work that then fails (its handler raises after it)."""

    async def failing(uow: UnitOfWork) -> None:
        await write(uow)
        raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError, match="the handler failed"):
        await store.backend.run(failing)


class CheckpointContract(NeedsAStore):
    """Checkpoints are conditional; a lease names the one runner of a consumer."""

    async def test_conditional_and_forward_only_saves(self, contract_store: EventStore) -> None:
        checkpoints = contract_store.backend.checkpoints()
        name = unique()
        assert await checkpoints.get(name) is None and await checkpoints.position(name) == 0
        await checkpoints.save(name, 5, expected=0)
        await checkpoints.save(name, 9, expected=5, gaps=[6])
        for stale in (5, 0):
            with pytest.raises(CheckpointConflictError):
                await checkpoints.save(name, 12, expected=stale)
        await checkpoints.save(name, 3)  # at-least-once saves only move forward
        stored = await checkpoints.get(name)
        assert stored is not None and (stored.position, stored.gaps) == (9, (6,))
        assert name in [c.name for c in await checkpoints.all()]
        assert await checkpoints.delete(name) and not await checkpoints.delete(name)

    async def test_a_save_in_a_unit_of_work_commits_with_it(
        self, contract_store: EventStore
    ) -> None:
        checkpoints = contract_store.backend.checkpoints()
        name = unique()

        async def save(uow: UnitOfWork) -> None:
            await checkpoints.save(name, 7, expected=0, uow=uow)

        await _in_a_failed_unit(contract_store, save)
        assert await checkpoints.get(name) is None

    async def test_leases_standby_release_and_takeover(self, contract_store: EventStore) -> None:
        checkpoints = contract_store.backend.checkpoints()
        name = unique()
        assert (await checkpoints.claim(name, "a", lease=30, holder="first")).granted
        refused = await checkpoints.claim(name, "b", lease=30)
        assert not refused.granted and refused.holder == "first"
        assert await checkpoints.renew(name, "a", lease=30)
        assert not await checkpoints.renew(name, "b", lease=30)
        await checkpoints.release(name, "a")
        assert (await checkpoints.claim(name, "b", lease=0.05)).granted

        async def expired() -> bool:
            return (await checkpoints.claim(name, "c", lease=30)).granted

        await eventually(expired, "an expired lease being taken over")
        assert not await checkpoints.renew(name, "b", lease=30), "b lost it to c"
        assert await checkpoints.get(name) is None, "a lease alone is no checkpoint"
        with pytest.raises(CheckpointConflictError):
            await checkpoints.save(name, 0, expected=0, owner="b")
        await checkpoints.save(name, 0, expected=0, owner="c")
        checkpoint = await checkpoints.get(name)
        assert checkpoint is not None and (checkpoint.owner, checkpoint.position) == ("c", 0)

    async def test_the_owner_fences_saves(self, contract_store: EventStore) -> None:
        checkpoints = contract_store.backend.checkpoints()
        name = unique()
        assert (await checkpoints.claim(name, "a", lease=0.05)).granted
        await checkpoints.save(name, 1, expected=0, owner="a")

        async def taken_over() -> bool:
            return (await checkpoints.claim(name, "b", lease=30)).granted

        await eventually(taken_over, "a takeover")
        with pytest.raises(CheckpointConflictError):
            await checkpoints.save(name, 2, expected=1, owner="a")
        await checkpoints.save(name, 2, expected=1, owner="b")

        async def holds(uow: UnitOfWork) -> tuple[bool, bool]:
            return (
                await checkpoints.holds(name, "b", uow),
                await checkpoints.holds(name, "a", uow),
            )

        assert await contract_store.backend.run(holds) == (True, False)

    async def test_hostile_checkpoint_arguments(self, contract_store: EventStore) -> None:
        checkpoints = contract_store.backend.checkpoints()
        for call in (
            lambda: checkpoints.save({"$ne": 1}, 1),  # type: ignore[arg-type]
            lambda: checkpoints.save("n", -1),
            lambda: checkpoints.save("n", 1, gaps=["x"]),  # type: ignore[list-item]
            lambda: checkpoints.save("n", 2**64),
            lambda: checkpoints.save("n", 1, gaps={"$each": [1]}),  # type: ignore[dict-item]
            lambda: checkpoints.save("n", 1, expected=True),
            lambda: checkpoints.save("n", 1, owner={"$ne": None}),  # type: ignore[arg-type]
            lambda: checkpoints.claim("n", "o", lease=-1),
            lambda: checkpoints.claim("n", "o", lease=float("inf")),
            lambda: checkpoints.claim("n", "o", lease=float("nan")),
            lambda: checkpoints.claim("n", "o", lease="30"),  # type: ignore[arg-type]
            lambda: checkpoints.get(""),
        ):
            with pytest.raises(ConfigurationError):
                await call()
        assert await checkpoints.get("n") is None


class SubscriberContract(NeedsAStore):
    """A subscriber's effects in exactly-once mode commit with its checkpoint; one process
    runs a name, the others stand by."""

    async def test_exactly_once_effects_through_a_stop_and_a_restart(
        self, contract_store: EventStore
    ) -> None:
        name, ledger = unique("subscriber"), unique("ledger")
        for _ in range(6):
            sid = unique()
            await contract_store.append(sid, [contract_event(sid)], 0)
        total = await contract_store.count()

        async def record(event: StoredEvent, uow: UnitOfWork) -> None:
            # The effect: an event in a ledger stream, written with the checkpoint.
            await contract_store.append(
                ledger,
                [contract_event(ledger, 1, "Seen", of=str(event.event_id))],
                ExpectedVersion.ANY,
                uow=uow,
            )

        first = Subscriber(
            contract_store, name, record, batch_size=2, event_types=["ContractNoted"]
        )
        await first.run_until_caught_up()
        late = unique()
        await contract_store.append(late, [contract_event(late)], 0)
        again = Subscriber(
            contract_store, name, record, batch_size=2, event_types=["ContractNoted"]
        )
        await again.run_until_caught_up()
        seen = [e.payload["of"] for e in await contract_store.read_stream(ledger)]
        assert len(seen) == len(set(seen)) == total + 1, "each event's effect once"
        (late_event,) = await contract_store.read_stream(late)
        assert (again.position or 0) >= (late_event.position or 0)

    async def test_at_least_once_saves_after_the_handler(self, contract_store: EventStore) -> None:
        sid = unique()
        await contract_store.append(sid, [contract_event(sid) for _ in range(3)], 0)
        seen: list[int] = []

        async def remember(event: StoredEvent) -> None:
            seen.append(event.position or 0)

        subscriber = Subscriber(contract_store, unique(), remember, mode="at_least_once")
        await subscriber.run_until_caught_up()
        assert seen == sorted(seen) and len(seen) == await contract_store.count()
        assert subscriber.position == (await contract_store.log.head()).position

    async def test_two_runners_of_one_name_one_runs_the_other_stands_by(
        self, contract_store: EventStore
    ) -> None:
        name = unique("pair")
        handled: list[str] = []

        async def handler(event: StoredEvent, uow: Any) -> None:
            handled.append(str(event.event_id))

        first = Subscriber(contract_store, name, handler, lease=0.5, poll_interval=0.02)
        second = Subscriber(contract_store, name, handler, lease=0.5, poll_interval=0.02)
        first.start()

        async def first_ready() -> bool:
            return first.position is not None

        await eventually(first_ready, "the first runner starting")
        second.start()
        sid = unique()
        await contract_store.append(sid, [contract_event(sid)], 0)

        async def first_has_it() -> bool:
            return first.handled == 1

        await eventually(first_has_it, "the runner handling a new event")
        assert second.handled == 0 and second.running, "the second stands by"
        await first.stop()
        await contract_store.append(sid, [contract_event(sid, 2)], 1)

        async def second_took_over() -> bool:
            return second.handled == 1

        await eventually(second_took_over, "the standby taking over")
        await second.stop()
        assert len(handled) == len(set(handled)) == 2


class SnapshotContract(NeedsAStore):
    """The newest snapshot of an aggregate; never moved backwards; checked like a stream."""

    async def test_newer_snapshots_only(self, contract_store: EventStore) -> None:
        snapshots = contract_store.backend.snapshots()
        aggregate = unique("order")
        assert await snapshots.get(aggregate) is None
        assert await snapshots.save(Snapshot(aggregate, "Order", 5, 1, {"total": 5}))
        assert not await snapshots.save(Snapshot(aggregate, "Order", 3, 1, {"total": 3}))
        assert await snapshots.save(Snapshot(aggregate, "Order", 9, 1, {"total": 9}))
        stored = await snapshots.get(aggregate)
        assert stored is not None and (stored.version, stored.state) == (9, {"total": 9})
        assert await snapshots.delete(aggregate) and await snapshots.get(aggregate) is None

    async def test_a_snapshot_in_a_failed_unit_of_work_is_not_kept(
        self, contract_store: EventStore
    ) -> None:
        snapshots = contract_store.backend.snapshots()
        aggregate = unique("order")

        async def save(uow: UnitOfWork) -> None:
            assert await snapshots.save(Snapshot(aggregate, "Order", 2, 1, {"n": 2}), uow=uow)
            assert (await snapshots.get(aggregate, uow=uow)) is not None, "seen inside"

        await _in_a_failed_unit(contract_store, save)
        assert await snapshots.get(aggregate) is None

    async def test_hostile_snapshots_are_typed_errors(self, contract_store: EventStore) -> None:
        snapshots = contract_store.backend.snapshots()
        for fields in (
            {"aggregate_id": {"$gt": ""}},
            {"version": -1},
            {"version": "9"},
            {"schema_version": 2**63},
            {"state": [1]},
        ):
            with pytest.raises(EventlabError):
                values: dict[str, Any] = {
                    "aggregate_id": "a",
                    "aggregate_type": "Order",
                    "version": 1,
                    "schema_version": 1,
                    "state": {},
                    **fields,
                }
                await snapshots.save(Snapshot(**values))
        with pytest.raises(EventlabError):
            await snapshots.save(Snapshot("a", "Order", 1, 1, {"n": 2**64}))
        assert await snapshots.get("a") is None

    async def test_aggregates_load_from_snapshots_as_from_their_events(
        self, contract_store: EventStore
    ) -> None:
        from ..samples import Order, generate_orders
        from ..samples.orders import OrderCancelled

        aggregates = AggregateStore(contract_store, snapshots=contract_store.backend.snapshots())
        order = next(generate_orders(1))
        await aggregates.save(order)
        loaded = await aggregates.load(Order, order.id)
        assert await aggregates.snapshot(loaded)
        from_snapshot = await aggregates.load(Order, order.id)
        replayed = await AggregateStore(contract_store).load(Order, order.id)
        assert from_snapshot.snapshot_state() == replayed.snapshot_state()
        first = await AggregateStore(contract_store).load(Order, order.id)
        second = await AggregateStore(contract_store).load(Order, order.id)
        first.record(OrderCancelled(reason="first"))
        await aggregates.save(first)
        second.record(OrderCancelled(reason="second"))  # decided on a version now stale
        with pytest.raises(ConcurrencyError):
            await aggregates.save(second)

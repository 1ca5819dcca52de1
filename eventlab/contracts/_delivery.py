"""Delivery across restarts and reruns: a consumer's stored checkpoint always wins over where
it was told to start, and a unit of work run again stores an aggregate's events exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any, ClassVar

import pytest

from .._aggregates.store import AggregateStore
from .._core.errors import WriteConflictError
from .._core.records import StoredEvent
from .._follow.delivery import DeliveryMode
from .._follow.projector import Projector
from .._follow.subscriber import Subscriber
from ..ports import EventStore, Snapshot, UnitOfWork
from ..samples import Order, OrderTotals
from ..samples.orders import Address, OrderCancelled
from ._support import NeedsAStore, contract_event, unique


class _Rollback(Exception):
    """Ends a unit of work that must not commit."""


def _placed_order(order_id: str, kind: type[Order] = Order) -> Order:
    order = kind(order_id)
    order.place(uuid.uuid4(), "EUR", Address(street="1 Rua Augusta", city="Lisbon", country="PT"))
    return order


class DeliveryContract(NeedsAStore):
    """Where a consumer starts, and what a unit of work run again stores."""

    MODES: ClassVar[tuple[DeliveryMode, ...]] = ("exactly_once", "at_least_once")

    @pytest.mark.parametrize("mode", MODES)
    async def test_a_consumer_started_at_the_end_keeps_its_place_across_restarts(
        self, contract_store: EventStore, mode: DeliveryMode
    ) -> None:
        sid, name = unique(), unique("mailer")
        await contract_store.append(sid, [contract_event(sid)], 0)
        seen: list[int] = []

        async def handler(event: StoredEvent, *uow: Any) -> None:
            if event.aggregate_id == sid:
                seen.append(event.position or 0)

        def subscriber() -> Subscriber:
            return Subscriber(contract_store, name, handler, mode=mode, start="end")

        await subscriber().run_until_caught_up()  # nothing new: its place is the end
        checkpoint = await contract_store.backend.checkpoints().get(name)
        assert checkpoint is not None, "the first run stores where it starts"
        (while_down,) = await contract_store.append(sid, [contract_event(sid, 2)], 1)
        await subscriber().run_until_caught_up()  # a restart: the checkpoint wins
        (later,) = await contract_store.append(sid, [contract_event(sid, 3)], 2)
        await subscriber().run_until_caught_up()
        assert seen == [while_down.position, later.position]

    async def test_a_checkpoint_at_zero_is_a_checkpoint(self, contract_store: EventStore) -> None:
        sid, name = unique(), unique("from-zero")
        await contract_store.backend.checkpoints().save(name, 0, expected=0)
        (first,) = await contract_store.append(sid, [contract_event(sid)], 0)
        seen: list[int] = []

        async def handler(event: StoredEvent, uow: Any) -> None:
            seen.append(event.position or 0)

        await Subscriber(contract_store, name, handler, start="end").run_until_caught_up()
        assert first.position in seen, "a checkpoint stored at 0 wins over start='end'"

    async def test_a_projector_started_at_the_end_keeps_its_place(
        self, contract_store: EventStore
    ) -> None:
        before = _placed_order(unique("order"))
        await AggregateStore(contract_store).save(before)
        first = Projector(contract_store, OrderTotals(), prefix=f"{unique('rm')}_", start="end")
        await first.run_until_caught_up()
        order = _placed_order(unique("order"))
        await AggregateStore(contract_store).save(order)  # while no projector runs
        again = Projector(contract_store, OrderTotals(), read_models=first.read_models, start="end")
        await again.run_until_caught_up()
        live = [row["_id"] for row in await again.rows()]
        assert order.id in live and before.id not in live
        await again.rebuild()  # a rebuild builds from the first event, wherever it started
        assert {before.id, order.id} <= {row["_id"] for row in await again.rows()}

    async def test_a_unit_of_work_run_again_stores_the_aggregates_events_once(
        self, contract_store: EventStore
    ) -> None:
        aggregates = AggregateStore(contract_store)
        order = _placed_order(unique("order"))
        attempts = 0

        async def place(uow: UnitOfWork) -> None:
            nonlocal attempts
            attempts += 1
            await aggregates.save(order, uow=uow)
            await aggregates.save(order, uow=uow)  # nothing new since: appends nothing
            if attempts == 1:  # a transient failure after the save: the unit runs again
                raise WriteConflictError("another transaction wrote a document of this unit")
            assert order.pending_events, "pending until the unit commits"

        await contract_store.backend.run(place)
        assert attempts == 2 and not order.pending_events
        stored = await contract_store.read_stream(order.id)
        assert [e.version for e in stored] == [1] and order.version == 1

    async def test_events_recorded_after_a_save_in_a_unit_stay_pending(
        self, contract_store: EventStore
    ) -> None:
        aggregates = AggregateStore(contract_store)
        order = _placed_order(unique("order"))

        async def save_then_record(uow: UnitOfWork) -> None:
            await aggregates.save(order, uow=uow)
            order.record(OrderCancelled(reason="changed their mind"))  # not saved in this unit

        await contract_store.backend.run(save_then_record)
        assert [type(e).__name__ for e in order.pending_events] == ["OrderCancelled"]

        async def failing(uow: UnitOfWork) -> None:
            await aggregates.save(order, uow=uow)
            raise _Rollback

        with pytest.raises(_Rollback):
            await contract_store.backend.run(failing)
        assert len(order.pending_events) == 1, "a unit that did not commit leaves them pending"
        await aggregates.save(order)
        assert not order.pending_events
        assert len(await contract_store.read_stream(order.id)) == 2

    async def test_a_snapshot_that_fails_in_a_unit_of_work_fails_the_unit(
        self, contract_store: EventStore
    ) -> None:
        class SnapshottedOrder(Order):
            aggregate_type = "Order"
            snapshot_every = 1

        snapshots = contract_store.backend.snapshots()
        aggregates = AggregateStore(contract_store, snapshots=snapshots)
        order = _placed_order(unique("order"), SnapshottedOrder)
        holding, release = asyncio.Event(), asyncio.Event()

        async def hold(uow: UnitOfWork) -> None:  # another unit holds the snapshot document
            await snapshots.save(Snapshot(order.id, "Order", 99, 1, {"held": True}), uow=uow)
            holding.set()
            await release.wait()
            raise _Rollback

        holder = asyncio.ensure_future(contract_store.backend.run(hold))
        await holding.wait()
        attempts = 0

        async def place(uow: UnitOfWork) -> None:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # the other unit ends before this one runs again
                release.set()
                await asyncio.wait({holder})
            await aggregates.save(order, uow=uow)

        try:
            await contract_store.backend.run(place)
        finally:
            release.set()
            with contextlib.suppress(_Rollback):
                await holder
        assert attempts == 2, "the snapshot's conflict failed the first attempt"
        assert [e.version for e in await contract_store.read_stream(order.id)] == [1]
        taken = await snapshots.get(order.id)
        assert taken is not None and taken.version == 1 and not order.pending_events

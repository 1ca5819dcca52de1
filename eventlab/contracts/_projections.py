"""The read models' contracts, through the projector: the read model equals a replay of the
log, batches are exactly once across stops, a rebuild swaps in a whole read model and keeps
the old one readable, one rebuild at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .._core.errors import InvalidIdError, RebuildInProgressError
from .._follow.projector import Projector
from ..ports import EventStore
from ..samples import OrderTotals, generate_orders
from ..workbench import replay_projection
from ._support import NeedsAStore, unique


async def _orders(store: EventStore, count: int, seed: int = 7) -> None:
    from .._aggregates.store import AggregateStore

    aggregates = AggregateStore(store)
    for order in generate_orders(count, seed=seed):
        order.id = f"{order.id}-{seed}"  # another seed, other orders
        await aggregates.save(order)


async def _caught_up_order_totals(store: EventStore, **options: Any) -> Projector:
    """A projector of :class:`OrderTotals` over ``store``, run until it has caught up."""
    projector = Projector(store, OrderTotals(), **options)
    await projector.run_until_caught_up()
    return projector


def _rows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["_id"]: {k: v for k, v in row.items() if k != "_id"} for row in rows}


async def _replayed(store: EventStore) -> dict[str, dict[str, Any]]:
    from .._follow.catch_up import CatchUpSubscription

    events = await CatchUpSubscription(store.log, live=False).to_list()
    return replay_projection(OrderTotals(), events).rows.rows


class ProjectionContract(NeedsAStore):
    """The :class:`~eventlab.ports.ReadModelStore` port's guarantees, through the projector."""

    async def test_the_read_model_equals_a_replay_of_the_log(
        self, contract_store: EventStore
    ) -> None:
        await _orders(contract_store, 20)
        projector = await _caught_up_order_totals(contract_store, batch_size=7)
        assert _rows(await projector.rows()) == await _replayed(contract_store)
        frame = await projector.frame()
        assert len(frame) == 20 and frame.index.name == "_id"
        status = await projector.status()
        assert (status.behind, status.rows, status.generation, status.stale) == (0, 20, 1, False)

    async def test_batches_are_exactly_once_across_stops(self, contract_store: EventStore) -> None:
        await _orders(contract_store, 10)
        await _caught_up_order_totals(contract_store, batch_size=3)
        await _orders(contract_store, 10, seed=8)
        again = await _caught_up_order_totals(contract_store, batch_size=3)
        assert _rows(await again.rows()) == await _replayed(contract_store)

    async def test_a_live_projector_follows_new_events(self, contract_store: EventStore) -> None:
        projector = Projector(contract_store, OrderTotals(), poll_interval=0.02)
        projector.start()
        await _orders(contract_store, 5)

        async def caught_up() -> bool:
            return (await projector.status()).behind == 0 and len(await projector.rows()) == 5

        from ..testing import eventually

        await eventually(caught_up, "a live projector following the log")
        await projector.stop()
        assert _rows(await projector.rows()) == await _replayed(contract_store)

    async def test_a_rebuild_swaps_a_whole_read_model_and_keeps_the_old(
        self, contract_store: EventStore
    ) -> None:
        await _orders(contract_store, 12)
        projector = await _caught_up_order_totals(contract_store)
        before = _rows(await projector.rows())
        status = await projector.rebuild()
        assert status.generation == 2 and status.behind == 0
        assert _rows(await projector.rows()) == before
        assert _rows(await projector.read_models.rows(projector.name, 1)) == before, "kept"
        dropped = Projector(contract_store, OrderTotals(), keep_retired=0)
        assert (await dropped.rebuild()).generation == 3
        assert await projector.read_models.rows(projector.name, 1) == []
        assert _rows(await projector.rows()) == before

    async def test_one_rebuild_at_a_time(self, contract_store: EventStore) -> None:
        await _orders(contract_store, 8)
        first, second = (
            Projector(contract_store, OrderTotals()),
            Projector(contract_store, OrderTotals()),
        )
        outcomes = await asyncio.gather(first.rebuild(), second.rebuild(), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], RebuildInProgressError), outcomes
        assert (await first.status()).generation == 2
        assert _rows(await second.rows()) == await _replayed(contract_store)

    async def test_status_reports_what_the_read_model_lacks(
        self, contract_store: EventStore
    ) -> None:
        await _orders(contract_store, 4)
        projector = await _caught_up_order_totals(contract_store)
        assert (await projector.status()).behind == 0
        head = (await contract_store.log.head()).position
        await _orders(contract_store, 3, seed=9)
        moved = (await contract_store.log.head()).position - head
        status = await projector.status()
        assert status.behind == moved > 0 and status.seconds_behind >= 0
        assert status.rows == 4, "nothing applied before the projector runs"
        await projector.run_until_caught_up()
        assert ((await projector.status()).behind, (await projector.status()).rows) == (0, 7)

    async def test_a_read_model_exists_once_made_and_asking_makes_nothing(
        self, contract_store: EventStore
    ) -> None:
        read_models = contract_store.backend.read_models()
        name = unique("model")
        assert not await read_models.exists(name)
        assert not await read_models.exists(name), "asking made nothing"
        await read_models.state(name, 1)
        assert await read_models.exists(name)
        for hostile in ({"$gt": ""}, "", None, 1, "a\x00b"):
            with pytest.raises(InvalidIdError):
                await read_models.exists(hostile)  # type: ignore[arg-type]

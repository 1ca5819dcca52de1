"""Subscribers and projectors are supervised like the outbox relay: errors they may get over
are waited out with backoff, the others end the run and are raised, the health view says
which; stop() ends a run at any moment; a subscription keeps the latest gaps only.

In memory, with fakes of the ports where a failure is needed (never a mock of a driver)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from eventlab import (
    CommitOutcomeUnknownError,
    ConfigurationError,
    ConnectionFailedError,
    NotAuthorizedError,
    Projector,
    StoredEvent,
    Subscriber,
    SubscriptionError,
    TransactionTimeoutError,
    UnknownEventTypeError,
)
from eventlab._core import races as _races
from eventlab._follow.catch_up import CatchUpSubscription
from eventlab.contracts import contract_event, unique
from eventlab.memory import MemoryBackend, MemoryEventStore
from eventlab.ports import KEPT_GAPS, Abandonment, LogHead, LogSlice, UnitOfWork
from eventlab.samples import OrderTotals
from eventlab.testing import eventually

LEASE = 0.3


class FlakyCheckpoints:
    """A :class:`~eventlab.ports.CheckpointStore` whose ``claim`` fails with ``error`` while
    ``failing`` is set (a deployment that is out of reach for a while)."""

    def __init__(self, inner: Any, error: Exception) -> None:
        self._inner = inner
        self.error = error
        self.failing = asyncio.Event()
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def claim(self, *args: Any, **kwargs: Any) -> Any:
        if self.failing.is_set():
            self.failures += 1
            raise self.error
        return await self._inner.claim(*args, **kwargs)


def memory_store() -> MemoryEventStore:
    return MemoryEventStore(MemoryBackend())


async def append(store: MemoryEventStore, count: int = 1) -> list[StoredEvent]:
    stored = []
    for _ in range(count):
        sid = unique()
        stored += await store.append(sid, [contract_event(sid)], 0)
    return stored


async def nothing(events: Any, uow: Any) -> None:
    return None


async def test_a_standby_waits_out_errors_and_takes_over() -> None:
    store = memory_store()
    checkpoints = FlakyCheckpoints(store.backend.checkpoints(), ConnectionFailedError("down"))
    assert (await checkpoints.claim("s", "elsewhere", lease=60, holder="other")).granted
    handled: list[int] = []

    async def handler(event: StoredEvent, uow: UnitOfWork) -> None:
        handled.append(event.position or 0)

    standby = Subscriber(store, "s", handler, checkpoints=checkpoints, lease=LEASE)
    standby.start()

    async def standing_by() -> bool:
        return (await standby.health()).state == "standing_by"

    await eventually(standing_by, "the second runner standing by")
    checkpoints.failing.set()
    await eventually(lambda: checkpoints.failures >= 2, "claims failing while standing by")
    health = await standby.health()
    assert standby.running, "a transient error does not end a live run"
    assert health.state == "backing_off" and health.consecutive_errors >= 1
    assert health.last_error is not None and "ConnectionFailedError" in health.last_error
    checkpoints.failing.clear()
    await checkpoints.release("s", "elsewhere")
    (event,) = await append(store)
    await eventually(lambda: handled == [event.position], "the standby taking over")
    health = await standby.health()
    assert health.healthy and health.state == "following" and health.lag == 0
    assert health.last_success_at is not None and health.last_error_at is not None
    await standby.stop()
    assert (await standby.health()).state == "stopped"


class GivesUpOnce(MemoryBackend):
    """A backend whose first unit of work ends as a runner that gave up: out of time (nothing
    committed), or with its commit's outcome unknown (it did commit)."""

    def __init__(self, outcome: str) -> None:
        super().__init__()
        self.outcome = outcome
        self.armed = False

    async def run(self, work: Any, **options: Any) -> Any:
        if not self.armed:
            return await super().run(work, **options)
        self.armed = False
        if self.outcome == "out_of_time":
            raise TransactionTimeoutError("the batch's transaction ran out of time")
        await super().run(work, **options)
        raise CommitOutcomeUnknownError("the commit's outcome is unknown")


@pytest.mark.parametrize("outcome", ["out_of_time", "unknown_commit"])
async def test_a_batch_whose_transaction_gave_up_has_its_effects_once(outcome: str) -> None:
    backend = GivesUpOnce(outcome)
    store = MemoryEventStore(backend)
    events = await append(store, 3)
    backend.armed = True  # the subscriber's first batch
    ledger = unique("ledger")

    async def record(event: StoredEvent, uow: UnitOfWork) -> None:
        version = await store.get_current_version(ledger, uow=uow)
        effect = contract_event(ledger, version + 1, "Seen", of=event.position)
        await store.append(ledger, [effect], version, uow=uow)

    subscriber = Subscriber(store, "gave-up", record, event_types=["ContractNoted"])
    subscriber.start()

    async def caught_up_after_the_error() -> bool:
        health = await subscriber.health()
        return health.last_error is not None and health.state == "following" and health.lag == 0

    await eventually(caught_up_after_the_error, "the subscriber going on after the error")
    effects = [e.payload["of"] for e in await store.read_stream(ledger)]
    assert effects == [e.position for e in events], "each event's effect exactly once"
    health = await subscriber.health()
    assert health.consecutive_errors == 0 and health.state == "following"
    assert not backend.armed and health.last_error is not None
    assert ("Timeout" if outcome == "out_of_time" else "Unknown") in health.last_error
    await subscriber.stop()


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a bug in the handler"),
        NotAuthorizedError("the user may not write there", code=13),
        UnknownEventTypeError("Renamed"),
        ConfigurationError("a wrong setting"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_an_error_that_will_fail_again_ends_the_run_and_is_raised(error: Exception) -> None:
    store = memory_store()
    await append(store)

    async def failing(events: Any, uow: Any) -> None:
        raise error

    subscriber = Subscriber(store, "final", None, on_batch=failing)
    task = subscriber.start()
    with pytest.raises(type(error)):
        await task
    health = await subscriber.health()
    assert health.state == "failed" and not health.healthy
    assert type(error).__name__ in (health.last_error or "")
    with pytest.raises(type(error)):
        await subscriber.stop()  # whoever stops it hears why it ended


async def test_a_projector_waits_out_errors_of_its_read_model() -> None:
    store = memory_store()

    class FlakyReadModels:
        def __init__(self, inner: Any) -> None:
            self._inner = inner
            self.failures = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

        async def state(self, name: str, version: int) -> Any:
            if self.failures < 2:
                self.failures += 1
                raise ConnectionFailedError("down")
            return await self._inner.state(name, version)

    read_models = FlakyReadModels(store.backend.read_models())
    projector = Projector(store, OrderTotals(), read_models=read_models)  # type: ignore[arg-type]
    projector.start()

    async def following() -> bool:
        return (await projector.health()).state == "following"

    await eventually(following, "the projector getting over two errors")
    assert read_models.failures == 2
    await projector.stop()


# -- stop(), at every moment ------------------------------------------------------------------


@pytest.mark.parametrize("point", ["subscriber.claimed", "subscriber.subscribing"])
async def test_stop_at_any_moment_of_a_starting_run_ends_it(point: str) -> None:
    store = memory_store()
    subscriber = Subscriber(store, "stopped", None, on_batch=nothing, start="end")
    async with _races.paused_at(point) as pause:
        task = subscriber.start()
        await pause.reached.wait()
        stopper = asyncio.ensure_future(subscriber.stop(timeout=60))
        await asyncio.sleep(0)  # stop() has asked the run to end, and waits for it
        pause.resume()
        await stopper
    assert task.done() and not task.cancelled(), "the run ended by itself, not cancelled"
    assert task.exception() is None


async def test_stop_right_after_start_ends_the_run() -> None:
    subscriber = Subscriber(memory_store(), "quick", None, on_batch=nothing)
    task = subscriber.start()
    await subscriber.stop(timeout=60)
    assert task.done() and not task.cancelled()


@pytest.mark.parametrize("kind", ["subscriber", "projector"])
async def test_a_consumer_runs_once_at_a_time_and_again_after_a_stop(kind: str) -> None:
    store = memory_store()
    consumer: Subscriber | Projector = (
        Subscriber(store, "once", None, on_batch=nothing)
        if kind == "subscriber"
        else Projector(store, OrderTotals())
    )
    first = consumer.start()
    with pytest.raises(SubscriptionError, match="already running"):
        consumer.start()
    await consumer.stop(timeout=60)
    assert first.done() and not first.cancelled() and first.exception() is None
    again = consumer.start()  # a stopped consumer starts again
    assert again is not first and not again.done()
    await consumer.stop(timeout=60)
    assert again.done() and again.exception() is None


@pytest.mark.parametrize("moment", ["standing_by", "backing_off"])
async def test_stop_while_waiting_ends_the_run(moment: str) -> None:
    store = memory_store()
    checkpoints = FlakyCheckpoints(store.backend.checkpoints(), ConnectionFailedError("down"))
    if moment == "standing_by":
        assert (await checkpoints.claim("w", "elsewhere", lease=60)).granted
    else:
        checkpoints.failing.set()
    subscriber = Subscriber(store, "w", None, on_batch=nothing, checkpoints=checkpoints, lease=60)
    task = subscriber.start()

    async def waiting() -> bool:
        return (await subscriber.health()).state == moment

    await eventually(waiting, f"the run {moment}")
    await subscriber.stop(timeout=60)
    assert task.done() and not task.cancelled()


async def test_stop_while_a_projector_starts_its_subscriber_ends_it() -> None:
    projector = Projector(memory_store(), OrderTotals())
    async with _races.paused_at("projector.generation_read") as pause:
        task = projector.start()
        await pause.reached.wait()
        stopper = asyncio.ensure_future(projector.stop(timeout=60))
        await asyncio.sleep(0)
        pause.resume()
        await stopper
    assert task.done() and not task.cancelled() and task.exception() is None


# -- gaps: the latest ones --------------------------------------------------------------------


class GappyLog:
    """An :class:`~eventlab.ports.EventLog` whose settled range holds an event at every third
    position only (a restored store's holes: each passed and reported as a gap)."""

    def __init__(self, head: int) -> None:
        self._head = head

    async def head(self) -> LogHead:
        return LogHead(self._head, "transactional", 0)

    async def read(self, after: int, until: int, **options: Any) -> LogSlice:
        events = [
            replace(contract_event(f"s-{p}"), position=p)
            for p in range(after + 1, until + 1)
            if p % 3 == 0
        ]
        return LogSlice(events, until)

    async def abandon(self, positions: Sequence[int]) -> Abandonment:
        return Abandonment(abandoned=tuple(positions))

    def wakeups(self, **options: Any) -> Any:
        return memory_store().log.wakeups(mode="poll")


async def test_a_subscription_keeps_the_latest_gaps_only() -> None:
    head = 3 * (KEPT_GAPS + 200)
    reported: list[int] = []
    subscription = CatchUpSubscription(
        GappyLog(head), live=False, page_size=500, on_gap=reported.extend
    )
    events = await subscription.to_list()
    assert len(events) == head // 3
    every_gap = [p for p in range(1, head + 1) if p % 3]
    assert reported == every_gap, "each gap is still reported once"
    assert subscription.gaps_passed == len(every_gap)
    assert subscription.gaps == every_gap[-KEPT_GAPS:], "the latest KEPT_GAPS, in order"


async def test_after_commit_takes_a_function_only() -> None:
    store = memory_store()

    async def work(uow: UnitOfWork) -> None:
        uow.after_commit("not a function")  # type: ignore[arg-type]

    with pytest.raises(ConfigurationError, match="callable"):
        await store.backend.run(work)

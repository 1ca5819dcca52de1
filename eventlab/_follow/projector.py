"""The projector: a :class:`~eventlab.Projection` run into a read model on any backend, with
exactly-once batches, rebuilds beside the live read model, and its lag as a number.

It depends on the ports only: the store's log, a :class:`~eventlab.ports.CheckpointStore`
(checkpoints, leases, the rebuild's claim) and a :class:`~eventlab.ports.ReadModelStore`
(generations and the pointer to the live one). docs/projections.md says why each step is safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._core.checks import check_page_size
from .._core.errors import ConfigurationError, InternalSignal, TransientError
from .._core.race_points import PROJECTOR_GENERATION_READ as GENERATION_READ
from .._core.records import StoredEvent
from ..ports import CheckpointStore, EventStore, ReadModelStore, UnitOfWork
from .projections import ProjectionStatus, check_projection
from .rebuild import Rebuild
from .subscriber import Subscriber
from .supervision import ConsumerHealth, Runs

if TYPE_CHECKING:
    import pandas as pd

    from .projections import Projection


DEFAULT_KEEP_RETIRED = 300.0
"""Seconds a read model replaced by a rebuild stays readable (docs/projections.md)."""


class _Superseded(InternalSignal):
    """The generation this projector writes is no longer the live one (a rebuild swapped)."""


class Projector:
    """Runs a :class:`Projection` into a read model.

    Each batch's row writes and the checkpoint commit in one transaction (exactly-once effect).
    :meth:`rebuild` builds a new generation beside the live one and swaps the pointer; the
    replaced generation stays readable for ``keep_retired`` seconds, so a reader that resolved
    the live one just before a swap still reads a whole read model. One process runs a
    projection at a time (a lease, as :class:`~eventlab.Subscriber`); one rebuild runs at a
    time (a claim: a second gets :class:`~eventlab.RebuildInProgressError`).

    :param read_models: where the read model lives (default: the store's backend's, under
        ``prefix``).
    :param checkpoints: where its checkpoints and leases live (default: the backend's).
    """

    def __init__(
        self,
        store: EventStore,
        projection: Projection,
        *,
        prefix: str = "rm_",
        batch_size: int = 200,
        checkpoints: CheckpointStore | None = None,
        read_models: ReadModelStore | None = None,
        keep_retired: float = DEFAULT_KEEP_RETIRED,
        **subscription_options: Any,
    ) -> None:
        self.store = store
        self.projection = check_projection(projection)
        self.name = type(projection).name
        self.read_models = read_models or store.backend.read_models(prefix)
        # The longest location this projection will use, checked before anything is written
        # (a name the backend refuses must not fail at the first batch).
        self.read_models.location(self.name, 2**31)
        self.batch_size = check_page_size(batch_size, "batch_size")
        if isinstance(keep_retired, bool) or not isinstance(keep_retired, int | float):
            raise ConfigurationError(f"keep_retired must be a number of seconds: {keep_retired!r}")
        if keep_retired < 0:
            raise ConfigurationError(f"keep_retired must be >= 0: {keep_retired!r}")
        self.keep_retired = float(keep_retired)
        self.checkpoints = checkpoints or store.backend.checkpoints()
        # Checked now: an option the subscription refuses fails at construction.
        Subscriber(self.store, "check", None, on_batch=_no_batch, **subscription_options)
        self._options = subscription_options
        self._subscriber: Subscriber | None = None
        self._runs = Runs("projector", self.name)

    def checkpoint_name(self, generation: int) -> str:
        return f"projection:{self.name}:{generation}"

    async def _live_generation(self) -> int:
        return (await self.read_models.state(self.name, type(self.projection).version)).generation

    # -- reading -------------------------------------------------------------------------------

    async def collection(self) -> Any:
        """The live read model's collection (a backend with collections only; resolve it per
        read: a rebuild swaps it, and the one replaced stays readable ``keep_retired`` s)."""
        locate = getattr(self.read_models, "collection", None)
        if locate is None:
            raise ConfigurationError(
                f"{type(self.read_models).__name__} keeps read models in no collection: use "
                "rows() or frame()"
            )
        return locate(self.name, await self._live_generation())

    async def rows(self) -> list[dict[str, Any]]:
        """Every row of the live read model, ``_id`` first.

        Never an empty or half-built read model: the generation read is checked again after
        the read, and read anew if it was dropped meanwhile (a reader slower than
        ``keep_retired``).
        """
        version = type(self.projection).version
        for _ in range(5):
            generation = await self._live_generation()
            rows = await self.read_models.rows(self.name, generation)
            if generation in (await self.read_models.state(self.name, version)).readable:
                return rows
        raise TransientError(f"{self.name}: the read model kept being replaced while read")

    async def frame(self) -> pd.DataFrame:
        """The live read model as a DataFrame indexed by row key."""
        import pandas as pd

        rows = await self.rows()
        frame = pd.DataFrame(rows)
        return frame.set_index("_id") if "_id" in frame else frame

    # -- running -----------------------------------------------------------------------------

    def _writer(self, generation: int, *, guard: bool) -> Callable[..., Awaitable[None]]:
        async def write(events: tuple[StoredEvent, ...], uow: UnitOfWork | None) -> None:
            # A write to the read model's state, so that a swap and this batch conflict
            # (snapshot isolation only sees write-write conflicts): after a rebuild swapped
            # generations, an old projector can no longer write to its old read model.
            if (
                guard
                and uow is not None
                and not await self.read_models.still_live(self.name, generation, uow)
            ):
                raise _Superseded(f"{self.name}: generation {generation} is no longer live")
            rows = self.read_models.batch(self.name, generation, uow)
            # Most projections key rows by aggregate id: read those in one query per batch;
            # any other key a handler asks for is read on first use.
            await rows.prefetch(e.aggregate_id for e in events)
            for event in events:
                await self.projection.apply(rows, event)
            await rows.flush()

        return write

    def _subscriber_for(self, generation: int, *, guard: bool) -> Subscriber:
        # A rebuild (no guard) builds from the first event, wherever the live one started.
        options = self._options if guard else {**self._options, "start": "beginning"}
        return Subscriber(
            self.store,
            self.checkpoint_name(generation),
            None,
            on_batch=self._writer(generation, guard=guard),
            checkpoints=self.checkpoints,
            batch_size=self.batch_size,
            event_types=type(self.projection).event_types(),
            **options,
        )

    async def run(self) -> None:
        """Keep the live read model up to date until :meth:`stop`; follows a rebuild's swap to
        the new generation by itself. Supervised as :meth:`Subscriber.run
        <eventlab.Subscriber.run>`: it backs off after errors it may get over and raises the
        others."""
        await self._run(self._runs.new_run(), to_the_head=False)

    async def run_until_caught_up(self) -> None:
        """Bring the live read model to the head of the log and return; every error is
        raised."""
        await self._run(self._runs.new_run(), to_the_head=True)

    async def _run(self, stop: asyncio.Event, *, to_the_head: bool) -> None:
        while not stop.is_set():
            try:
                generation = await self._live_generation()
            except Exception as exc:
                await self._runs.after_error(exc, stop, to_the_head=to_the_head)
                continue
            self._runs.record.success()
            if GENERATION_READ.armed:
                await GENERATION_READ.reach()
            subscriber = self._subscriber_for(generation, guard=True)
            self._subscriber = subscriber
            if stop.is_set():  # stopped while the generation was read: nothing to start
                return
            try:
                if to_the_head:
                    await subscriber.run_until_caught_up()
                else:
                    await subscriber.run()
            except _Superseded:
                continue
            return

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (live, supervised)."""
        return self._runs.start(lambda stop: self._run(stop, to_the_head=False))

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop at whatever moment the run is (after the batch in hand); raises the error a
        started run failed with, if any."""

        async def stop_subscriber() -> None:
            if self._subscriber is not None:
                await self._subscriber.stop(timeout)

        await self._runs.stop(timeout, stop_subscriber)

    async def health(self) -> ConsumerHealth:
        """The health of the run (see :meth:`Subscriber.health <eventlab.Subscriber.health>`)."""
        subscriber = self._subscriber
        record = self._runs.record
        if subscriber is None or record.backoff.failures:
            return record.health(self.name, None, 0, None)
        return await subscriber.health()

    # -- rebuilding ----------------------------------------------------------------------------

    async def rebuild(self) -> ProjectionStatus:
        """Build the read model again from the first event, beside the live one, and swap.

        Readers keep reading the live generation while a new one is built; the swap is one
        transaction that moves the pointer only once the new generation has caught up with the
        live one, and only while this rebuild still holds its claim. The replaced generation
        stays readable for ``keep_retired`` seconds and is dropped by a later rebuild.

        :raises RebuildInProgressError: another rebuild of this projection is running.
        """
        await Rebuild(
            self.name,
            type(self.projection).version,
            self.checkpoints,
            self.read_models,
            self.store.backend,
            self.keep_retired,
            self.checkpoint_name,
            lambda new: self._subscriber_for(new, guard=False),
        ).run()
        return await self.status()

    # -- status --------------------------------------------------------------------------------

    async def status(self) -> ProjectionStatus:
        """Generation, checkpoint, lag in positions and seconds, rows."""
        live = await self.read_models.state(self.name, type(self.projection).version)
        position = await self.checkpoints.position(self.checkpoint_name(live.generation))
        head = (await self.store.log.head()).position
        # The next event after the checkpoint, for the lag in seconds (a plain read: status
        # never waits for, or abandons, a hole).
        oldest = (
            (await self.store.log.read(position, head, limit=1)).events if head > position else []
        )
        seconds = 0.0
        if oldest and oldest[0].recorded_at is not None:
            seconds = max(0.0, (datetime.now(UTC) - oldest[0].recorded_at).total_seconds())
        return ProjectionStatus(
            name=self.name,
            version=live.version,
            code_version=type(self.projection).version,
            generation=live.generation,
            collection=self.read_models.location(self.name, live.generation),
            position=position,
            head=head,
            behind=max(0, head - position),
            seconds_behind=seconds,
            rows=await self.read_models.count(self.name, live.generation),
        )


async def _no_batch(events: tuple[StoredEvent, ...], uow: UnitOfWork | None) -> None:
    return None

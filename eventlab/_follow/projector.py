"""The projector: a :class:`~eventlab.Projection` run into a read model on any backend, with
exactly-once batches, rebuilds beside the live read model, and its lag as a number.

It depends on the ports only: the store's log, a :class:`~eventlab.ports.CheckpointStore`
(checkpoints, leases, the rebuild's claim) and a :class:`~eventlab.ports.ReadModelStore`
(generations and the pointer to the live one). docs/projections.md says why each step is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._core.checks import check_page_size
from .._core.errors import (
    ConfigurationError,
    EventlabError,
    InternalSignal,
    RebuildInProgressError,
    TransientError,
)
from .._core.race_points import PROJECTOR_GENERATION_READ as GENERATION_READ
from .._core.records import StoredEvent
from .._core.tasks import ended, finish, woken
from ..ports import CheckpointStore, EventStore, ReadModelStore, UnitOfWork
from .projections import ProjectionStatus, check_projection
from .subscriber import Subscriber
from .supervision import ConsumerHealth, Supervision, worth_retrying

if TYPE_CHECKING:
    import pandas as pd

    from .projections import Projection


DEFAULT_KEEP_RETIRED = 300.0
"""Seconds a read model replaced by a rebuild stays readable (docs/projections.md)."""
_REBUILD_LEASE = 10.0


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
        self._stop = asyncio.Event()
        self._supervision = Supervision()
        self._task: asyncio.Task[None] | None = None

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

    async def run(self, *, until_caught_up: bool = False) -> None:
        """Keep the live read model up to date (until :meth:`stop`, or until caught up);
        follows a rebuild's swap to the new generation by itself. Supervised as
        :meth:`Subscriber.run <eventlab.Subscriber.run>`: a live run backs off after errors
        it may get over and raises the others."""
        await self._run(self._new_run(), until_caught_up)

    def _new_run(self) -> asyncio.Event:
        self._stop = asyncio.Event()
        return self._stop

    async def _run(self, stop: asyncio.Event, until_caught_up: bool) -> None:
        while not stop.is_set():
            try:
                generation = await self._live_generation()
            except Exception as exc:
                final = until_caught_up or not worth_retrying(exc)
                delay = self._supervision.error(exc, final=final)
                if final:
                    raise
                await woken(stop, delay)
                continue
            self._supervision.success()
            if GENERATION_READ.armed:
                await GENERATION_READ.reach()
            subscriber = self._subscriber_for(generation, guard=True)
            self._subscriber = subscriber
            if stop.is_set():  # stopped while the generation was read: nothing to start
                return
            try:
                await subscriber.run(until_caught_up=until_caught_up)
            except _Superseded:
                continue
            return

    async def run_until_caught_up(self) -> None:
        """Bring the live read model to the head of the log and return."""
        await self.run(until_caught_up=True)

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (live, supervised)."""
        self._task = asyncio.get_running_loop().create_task(self._run(self._new_run(), False))
        return self._task

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop at whatever moment the run is (after the batch in hand); raises the error a
        started run failed with, if any."""
        self._stop.set()
        if self._subscriber is not None:
            await self._subscriber.stop(timeout)
        task, self._task = self._task, None
        if task is not None:
            error = await finish(task, timeout)
            if error is not None:
                raise error

    async def health(self) -> ConsumerHealth:
        """The health of the run (see :meth:`Subscriber.health <eventlab.Subscriber.health>`)."""
        subscriber = self._subscriber
        if subscriber is None or self._supervision.backoff.failures:
            return self._supervision.health(self.name, None, 0, None)
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
            await self._live_generation()  # the state exists before any generation is built
            for dropped in await self.read_models.drop_retired(self.name, self.keep_retired):
                await self.checkpoints.delete(self.checkpoint_name(dropped))
            new = await self.read_models.next_generation(self.name)
            builder = self._subscriber_for(new, guard=False)
            while True:
                await builder.run(until_caught_up=True)  # again: what was appended meanwhile
                outcome = await self.store.backend.run(
                    lambda uow: self._swap(uow, new, claim, owner)
                )
                if outcome == "swapped":
                    break
                if outcome == "superseded":
                    raise RebuildInProgressError(
                        f"{self.name}: this rebuild lost its claim to another; nothing changed"
                    )
        finally:
            renewer.cancel()
            await ended(renewer)
            await self.checkpoints.release(claim, owner)
        return await self.status()

    async def _keep_claim(self, claim: str, owner: str) -> None:
        while True:
            await asyncio.sleep(_REBUILD_LEASE / 3)
            with contextlib.suppress(EventlabError):
                await self.checkpoints.renew(claim, owner, lease=_REBUILD_LEASE)

    async def _swap(self, uow: UnitOfWork, new: int, claim: str, owner: str) -> str:
        """Make ``new`` the live generation if it is at least as far as the live one.

        One transaction: the checkpoints are read and the pointer moved together. A live
        projector's batch writes the same state, so it and the swap cannot both commit on what
        the other has not seen: readers never see the read model go back to an earlier
        position (``"behind"``: catch up and try again). The claim is written in the same
        transaction: a rebuild whose claim was taken over cannot swap (``"superseded"``).
        """
        if not await self.checkpoints.holds(claim, owner, uow):
            return "superseded"
        version = type(self.projection).version
        old = (await self.read_models.state(self.name, version)).generation
        current = await self.checkpoints.get(self.checkpoint_name(old), uow=uow)
        built = await self.checkpoints.get(self.checkpoint_name(new), uow=uow)
        if (built.position if built else 0) < (current.position if current else 0):
            return "behind"
        swapped = await self.read_models.swap(self.name, old, new, version, uow)
        return "swapped" if swapped else "superseded"

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

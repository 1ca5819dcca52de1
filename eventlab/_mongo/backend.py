"""The MongoDB backend: where a ``MongoEventStore``'s checkpoints, snapshots and read models
live, and how one unit of work spans them (the :class:`~eventlab.ports.Backend` port)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, Unpack

from pymongo.asynchronous.client_session import AsyncClientSession

from .._core.units_of_work import RunsUnitsOfWork
from .._outbox.policy import OutboxOptions
from ..ports import UnitOfWork
from .checkpoints import MongoCheckpointStore
from .connection import MongoConnectionManager
from .outbox import MongoOutboxStore
from .read_models import MongoReadModels
from .snapshots import MongoSnapshotStore
from .unit_of_work import run_unit_of_work

T = TypeVar("T")


class MongoBackend(RunsUnitsOfWork[UnitOfWork]):
    """The companions of a store on one MongoDB database, sharing its connection."""

    def __init__(self, connection: MongoConnectionManager) -> None:
        self.connection = connection

    def __repr__(self) -> str:
        return f"<MongoBackend {self.connection.display_uri} {self.connection.database_name!r}>"

    def checkpoints(self) -> MongoCheckpointStore:
        return MongoCheckpointStore(self.connection)

    def snapshots(self) -> MongoSnapshotStore:
        return MongoSnapshotStore(self.connection)

    def read_models(self, prefix: str = "rm_") -> MongoReadModels:
        return MongoReadModels(self.connection, prefix)

    def outbox(self, name: str = "outbox", **options: Unpack[OutboxOptions]) -> MongoOutboxStore:
        """An outbox in the collection ``name`` of this database (the options of
        :class:`~eventlab.MongoOutboxStore`)."""
        return MongoOutboxStore(self.connection, name, **options)

    async def _run_in_transaction(
        self, work: Callable[[UnitOfWork], Awaitable[T]], session: Any, time_budget: float
    ) -> T:
        return await run_unit_of_work(
            self.connection, work, session=session, time_budget=time_budget
        )

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncClientSession]:
        await self.connection.connect()  # idempotent
        async with self.connection.client.start_session() as session:
            yield session

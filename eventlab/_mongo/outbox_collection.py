"""Where one outbox lives on MongoDB: its collection and per-key counters, its indexes
(created once, by versioned migrations), and the server clock its claims are timed by."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.errors import PyMongoError

from .._core.bson_values import check_collection_name
from .clock import ServerClock
from .connection import MongoConnectionManager
from .migrations import IndexSpec, Migration, MigrationResult, Migrator
from .transaction_policy import map_error

OUTBOX_MIGRATIONS = (
    Migration(
        1,
        "outbox_due",
        "outbox",
        (
            # Sparse: only unfinished messages carry due_at, so the index holds exactly the
            # messages a relay may still claim, ordered by when they are (or become) due.
            IndexSpec((("due_at", ASCENDING),), "due", sparse=True),
        ),
        "one index for claims and lag: unfinished messages by due time",
    ),
)

ORDERED_OUTBOX_MIGRATIONS = (
    Migration(
        2,
        "outbox_ordering",
        "outbox",
        (IndexSpec((("open_key", ASCENDING), ("sequence", ASCENDING)), "open_key_sequence"),),
        "ordered outboxes: the oldest unfinished message of each key",
    ),
)


class OutboxCollection:
    """One outbox's collections on a connection, made ready (connected, migrated) once."""

    def __init__(self, connection: MongoConnectionManager, name: str, *, ordered: bool) -> None:
        self.connection = connection
        self.name = check_collection_name(name)
        self.sequences_name = check_collection_name(f"{self.name}_sequences")
        self._ordered = ordered
        self._migrated = False
        self._clock: ServerClock | None = None

    @property
    def messages(self) -> Any:
        """The collection of messages."""
        return self.connection.database[self.name]

    @property
    def sequences(self) -> Any:
        """The per-key counters of an ordered outbox (``sequence`` of keyed messages)."""
        return self.connection.database[self.sequences_name]

    @property
    def clock(self) -> ServerClock:
        """The server clock the claims are timed by."""
        if self._clock is None:
            self._clock = ServerClock(self.connection.database)
        return self._clock

    @property
    def migrated(self) -> bool:
        """Whether this object has created the indexes (in this process)."""
        return self._migrated

    async def migrate(self) -> MigrationResult:
        """Create the outbox's indexes (idempotent; recorded in ``_migrations``)."""
        await self.connection.connect()  # idempotent
        migrator = Migrator(self.connection.database, {"outbox": self.name})
        migrations = OUTBOX_MIGRATIONS + (ORDERED_OUTBOX_MIGRATIONS if self._ordered else ())
        try:
            result = await migrator.run(migrations)
        except PyMongoError as exc:
            raise map_error(exc) from exc
        self._migrated = True
        return result

    async def ready(self) -> None:
        await self.connection.connect()  # idempotent
        if not self._migrated:
            await self.migrate()

"""Snapshots: an aggregate's state at a version, so that loading it replays only what came after.

A snapshot is a cache, never the truth: the events are. So a snapshot that cannot be trusted is
ignored, not repaired: one taken by another schema of the aggregate's state
(``snapshot_schema_version`` differs), of another aggregate type, or at a version the stream
does not reach (a store restored from an older backup).
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.errors import PyMongoError

from .._core.bson_values import (
    check_collection_name,
    decimals_to_python,
    encoded_size,
    to_bson_value,
)
from .._core.checks import check_aggregate_id
from .._core.errors import (
    ConfigurationError,
    EventlabError,
)
from ..ports import Snapshot, UnitOfWork
from .connection import MongoConnectionManager
from .session import session_of
from .transaction_policy import is_duplicate_key, map_error

logger = logging.getLogger("eventlab.snapshots")


class MongoSnapshotStore:
    """The newest snapshot of each aggregate, one document per aggregate id.

    A save replaces the stored snapshot only with a newer one (a higher version), so two
    writers racing to snapshot the same aggregate cannot move it backwards.
    """

    def __init__(self, connection: MongoConnectionManager, collection: str = "snapshots") -> None:
        self.connection = connection
        self.collection_name = check_collection_name(collection)

    @property
    def collection(self) -> Any:
        return self.connection.database[self.collection_name]

    async def get(self, aggregate_id: str, uow: UnitOfWork | None = None) -> Snapshot | None:
        """The stored snapshot of ``aggregate_id``, or ``None``."""
        aggregate_id = check_aggregate_id(aggregate_id)
        await self.connection.connect()  # idempotent
        try:
            doc = await self.collection.find_one({"_id": aggregate_id}, session=session_of(uow))
        except PyMongoError as exc:
            raise map_error(exc) from exc
        if doc is None:
            return None
        try:
            return Snapshot(
                aggregate_id=aggregate_id,
                aggregate_type=doc.get("aggregate_type"),
                version=doc.get("version"),
                schema_version=doc.get("schema_version"),
                state=decimals_to_python(doc.get("state")),
                taken_at=doc.get("taken_at"),
            )
        except EventlabError as exc:
            # A snapshot is a cache: one that is not a valid snapshot is not trusted, and the
            # load replays the events instead.
            logger.warning("snapshot of %s is not valid (%s): ignored", aggregate_id, exc)
            return None

    async def save(self, snapshot: Snapshot, uow: UnitOfWork | None = None) -> bool:
        """Store ``snapshot`` unless a snapshot at its version or later is stored; whether it
        was stored. Everything is checked before anything is written: the snapshot's fields,
        its state (BSON-exact, as event payloads) and its size."""
        if not isinstance(snapshot, Snapshot):
            raise ConfigurationError(f"expected a Snapshot, got {type(snapshot).__name__}")
        state = to_bson_value(snapshot.state, f"snapshot of {snapshot.aggregate_id}")
        await self.connection.connect()  # idempotent
        _check_size(snapshot, state, self.connection.info.max_bson_object_size)
        session = session_of(uow)
        try:
            # Looked at first: in a unit of work a duplicate key (the upsert below meeting a
            # newer snapshot) would abort the caller's transaction for the sake of a cache.
            stored = await self.collection.find_one(
                {"_id": snapshot.aggregate_id}, {"version": 1}, session=session
            )
            if stored is not None and int(stored["version"]) >= snapshot.version:
                return False
            result = await self.collection.update_one(
                {"_id": snapshot.aggregate_id, "version": {"$lt": snapshot.version}},
                {
                    "$set": {
                        "aggregate_type": snapshot.aggregate_type,
                        "version": snapshot.version,
                        "schema_version": snapshot.schema_version,
                        "state": state,
                    },
                    "$currentDate": {"taken_at": True},
                },
                upsert=True,
                session=session,
            )
        except PyMongoError as exc:
            if is_duplicate_key(exc):  # a newer snapshot is stored: keep it
                return False
            raise map_error(exc) from exc
        return bool(result.modified_count or result.upserted_id is not None)

    async def delete(self, aggregate_id: str) -> bool:
        """Forget an aggregate's snapshot; whether there was one."""
        aggregate_id = check_aggregate_id(aggregate_id)
        await self.connection.connect()  # idempotent
        try:
            result = await self.collection.delete_one({"_id": aggregate_id})
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return bool(result.deleted_count)


def _check_size(snapshot: Snapshot, state: Any, limit: int) -> None:
    encoded_size({"state": state}, f"snapshot of {snapshot.aggregate_id}", limit)

"""The stream reader: one stream in version order, forwards or backwards, bounded.

It only reads and does not know how events are written. The log (every stream in position
order) is read through :mod:`eventlab._mongo.log`.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure, PyMongoError

from .._core.checks import check_aggregate_id
from .._core.lifecycle import STREAM_DELETED_PERMANENTLY
from .._core.records import StreamVersions
from .schema import EventStoreSchema
from .transaction_policy import map_error

_STREAM_BATCH = 10_000


class StreamReader:
    """Reads one stream in version order, forwards or backwards."""

    def __init__(self, schema: EventStoreSchema) -> None:
        self._schema = schema

    async def documents(
        self,
        aggregate_id: str,
        versions: StreamVersions,
        session: AsyncClientSession | None = None,
    ) -> list[dict[str, Any]]:
        """Stored documents of a checked stream id that ``versions`` selects.

        Forwards: the oldest first. Backwards: the newest first (``max_count`` then takes the
        newest ones: the tail of the stream).
        """
        query: dict[str, Any] = {"aggregate_id": aggregate_id}
        after_version, backwards = versions.after, versions.backwards
        # No version condition for a whole stream: the index already orders it, and the
        # condition measurably slows the embedded server's plan.
        if after_version or versions.to is not None:
            query["version"] = {"$gt": after_version}
            if versions.to is not None:
                query["version"]["$lte"] = versions.to
        limit = versions.max_count or 0
        await self._schema.ready()
        if limit:
            # Versions are dense: a count is a bounded range of versions (O(count) on any
            # server, not a scan of the rest of the stream).
            version = query.setdefault("version", {"$gt": after_version})
            if not backwards:
                version["$lte"] = min(
                    version.get("$lte", after_version + limit), after_version + limit
                )
            else:
                top = version.get("$lte")
                if top is None:
                    top = await self.current_version(query["aggregate_id"], session)
                version["$gt"] = max(after_version, top - limit)
        # The whole stream is wanted: ask for it in one batch instead of the driver's default
        # first batch of 101 documents plus a getMore.
        cursor = self._schema.events.find(
            query,
            sort=[("version", -1 if backwards else 1)],
            limit=limit,
            batch_size=min(limit or _STREAM_BATCH, _STREAM_BATCH),
            session=session,
        )
        docs: list[dict[str, Any]] = await guarded(self._schema, cursor.to_list(None))
        return docs

    async def current_version(
        self, aggregate_id: Any, session: AsyncClientSession | None = None
    ) -> int:
        """The stream's last version, 0 for a stream with no events."""
        aggregate_id = check_aggregate_id(aggregate_id)
        await self._schema.ready()
        version: int = await guarded(self._schema, self.version_of(aggregate_id, session))
        return version

    async def head_of(
        self, aggregate_id: str, session: AsyncClientSession | None
    ) -> tuple[int, bool]:
        """The stream's last version, and whether that event is a permanent deletion marker
        (the paths that refuse an append: one read for both)."""
        doc = await self._schema.events.find_one(
            {"aggregate_id": aggregate_id},
            {"version": 1, "event_type": 1, "_id": 0},
            sort=[("version", -1)],
            session=session,
        )
        if doc is None:
            return 0, False
        return int(doc["version"]), doc.get("event_type") == STREAM_DELETED_PERMANENTLY

    async def version_of(self, aggregate_id: str, session: AsyncClientSession | None) -> int:
        """:meth:`current_version` for a checked id on a ready store (the writer's hot path)."""
        doc = await self._schema.events.find_one(
            {"aggregate_id": aggregate_id},
            {"version": 1, "_id": 0},
            sort=[("version", -1)],
            session=session,
        )
        return int(doc["version"]) if doc else 0


async def guarded(schema: EventStoreSchema, operation: Any) -> Any:
    """Await a read; a lost connection becomes :class:`~eventlab.ConnectionFailedError`, any
    other driver error eventlab's typed error for it."""
    try:
        return await operation
    except ConnectionFailure as exc:
        raise schema.connection.unreachable(exc) from exc
    except PyMongoError as exc:
        raise map_error(exc) from exc

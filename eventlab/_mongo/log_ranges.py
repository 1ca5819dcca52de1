"""Reading the log by bounded ranges of positions, ``(after, until]``: what followers read.

Every query is a bounded range: a server that does not stop an index scan at a limit (the
embedded one) would otherwise read the whole tail of the log for each page.
"""

from __future__ import annotations

from typing import Any

from pymongo.read_concern import ReadConcern

from .._core import telemetry as telemetry
from .._core.event_codec import from_document
from .._core.log_query import LogQuery
from .._core.tombstones import TOMBSTONE_FIELD
from ..ports import LogSlice
from .readers import guarded
from .schema import EventStoreSchema


class LogRangeReader:
    """Reads ranges of a store's log (:meth:`~eventlab.ports.EventLog.read`)."""

    def __init__(self, schema: EventStoreSchema, read_concern: ReadConcern) -> None:
        self._schema = schema
        self._read_concern = read_concern

    @property
    def _events(self) -> Any:
        return self._schema.events.with_options(read_concern=self._read_concern)

    async def read(self, query: LogQuery) -> LogSlice:
        name = self._schema.events_collection_name
        with telemetry.span(
            f"read_log {name}",
            {
                **telemetry.db_attributes(self._schema.connection.database_name, name, "read_log"),
                "eventlab.log.after": query.after,
                "eventlab.log.until": query.until,
            },
        ) as span:
            await self._schema.ready()
            if query.until <= query.after:
                found = LogSlice([], query.until, frozenset() if query.every_position else None)
            elif query.every_position and query.filtered:
                found = await self._every_position(query)
            else:
                docs = await self._find(_filter(query), query.limit)
                found = _slice(docs, _through(docs, query), query.every_position)
            if span is not None:
                span.set_attribute("eventlab.events.count", len(found.events))
            return found

    async def _every_position(self, query: LogQuery) -> LogSlice:
        """A filtered read that also reports every occupied position of the range: positions
        (and what decides the filters) of the whole range, payloads only of what passes;
        contiguity needs every position, the consumer only the events it wants."""
        slots = await self._find(
            {"position": {"$gt": query.after, "$lte": query.until}},
            query.limit,
            projection={"position": 1, "event_type": 1, "aggregate_type": 1, TOMBSTONE_FIELD: 1},
        )
        wanted = [
            d["position"]
            for d in slots
            if not d.get(TOMBSTONE_FIELD)
            and query.wants(d.get("event_type"), d.get("aggregate_type"))
        ]
        docs = await self._find({"position": {"$in": wanted}}, len(wanted)) if wanted else []
        return LogSlice(
            [from_document(d) for d in docs],
            _through(slots, query),
            frozenset(d["position"] for d in slots),
            tuple(d["position"] for d in slots if d.get(TOMBSTONE_FIELD)),
        )

    async def _find(
        self, query: dict[str, Any], limit: int | None, projection: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        cursor = self._events.find(
            query,
            projection,
            sort=[("position", 1)],
            limit=limit or 0,
            batch_size=max(2, min(limit or 10_000, 10_000)),
        )
        docs: list[dict[str, Any]] = await guarded(self._schema, cursor.to_list(None))
        return docs


def _filter(query: LogQuery) -> dict[str, Any]:
    # The type fields first: a server that matches compound indexes by the filter's field
    # order (the embedded one) then uses event_type_position, where it exists.
    found: dict[str, Any] = {}
    if query.event_types is not None:
        found["event_type"] = {"$in": sorted(query.event_types)}
    if query.aggregate_types is not None:
        found["aggregate_type"] = {"$in": sorted(query.aggregate_types)}
    found["position"] = {"$gt": query.after, "$lte": query.until}
    return found


def _slice(docs: list[dict[str, Any]], through: int, every_position: bool) -> LogSlice:
    events = [from_document(d) for d in docs if not d.get(TOMBSTONE_FIELD)]
    return LogSlice(
        events,
        through,
        frozenset(d["position"] for d in docs) if every_position else None,
        tuple(d["position"] for d in docs if d.get(TOMBSTONE_FIELD)),
    )


def _through(docs: list[dict[str, Any]], query: LogQuery) -> int:
    """Where a read's slice ends: at the last document when the limit cut it short."""
    if query.limit and len(docs) >= query.limit:
        return int(docs[-1]["position"])
    return query.until

"""Reading the log by bounded ranges of positions, ``(after, until]``: what followers read.

Every query is a bounded range: a server that does not stop an index scan at a limit (the
embedded one) would otherwise read the whole tail of the log for each page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.read_concern import ReadConcern

from .._core import telemetry as telemetry
from .._core.checks import check_int, check_page_size
from .._core.event_codec import from_document
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

    async def read(
        self,
        after: int,
        until: int,
        *,
        event_types: Sequence[str] | None = None,
        aggregate_types: Sequence[str] | None = None,
        every_position: bool = False,
        limit: int | None = None,
    ) -> LogSlice:
        after, until = check_int(after, "after"), check_int(until, "until")
        if limit is not None:
            limit = check_page_size(limit, "limit")
        name = self._schema.events_collection_name
        with telemetry.span(
            f"read_log {name}",
            {
                **telemetry.db_attributes(self._schema.connection.database_name, name, "read_log"),
                "eventlab.log.after": after,
                "eventlab.log.until": until,
            },
        ) as span:
            await self._schema.ready()
            if until <= after:
                found = LogSlice([], until, frozenset() if every_position else None)
            elif every_position and (event_types is not None or aggregate_types is not None):
                found = await self._every_position(
                    after, until, event_types, aggregate_types, limit
                )
            else:
                span_filter = _filter(after, until, event_types, aggregate_types)
                docs = await self._find(span_filter, limit)
                found = _slice(docs, _through(docs, until, limit), every_position)
            if span is not None:
                span.set_attribute("eventlab.events.count", len(found.events))
            return found

    async def _every_position(
        self,
        after: int,
        until: int,
        event_types: Sequence[str] | None,
        aggregate_types: Sequence[str] | None,
        limit: int | None,
    ) -> LogSlice:
        """A filtered read that also reports every occupied position of the range: positions
        (and what decides the filters) of the whole range, payloads only of what passes;
        contiguity needs every position, the consumer only the events it wants."""
        slots = await self._find(
            {"position": {"$gt": after, "$lte": until}},
            limit,
            projection={"position": 1, "event_type": 1, "aggregate_type": 1, TOMBSTONE_FIELD: 1},
        )
        types = None if event_types is None else set(event_types)
        kinds = None if aggregate_types is None else set(aggregate_types)
        wanted = [
            d["position"]
            for d in slots
            if not d.get(TOMBSTONE_FIELD)
            and (types is None or d.get("event_type") in types)
            and (kinds is None or d.get("aggregate_type") in kinds)
        ]
        docs = await self._find({"position": {"$in": wanted}}, len(wanted)) if wanted else []
        return LogSlice(
            [from_document(d) for d in docs],
            _through(slots, until, limit),
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


def _filter(
    after: int,
    until: int,
    event_types: Sequence[str] | None,
    aggregate_types: Sequence[str] | None,
) -> dict[str, Any]:
    # The type fields first: a server that matches compound indexes by the filter's field
    # order (the embedded one) then uses event_type_position, where it exists.
    query: dict[str, Any] = {}
    if event_types is not None:
        query["event_type"] = {"$in": list(event_types)}
    if aggregate_types is not None:
        query["aggregate_type"] = {"$in": list(aggregate_types)}
    query["position"] = {"$gt": after, "$lte": until}
    return query


def _slice(docs: list[dict[str, Any]], through: int, every_position: bool) -> LogSlice:
    events = [from_document(d) for d in docs if not d.get(TOMBSTONE_FIELD)]
    return LogSlice(
        events,
        through,
        frozenset(d["position"] for d in docs) if every_position else None,
        tuple(d["position"] for d in docs if d.get(TOMBSTONE_FIELD)),
    )


def _through(docs: list[dict[str, Any]], until: int, limit: int | None) -> int:
    """Where a read's slice ends: at the last document when the limit cut it short."""
    if limit and len(docs) >= limit:
        return int(docs[-1]["position"])
    return until

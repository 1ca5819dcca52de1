"""The expectation guard of an append: the version a stream's new events follow, or the
mismatch.

Why it is safe without a read-then-insert race (docs/positions.md): version ``expected`` must
exist (a read; a stream's documents are never deleted, so once seen it stays true: a scavenged
event is replaced in place by a tombstone that keeps its stream and version) and the unique
index on ``(aggregate_id, version)`` rejects anything already at ``expected + 1``. A
permanently deleted stream's marker refuses every append that meets it (docs/lifecycle.md).
"""

from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession

from .._core.appends import StreamAppend
from .._core.errors import StreamDeletedError
from .._core.lifecycle import STREAM_DELETED_PERMANENTLY
from .._core.records import ExpectedVersion
from .._core.settlement import VersionMismatch
from .readers import StreamReader
from .schema import EventStoreSchema


class StreamExpectations:
    """Checks the streams of a batch against their expected versions."""

    def __init__(self, schema: EventStoreSchema, streams: StreamReader) -> None:
        self._schema = schema
        self._streams = streams

    async def check_all(
        self, batch: list[StreamAppend], session: AsyncClientSession | None
    ) -> dict[str, int] | VersionMismatch:
        """Check every int expectation; the verified bases, or the first mismatch."""
        bases = {}
        for stream in batch:
            if isinstance(stream.expected, int):
                base = await self.check(stream, session)
                if isinstance(base, VersionMismatch):
                    return base
                bases[stream.aggregate_id] = base
        return bases

    async def check(
        self, stream: StreamAppend, session: AsyncClientSession | None
    ) -> int | VersionMismatch:
        """The version the new events follow, or the mismatch.

        For an ``int`` expectation one indexed read: only "``expected`` exists" is load-bearing
        (events are never deleted); "``expected + 1`` is absent" lets a writer that already lost
        fail before it touches the position counter, which keeps losers from contending there.
        The unique index remains the arbiter for writers racing past this read.
        """
        expected = stream.expected
        if isinstance(expected, int):
            if expected == 0:
                return 0  # a new stream: the unique index on version 1 is the whole guard
            # An archive keeps a stream's first event and a suffix live (docs/archive.md): above
            # a live version 2 or later every version is live, so "expected + 1 is absent"
            # means the stream ends at ``expected``; above version 1 it may be archived, so for
            # 1 the read takes every live version (one, for a stream that is at 1).
            wanted = {"$gte": 1} if expected == 1 else {"$in": [expected, expected + 1]}
            found = {
                doc["version"]: doc.get("event_type")
                async for doc in self._schema.events.find(
                    {"aggregate_id": stream.aggregate_id, "version": wanted},
                    {"version": 1, "event_type": 1, "_id": 0},
                    session=session,
                )
            }
            _unless_deleted(stream.aggregate_id, found)
            if expected in found and max(found) == expected:
                return expected
            actual, deleted = await self._streams.head_of(stream.aggregate_id, session)
            return VersionMismatch(stream.aggregate_id, expected, actual, deleted)
        current, deleted = await self._streams.head_of(stream.aggregate_id, session)
        if deleted:
            raise StreamDeletedError(stream.aggregate_id, current)
        if expected is ExpectedVersion.STREAM_EXISTS and current == 0:
            return VersionMismatch(stream.aggregate_id, expected, 0)
        return current


def _unless_deleted(aggregate_id: str, types_by_version: dict[int, str | None]) -> None:
    """A permanently deleted stream's marker is its last event forever: an append that meets
    it is refused (docs/lifecycle.md)."""
    for version, event_type in types_by_version.items():
        if event_type == STREAM_DELETED_PERMANENTLY:
            raise StreamDeletedError(aggregate_id, version)

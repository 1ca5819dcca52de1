"""An archive as a reader sees it: the manifest the store names, its files checked and held
as Arrow columns (compressed documents, not Python objects), selected by position, by stream
or by a frame's selection, decoded only for what is selected.

Files never change once named (a new job writes new files and a new manifest), so a loaded
archive is kept per process by the manifest's name and checksum."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .._core.bson_values import AS_BSON_STORES
from ..ports import LogSelection
from ._location import ArchiveLocation
from ._manifest import Manifest, load
from ._marker import ArchiveMarker
from ._segments import DOCUMENT, check, decode

_KEPT = 4
_LOADED: OrderedDict[tuple[str, str, str], ArchiveView] = OrderedDict()


class ArchiveView:
    """The events of one manifest, sorted by position."""

    def __init__(self, manifest: Manifest, table: pa.Table) -> None:
        self.manifest = manifest
        self._table = table
        self._positions: frozenset[int] | None = None

    @property
    def positions(self) -> frozenset[int]:
        """Every archived position."""
        if self._positions is None:
            self._positions = frozenset(self._table["position"].to_pylist())
        return self._positions

    def between(self, after: int, until: int) -> pa.Table:
        """The rows with ``after < position <= until`` (index columns and documents)."""
        column = self._table["position"]
        mask = pc.and_(pc.greater(column, after), pc.less_equal(column, until))
        return self._table.filter(mask)

    def stream(self, aggregate_id: str, after: int, to: int | None) -> list[dict[str, Any]]:
        """The stream's archived documents with ``after < version <= to``, oldest first."""
        mask = pc.and_(
            pc.equal(self._table["aggregate_id"], aggregate_id),
            pc.greater(self._table["version"], after),
        )
        if to is not None:
            mask = pc.and_(mask, pc.less_equal(self._table["version"], to))
        rows = self._table.filter(mask)
        docs = documents(rows)
        docs.sort(key=lambda d: int(d["version"]))
        return docs

    def selected(self, selection: LogSelection, through: int) -> list[dict[str, Any]]:
        """The documents a frame's ``selection`` selects at positions up to ``through``,
        decoded as a :class:`~eventlab.ports.DocumentLog` hands them out (``AS_BSON_STORES``)."""
        rows = self.between(selection.after, through)
        for name, values in (
            ("aggregate_id", selection.streams),
            ("event_type", selection.event_types),
            ("aggregate_type", selection.aggregate_types),
        ):
            if values is not None:
                rows = rows.filter(pc.is_in(rows[name], pa.array(list(values), pa.string())))
        time = rows[selection.time]
        if selection.since is not None:
            rows = rows.filter(pc.greater_equal(time, pa.scalar(selection.since, time.type)))
            time = rows[selection.time]
        if selection.until is not None:
            rows = rows.filter(pc.less(time, pa.scalar(selection.until, time.type)))
        return decode(rows[DOCUMENT].to_pylist(), AS_BSON_STORES)


def documents(rows: pa.Table) -> list[dict[str, Any]]:
    """The stored documents of selected rows, in their order."""
    return decode(rows[DOCUMENT].to_pylist())


async def open_view(marker: ArchiveMarker) -> ArchiveView:
    """The archive ``marker`` names, loaded once per process (files checked on load)."""
    key = (marker.location, marker.manifest, marker.sha256)
    found = _LOADED.get(key)
    if found is None:
        found = await asyncio.to_thread(_load, marker)
        _LOADED[key] = found
        while len(_LOADED) > _KEPT:
            _LOADED.popitem(last=False)
    else:
        _LOADED.move_to_end(key)
    return found


def _load(marker: ArchiveMarker) -> ArchiveView:
    location = ArchiveLocation.of(marker.location)
    manifest = load(location, marker.manifest, marker.sha256)
    tables = [check(s, location.read(s.path), location) for s in manifest.segments]
    if not tables:
        return ArchiveView(manifest, _empty())
    table = pa.concat_tables(tables, promote_options="permissive")
    table = table.take(pc.sort_indices(table["position"]))
    return ArchiveView(manifest, table)


def _empty() -> pa.Table:
    time = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "position": pa.array([], pa.int64()),
            "aggregate_id": pa.array([], pa.string()),
            "version": pa.array([], pa.int64()),
            "event_type": pa.array([], pa.string()),
            "aggregate_type": pa.array([], pa.string()),
            "recorded_at": pa.array([], time),
            "occurred_at": pa.array([], time),
            DOCUMENT: pa.array([], pa.binary()),
        }
    )

"""DCB queries as MongoDB filters: shared by ``eventlab.dcb`` (async) and the ``eventsourcing``
module's DCB recorder (sync), so that both read and check conditions the same way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._core.tombstones import TOMBSTONE_FIELD
from .._dcb.records import ItemParts

Selection = tuple[dict[str, Any], tuple[str, ...]]
"""One item as a server filter and the tags left for the client to check."""

NEAR_HEAD = 1000
"""A condition whose ``after`` is this close to the head is checked by position first."""


def selection(
    item: ItemParts | None,
    after: int,
    through: int | None = None,
    *,
    position_first: bool = False,
) -> Selection:
    """One indexed query for one item (``None``: every event): the server filter bounds the
    first tag (equality on the multikey ``(tags, position)`` index), the types and the
    positions, ``(after, through]``; the item's other tags are checked on the client
    (:func:`has_tags`) among the few events that carry the first.

    Why not one ``$or`` of ``$all`` filters: servers differ in how they plan those (the
    embedded one scans the whole collection for either), while an equality on one tag is an
    index range everywhere.
    """
    position: dict[str, int] = {"$gt": after}
    if through is not None:
        position["$lte"] = through
    not_a_tombstone = {"$exists": False}
    if item is None:
        return {"position": position, TOMBSTONE_FIELD: not_a_tombstone}, ()
    types, tags = item
    # The narrower range first: the embedded server plans by the first indexed field it meets.
    # A read leads with the tag (its few keys, not the whole log's positions); a condition
    # checked just below the head leads with the position (the few events since, not all of
    # the tag's). Tombstones carry no tags: only an item without tags tests for them.
    found: dict[str, Any] = {"position": position} if position_first else {}
    if tags:
        found["tags"] = tags[0]
    if types:
        found["event_type"] = {"$in": list(types)}
    found["position"] = position  # where it stands already when it leads
    if not tags:
        found[TOMBSTONE_FIELD] = not_a_tombstone
    return found, tuple(tags[1:])


def has_tags(document: dict[str, Any], tags: Sequence[str]) -> bool:
    """Whether a stored event carries every one of ``tags`` (the client's part of an item)."""
    return not tags or set(tags) <= set(document.get("tags") or ())

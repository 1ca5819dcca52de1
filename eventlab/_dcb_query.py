"""DCB queries as MongoDB filters: shared by ``eventlab.dcb`` (async) and the ``eventsourcing``
module's DCB recorder (sync), so that both read and check conditions the same way.

A query is a list of items; an event matches an item when its type is one of the item's types
(or the item names none) and it carries every one of the item's tags; it matches the query
when it matches any item. A query with no items matches every event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ._log import TOMBSTONE_FIELD

MAX_QUERY_ITEMS = 100
"""Items per query: each is one indexed read of a condition check."""
MAX_ITEM_VALUES = 100
"""Types or tags per item."""
MAX_TEXT = 512
"""Characters per type or tag."""
MAX_POSITION = 2**63 - 1

ItemParts = tuple[Sequence[str], Sequence[str]]
"""(types, tags) of one query item."""


def check_text(value: Any, what: str, error: type[Exception]) -> str:
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > MAX_TEXT:
        raise error(
            f"{what} must be a non-empty string of at most {MAX_TEXT} characters, got {value!r:.80}"
        )
    return value


def check_texts(values: Any, what: str, error: type[Exception]) -> tuple[str, ...]:
    """A tuple of strings from a list or tuple of them (a bare string is refused: it would be
    read as its characters)."""
    if isinstance(values, str | bytes) or not isinstance(values, list | tuple | set | frozenset):
        raise error(f"{what}s must be a list of strings, got {values!r:.80}")
    if len(values) > MAX_ITEM_VALUES:
        raise error(f"at most {MAX_ITEM_VALUES} {what}s per item, got {len(values)}")
    return tuple(check_text(v, what, error) for v in values)


def check_after(after: Any, error: type[Exception]) -> int:
    """A position to read or check after (``None`` is the start of the log)."""
    if after is None:
        return 0
    if type(after) is not int or not 0 <= after <= MAX_POSITION:
        raise error(f"after must be a position (an int from 0 to 2**63-1), got {after!r:.80}")
    return after


Selection = tuple[dict[str, Any], tuple[str, ...]]
"""One item as a server filter and the tags left for the client to check."""


NEAR_HEAD = 1000
"""A condition whose ``after`` is this close to the head is checked by position first."""


def selections(
    items: Sequence[ItemParts], after: int, *, position_first: bool = False
) -> list[Selection]:
    """One indexed query per item: the server filter bounds the first tag (equality on the
    multikey ``(tags, position)`` index), the types and the position; the item's other tags
    are checked on the client (:func:`has_tags`) among the few events that carry the first.

    Why not one ``$or`` of ``$all`` filters: servers differ in how they plan those (the
    embedded one scans the whole collection for either), while an equality on one tag is an
    index range everywhere. An item without types or tags matches every event, and so does a
    query without items: one query then, bounded by position only.
    """
    position = {"$gt": after}
    not_a_tombstone = {"$exists": False}
    if not items or any(not types and not tags for types, tags in items):
        return [({"position": position, TOMBSTONE_FIELD: not_a_tombstone}, ())]
    found = []
    for types, tags in items:
        # The narrower range first: the embedded server plans by the first indexed field it
        # meets. A read leads with the tag (its few keys, not the whole log's positions); a
        # condition checked just below the head leads with the position (the few events
        # since, not all of the tag's). Tombstones carry no tags: only an item without tags
        # tests for them.
        selection: dict[str, Any] = {"position": position} if position_first else {}
        if tags:
            selection["tags"] = tags[0]
        if types:
            selection["event_type"] = {"$in": list(types)}
        selection["position"] = position  # where it stands already when it leads
        if not tags:
            selection[TOMBSTONE_FIELD] = not_a_tombstone
        found.append((selection, tuple(tags[1:])))
    return found


def has_tags(document: dict[str, Any], tags: Sequence[str]) -> bool:
    """Whether a stored event carries every one of ``tags`` (the client's part of an item)."""
    return not tags or set(tags) <= set(document.get("tags") or ())


def merged(pages: Iterable[list[dict[str, Any]]], limit: int | None) -> list[dict[str, Any]]:
    """The documents of several items' queries, each in position order, as one list in
    position order without repeats (an event can match two items), cut at ``limit``."""
    by_position = {doc["position"]: doc for page in pages for doc in page}
    ordered = [by_position[p] for p in sorted(by_position)]
    return ordered if limit is None else ordered[:limit]

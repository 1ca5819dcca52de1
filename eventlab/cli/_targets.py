"""What a reading command checks before it reads: that the database and the events collection
it was pointed at exist. A mistyped ``--database`` must not read as "the store is empty"
(nor create anything): it is an error that names what is there instead."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._core.errors import EventlabError

if TYPE_CHECKING:
    from .._mongo.connection import MongoConnectionManager

_SERVER_DATABASES = frozenset({"admin", "config", "local"})
_LISTED = 8


async def check_store_exists(conn: MongoConnectionManager, events_collection: str) -> None:
    """Raise unless ``conn``'s database holds ``events_collection``.

    A user allowed to list neither databases nor collections is not refused: what the server
    will not say is not checked.
    """
    from pymongo.errors import OperationFailure

    name = conn.database_name
    try:
        databases = await conn.client.list_database_names()
    except OperationFailure:
        databases = None
    if databases is not None and name not in databases:
        there = [d for d in databases if d not in _SERVER_DATABASES]
        near = _near(name, there, "databases")
        if not there:
            near = " (it has none yet: `eventlab import FILE` stores events in one)"
        raise EventlabError(
            f"no database {name!r} at {conn.display_uri}{near}: check --database (nothing was "
            "read or created)"
        )
    try:
        collections = await conn.database.list_collection_names()
    except OperationFailure:
        return
    if events_collection not in collections:
        there = [c for c in collections if not c.startswith("system.")]
        raise EventlabError(
            f"no collection {events_collection!r} in database {name!r}"
            f"{_near(events_collection, there, 'collections')}: check --events-collection "
            "(nothing was read or created)"
        )


def _near(name: str, names: Iterable[str], what: str) -> str:
    """``" (did you mean 'shop'?)"``, else the names there are."""
    names = sorted(names)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        return f" (did you mean {' or '.join(repr(c) for c in close)}?)"
    if not names:
        return f" (it has no {what})"
    shown = ", ".join(names[:_LISTED]) + (
        f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    )
    return f" (its {what}: {shown})"

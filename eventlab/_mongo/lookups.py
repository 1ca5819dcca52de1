"""Finding documents by a list of values, in bounded ``$in`` batches.

The embedded server checks each document an ``$in`` finds against the whole list, so one
query's time grows with values x matches (2,000 ids in one ``$in``: 7.3 s; in batches of 50:
0.3 s, measured on a 3,358-document collection). MongoDB walks the index either way and pays
one round trip per batch. Every lookup by a list that can be long goes through here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymongo.asynchronous.client_session import AsyncClientSession
    from pymongo.asynchronous.collection import AsyncCollection

IN_BATCH = 50
"""Values per ``$in`` query."""


def in_batches(values: Iterable[Any]) -> Iterator[list[Any]]:
    """``values`` in lists of at most ``IN_BATCH``, one ``$in`` each."""
    wanted = list(values)
    for start in range(0, len(wanted), IN_BATCH):
        yield wanted[start : start + IN_BATCH]


async def find_in(
    collection: AsyncCollection[Any],
    field: str,
    values: Iterable[Any],
    *,
    where: Mapping[str, Any] | None = None,
    projection: Mapping[str, Any] | None = None,
    session: AsyncClientSession | None = None,
) -> list[dict[str, Any]]:
    """The documents whose ``field`` is one of ``values`` (and that match ``where``), in no
    particular order."""
    found: list[dict[str, Any]] = []
    for batch in in_batches(values):
        query = {**(where or {}), field: {"$in": batch}}
        found += await collection.find(query, projection, session=session).to_list(None)
    return found

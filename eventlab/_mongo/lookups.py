"""Finding documents by a list of values, in bounded ``$in`` batches.

The embedded server checks each document an ``$in`` finds against the whole list, so one
query's time grows with values x matches (2,000 ids in one ``$in``: 7.3 s; in batches of 50:
0.3 s, measured on a 3,358-document collection). MongoDB walks the index either way and pays
one round trip per batch. Every lookup by a list that can be long goes through here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymongo.asynchronous.client_session import AsyncClientSession
    from pymongo.asynchronous.collection import AsyncCollection

IN_BATCH = 50
"""Values per ``$in`` query."""


async def find_in(
    collection: AsyncCollection[Any],
    field: str,
    values: Iterable[Any],
    *,
    where: Mapping[str, Any] | None = None,
    projection: Mapping[str, Any] | None = None,
    session: AsyncClientSession | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The documents whose ``field`` is one of ``values`` (and that match ``where``), batch
    after batch, in no particular order."""
    wanted = list(values)
    for start in range(0, len(wanted), IN_BATCH):
        query = {**(where or {}), field: {"$in": wanted[start : start + IN_BATCH]}}
        async for doc in collection.find(query, projection, session=session):
            yield doc


async def find_in_list(
    collection: AsyncCollection[Any],
    field: str,
    values: Iterable[Any],
    *,
    where: Mapping[str, Any] | None = None,
    projection: Mapping[str, Any] | None = None,
    session: AsyncClientSession | None = None,
) -> list[dict[str, Any]]:
    """:func:`find_in` as a list."""
    found = find_in(collection, field, values, where=where, projection=projection, session=session)
    return [doc async for doc in found]

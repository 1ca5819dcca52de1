"""Lookups by a list of values (``_mongo.lookups``): every match found across batches, the
extra filter and projection applied to each batch, nothing else returned."""

from __future__ import annotations

from eventlab import MongoConnectionManager
from eventlab._mongo.lookups import IN_BATCH, find_in


async def test_a_list_longer_than_a_batch_finds_every_match_once(
    connection: MongoConnectionManager,
) -> None:
    collection = connection.database["lookups"]
    total = IN_BATCH * 3 + 7
    await collection.insert_many([{"_id": n, "even": n % 2 == 0, "x": n} for n in range(total)])
    wanted = [*range(total - 1, -1, -1), total, total + 1]  # reversed, and two absent
    found = await find_in(collection, "_id", wanted)
    assert sorted(d["_id"] for d in found) == list(range(total))
    evens = await find_in(collection, "_id", wanted, where={"even": True}, projection={"_id": 1})
    assert sorted(d["_id"] for d in evens) == list(range(0, total, 2))
    assert all(set(d) == {"_id"} for d in evens)
    assert await find_in(collection, "_id", []) == []

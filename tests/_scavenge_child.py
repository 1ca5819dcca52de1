"""A scavenge in its own process, to be SIGKILLed by tests/test_lifecycle.py mid-way.

usage: python _scavenge_child.py URI DATABASE COLLECTION BATCH_SIZE

It scavenges the store; after its first batch of replacements it prints ``BATCH <count>``
(flushed) and blocks there for good: the parent kills it at that point, with the rest of the
scavenge not done.
"""

from __future__ import annotations

import asyncio
import sys
import time

from eventlab import MongoConnectionManager, MongoEventStore


def first_batch(count: int) -> None:
    print("BATCH", count, flush=True)
    time.sleep(3600)  # blocks the loop: nothing more is written until the parent kills us


async def main(uri: str, database: str, collection: str, batch_size: int) -> None:
    async with MongoConnectionManager(uri, database=database) as connection:
        store = MongoEventStore(connection, events_collection=collection)
        await store.lifecycle().scavenge(batch_size=batch_size, on_batch=first_batch)
    print("DONE", flush=True)


if __name__ == "__main__":
    uri, database, collection, batch = sys.argv[1:5]
    asyncio.run(main(uri, database, collection, int(batch)))

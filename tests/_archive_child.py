"""An archive or restore job in its own process, to be SIGKILLed by tests/test_archive.py.

usage: python _archive_child.py URI DATABASE COLLECTION LOCATION MODE POINT REACH

``MODE`` is ``archive`` (everything up to the head) or ``restore``. The ``REACH``-th time the
job reaches the race point ``POINT``, the child prints ``AT <point>`` and waits there for ever
(the parent kills it); a job that ends prints ``DONE``.
"""

from __future__ import annotations

import asyncio
import sys

from eventlab import MongoConnectionManager, MongoEventStore
from eventlab._core import races as races


def say(*words: object) -> None:
    print(*words, flush=True)


async def main(
    uri: str, database: str, collection: str, location: str, mode: str, point: str, reach: int
) -> None:
    async with MongoConnectionManager(uri, database=database) as connection:
        store = MongoEventStore(connection, events_collection=collection)
        passes = 0

        async def stop_at_the_chosen_pass() -> None:
            nonlocal passes
            passes += 1
            if passes == reach:
                say("AT", point)
                await asyncio.Event().wait()

        async with races.acting_at(point, stop_at_the_chosen_pass, times=reach):
            if mode == "archive":
                head = (await store.log.head()).position
                await store.archive(location, through=head)
            else:
                await store.restore_archive()
        say("DONE")


if __name__ == "__main__":
    uri, database, collection, location, mode, point, reach = sys.argv[1:]
    asyncio.run(main(uri, database, collection, location, mode, point, int(reach)))

"""An exactly-once subscriber in its own process, to be killed with SIGKILL by
test_subscriptions (usage: python _subscriber_child.py URI DATABASE)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from eventlab import MongoConnectionManager, MongoEventStore, StoredEvent, Subscriber


async def main(uri: str, database: str) -> None:
    async with MongoConnectionManager(uri, database=database) as connection:
        store = MongoEventStore(connection)
        effects = connection.database["effects"]

        async def handler(event: StoredEvent, uow: Any) -> None:
            # The same effect as the test's own handler (tests/test_subscriptions.py).
            await effects.update_one(
                {"_id": event.aggregate_id},
                {
                    "$inc": {"events": 1, "versions": event.version},
                    "$push": {"positions": event.position},
                },
                upsert=True,
                session=uow.session,
            )
            await asyncio.sleep(0.002)

        await Subscriber(store, "counter", handler, batch_size=3).run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))

"""An exactly-once subscriber in its own process, to be killed with SIGKILL by the tests
(usage: python _subscriber_child.py URI DATABASE [BATCH_SIZE [HANDLER_SECONDS]])."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from eventlab import MongoConnectionManager, MongoEventStore, StoredEvent, Subscriber


async def main(uri: str, database: str, batch_size: int, handler_seconds: float) -> None:
    async with MongoConnectionManager(uri, database=database) as connection:
        store = MongoEventStore(connection)
        effects = connection.database["effects"]

        async def handler(event: StoredEvent, uow: Any) -> None:
            # The same effect as the tests' own handler (tests/test_subscriptions.py).
            await effects.update_one(
                {"_id": event.aggregate_id},
                {
                    "$inc": {"events": 1, "versions": event.version},
                    "$push": {"positions": event.position},
                },
                upsert=True,
                session=uow.session,
            )
            await asyncio.sleep(handler_seconds)

        await Subscriber(store, "counter", handler, batch_size=batch_size).run()


if __name__ == "__main__":
    arguments = sys.argv[1:]
    asyncio.run(
        main(
            arguments[0],
            arguments[1],
            int(arguments[2]) if len(arguments) > 2 else 3,
            float(arguments[3]) if len(arguments) > 3 else 0.002,
        )
    )

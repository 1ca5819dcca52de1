"""The order-totals projector in its own process, to be killed with SIGKILL by
test_projections (usage: python _projector_child.py URI DATABASE)."""

from __future__ import annotations

import asyncio
import sys

from eventlab import MongoConnectionManager, MongoEventStore, Projector
from eventlab.samples import OrderTotals, order_registry


async def main(uri: str, database: str) -> None:
    async with MongoConnectionManager(uri, database=database) as connection:
        store = MongoEventStore(connection, registry=order_registry())
        await Projector(store, OrderTotals(), batch_size=5).run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))

"""A relay in its own process, to be killed with SIGKILL mid-batch by test_outbox.

Usage: python _relay_child.py URI DATABASE LOG_FILE. Each publish writes a ``start`` line before
it and an ``end`` line after it (time.monotonic() is system-wide on Linux, so the parent can
compare its own publishes' intervals with these).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from eventlab import MongoConnectionManager, MongoOutboxStore, OutboxMessage, OutboxRelay


async def main(uri: str, database: str, log_path: str) -> None:
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives until the process is killed

    class FileLogPublisher:
        async def publish(self, message: OutboxMessage) -> None:
            start = time.monotonic()
            log.write(json.dumps({"id": message.message_id, "start": start}) + "\n")
            await asyncio.sleep(0.004)
            log.write(json.dumps({"id": message.message_id, "end": time.monotonic()}) + "\n")

    async with MongoConnectionManager(uri, database=database) as connection:
        outbox = MongoOutboxStore(connection, max_attempts=3, backoff_base=0.05, backoff_max=0.2)
        relay = OutboxRelay(
            outbox,
            FileLogPublisher(),
            worker_id="doomed",
            batch_size=40,
            lease=1.0,
            poll_interval=0.05,
        )
        await relay.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))

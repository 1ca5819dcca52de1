"""A refresher of one frame cache in its own process (tests/test_frame_cache_trust.py).

usage: python _frame_cache_child.py URI DATABASE CACHE ROUNDS

Reads the store through the cache ROUNDS times. Every event the parent stores has
``payload.n == position``; each frame must be the positions 1..m with those payloads, m never
going back. Prints ``OK <m>`` at the end, or ``WRONG <what>`` and exits 1; any other exception
ends it with a traceback (exit 1).
"""

from __future__ import annotations

import asyncio
import sys

from eventlab import MongoConnectionManager, MongoEventStore
from eventlab.workbench import read_frame


async def main(uri: str, database: str, cache: str, rounds: int) -> int:
    seen = 0
    async with MongoConnectionManager(uri, database=database) as connection:
        store = MongoEventStore(connection)
        for _ in range(rounds):
            frame = await read_frame(store, cache=cache, progress=False)
            positions = frame["position"].tolist()
            if positions != list(range(1, len(positions) + 1)):
                print(f"WRONG positions {positions[:5]}...{positions[-5:]}", flush=True)
                return 1
            if frame["payload.n"].tolist() != positions:
                print("WRONG payloads", flush=True)
                return 1
            if len(positions) < seen:
                print(f"WRONG went back from {seen} to {len(positions)}", flush=True)
                return 1
            seen = len(positions)
    print(f"OK {seen}", flush=True)
    return 0


if __name__ == "__main__":
    uri, database, cache, rounds = sys.argv[1:5]
    sys.exit(asyncio.run(main(uri, database, cache, int(rounds))))

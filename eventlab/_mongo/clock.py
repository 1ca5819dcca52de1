"""The server's wall clock, as seen from a client whose own clock may be wrong."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError

from .transaction_policy import map_error


def client_time() -> float:
    """This process's wall clock (seconds since the epoch): the one reading a client's clock
    that the server clock corrects."""
    return time.time()


class ServerClock:
    """Estimates the server's time from ``hello``'s ``localTime``.

    Leases and due times are written with the server's own ``$$NOW``; a query that asks "which
    leases have ended?" needs a *value* for now, and this is it. The estimate is the server's
    ``localTime`` plus half the round trip, so its error is at most half a round trip whatever
    the client's clock says: a relay whose clock runs minutes ahead still sees live leases as
    live. Each :meth:`now` asks the server (one cheap command); :meth:`estimate` reuses the last
    measured offset when it is younger than ``max_age`` seconds.
    """

    def __init__(self, database: Any, *, max_age: float = 30.0) -> None:
        self._database = database
        self._max_age = max_age
        self._offset: timedelta | None = None
        self._measured_at = 0.0

    async def now(self) -> datetime:
        """The server's current time (one ``hello``)."""
        sent = client_time()
        started = time.monotonic()
        try:
            reply = await self._database.command("hello")
        except PyMongoError as exc:
            raise map_error(exc) from exc
        elapsed = time.monotonic() - started
        local = reply.get("localTime")
        if not isinstance(local, datetime):  # pragma: no cover - every server sends localTime
            return datetime.fromtimestamp(client_time(), UTC)
        server_now = local.astimezone(UTC) + timedelta(seconds=elapsed / 2)
        self._offset = server_now - datetime.fromtimestamp(sent + elapsed, UTC)
        self._measured_at = time.monotonic()
        return server_now

    async def estimate(self) -> datetime:
        """The server's time from the last measured offset (measured again when stale)."""
        if self._offset is None or time.monotonic() - self._measured_at > self._max_age:
            return await self.now()
        return datetime.fromtimestamp(client_time(), UTC) + self._offset

    @property
    def offset(self) -> timedelta | None:
        """Server time minus client time, as last measured (``None`` before the first)."""
        return self._offset

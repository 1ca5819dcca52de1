"""Where the outbox relay sends messages: the :class:`Publisher` protocol a broker client or a
webhook implements, and two publishers for development, notebooks and tests."""

from __future__ import annotations

import logging
from typing import Protocol

from ..ports import OutboxMessage


class Publisher(Protocol):
    """Where a relay sends messages (a broker client, an HTTP webhook, a test double).

    ``publish`` may be cancelled: the relay cancels it when the claim's lease would end before
    it returns, so that no message is ever being published by two relays at once.
    """

    async def publish(self, message: OutboxMessage) -> None: ...


class LoggingPublisher:
    """Logs each message (for development)."""

    def __init__(self, logger_name: str = "eventlab.outbox.published") -> None:
        self._log = logging.getLogger(logger_name)

    async def publish(self, message: OutboxMessage) -> None:
        self._log.info("%s %s %s", message.event_type, message.message_id, message.payload)


class InMemoryPublisher:
    """Keeps published messages in a list (for notebooks and tests)."""

    def __init__(self) -> None:
        self.published: list[OutboxMessage] = []

    async def publish(self, message: OutboxMessage) -> None:
        self.published.append(message)

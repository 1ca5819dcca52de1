"""Every position strategy passes the event store's port contracts."""

from __future__ import annotations

import pytest

from eventlab import MongoConnectionManager, MongoEventStore
from eventlab.contracts import EventStoreContract


class TestTransactionalPositions(EventStoreContract):
    @pytest.fixture
    async def contract_store(self, connection: MongoConnectionManager) -> MongoEventStore:
        return MongoEventStore(connection, positions="transactional")


class TestPreallocatedPositions(EventStoreContract):
    @pytest.fixture
    async def contract_store(self, connection: MongoConnectionManager) -> MongoEventStore:
        return MongoEventStore(connection, positions="preallocated")

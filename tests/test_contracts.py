"""Every backend eventlab ships passes the same contract suites (eventlab.contracts): MongoDB
with both position strategies, against the real server, and the in-memory backend."""

from __future__ import annotations

from typing import Any

import pytest

from eventlab import MongoConnectionManager, MongoEventStore, MongoOutboxStore
from eventlab.contracts import Contracts, contract_registry
from eventlab.dcb import MongoDCBStore


class TestMongoTransactional(Contracts):
    @pytest.fixture
    async def contract_store(self, connection: MongoConnectionManager) -> MongoEventStore:
        return MongoEventStore(connection, registry=contract_registry(), positions="transactional")

    @pytest.fixture
    def make_outbox(self, connection: MongoConnectionManager) -> Any:
        return lambda **options: MongoOutboxStore(connection, **options)

    @pytest.fixture
    def make_dcb(self) -> Any:
        return MongoDCBStore


class TestMongoPreallocated(Contracts):
    @pytest.fixture
    async def contract_store(self, connection: MongoConnectionManager) -> MongoEventStore:
        return MongoEventStore(connection, registry=contract_registry(), positions="preallocated")

    @pytest.fixture
    def make_outbox(self, connection: MongoConnectionManager) -> Any:
        return lambda **options: MongoOutboxStore(connection, **options)

    @pytest.fixture
    def make_dcb(self) -> Any:
        return MongoDCBStore

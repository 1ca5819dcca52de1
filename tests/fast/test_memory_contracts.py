"""The in-memory backend passes the same contract suites as MongoDB (eventlab.contracts), with
both position strategies."""

from __future__ import annotations

from typing import Any

import pytest

from eventlab.contracts import Contracts, contract_registry
from eventlab.memory import MemoryBackend, MemoryDCBStore, MemoryEventStore


class TestMemory(Contracts):
    @pytest.fixture
    async def contract_store(self) -> MemoryEventStore:
        return MemoryEventStore(MemoryBackend(), registry=contract_registry())

    @pytest.fixture
    def make_outbox(self, contract_store: MemoryEventStore) -> Any:
        return lambda **options: contract_store.backend.outbox(**options)

    @pytest.fixture
    def make_dcb(self) -> Any:
        return MemoryDCBStore


class TestMemoryPreallocated(Contracts):
    @pytest.fixture
    async def contract_store(self) -> MemoryEventStore:
        return MemoryEventStore(
            MemoryBackend(), registry=contract_registry(), positions="preallocated"
        )

    @pytest.fixture
    def make_outbox(self, contract_store: MemoryEventStore) -> Any:
        return lambda **options: contract_store.backend.outbox(**options)

    @pytest.fixture
    def make_dcb(self) -> Any:
        return MemoryDCBStore

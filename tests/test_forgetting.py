"""Crypto-shredding on both backends: the key stores and the stores given one keep the same
contracts (eventlab.contracts), against the real server and in memory."""

from __future__ import annotations

from typing import Any

import pytest

from eventlab import EventRegistry, MongoConnectionManager, MongoEventStore, MongoKeyStore
from eventlab.contracts import KeyStoreContract, PersonalDataContract, unique
from eventlab.memory import MemoryBackend, MemoryEventStore, MemoryKeyStore


async def _mongo_material(key_store: Any, subject: str) -> bytes:
    doc = await key_store.collection.find_one({"_id": subject})
    return bytes(doc["key"])


async def _memory_material(key_store: Any, subject: str) -> bytes:
    material: bytes = key_store._keys[subject]
    return material


class TestMongoKeyStore(KeyStoreContract):
    @pytest.fixture
    async def key_store(self, connection: MongoConnectionManager) -> MongoKeyStore:
        return MongoKeyStore(connection, unique("keys"))

    @pytest.fixture
    async def other_key_store(self, key_store: MongoKeyStore, mongo_uri: str, database_name: str):
        # Another client on the same collection: creates race through the server, not a lock.
        async with MongoConnectionManager(mongo_uri, database=database_name) as other:
            yield MongoKeyStore(other, key_store.collection_name)

    @pytest.fixture
    def key_material(self) -> Any:
        return _mongo_material


class TestMemoryKeyStore(KeyStoreContract):
    @pytest.fixture
    async def key_store(self) -> MemoryKeyStore:
        return MemoryKeyStore()

    @pytest.fixture
    def key_material(self) -> Any:
        return _memory_material


class TestMongoPersonalData(PersonalDataContract):
    @pytest.fixture
    def make_personal_store(self, connection: MongoConnectionManager) -> Any:
        keys = MongoKeyStore(connection, unique("keys"))
        events = unique("events")

        def make(registry: EventRegistry) -> MongoEventStore:
            return MongoEventStore(
                connection, registry=registry, keys=keys, events_collection=events
            )

        return make


class TestMemoryPersonalData(PersonalDataContract):
    @pytest.fixture
    def make_personal_store(self) -> Any:
        backend, keys = MemoryBackend(), MemoryKeyStore()
        return lambda registry: MemoryEventStore(backend, registry=registry, keys=keys)


def test_the_example_in_the_docs_runs_as_written() -> None:
    import re
    import subprocess
    import sys
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "forgetting.md").read_text()
    (block,) = re.findall(r"^```python\n(.*?)^```", page, re.S | re.M)
    done = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "ada@example.org"
    assert "had_key=True, events=1, streams=('cust-17',)" in lines[1] and "dry_run=True" in lines[1]
    assert lines[2] == "<redacted> <redacted> free"

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from eventlab import (
    ConfigurationError,
    ConnectionFailedError,
    InvalidNameError,
    MongoConnectionManager,
    MongoEventStore,
    NotConnectedError,
)
from eventlab._mongo.connection import mask_uri

from .conftest import make_event, put_one, stream_id


async def test_connect_reports_deployment(mongo_uri: str, database_name: str) -> None:
    conn = MongoConnectionManager(mongo_uri, database=database_name)
    assert not conn.is_connected
    with pytest.raises(NotConnectedError):
        _ = conn.client
    await conn.connect()
    assert await conn.connect() is conn  # idempotent
    assert conn.supports_transactions
    assert conn.info.kind in ("replica_set", "sharded")
    assert conn.info.server_version
    assert conn.database.name == database_name
    assert conn.client.options.codec_options.tz_aware
    await conn.disconnect()
    assert not conn.is_connected


async def test_server_down_fails_fast_with_masked_uri() -> None:
    uri = "mongodb://alice:s3cret@127.0.0.1:1/?directConnection=true"
    conn = MongoConnectionManager(uri, database="x", server_selection_timeout=0.5)
    with pytest.raises(ConnectionFailedError) as info:
        await conn.connect()
    assert "s3cret" not in str(info.value) and "alice" not in str(info.value)
    assert "127.0.0.1:1" in str(info.value)
    assert info.value.uri == "mongodb://***@127.0.0.1:1/?directConnection=true"
    assert not conn.is_connected


async def test_store_on_down_server_raises_typed_error() -> None:
    conn = MongoConnectionManager(
        "mongodb://127.0.0.1:1/?directConnection=true", database="x", server_selection_timeout=0.3
    )
    store = MongoEventStore(conn)
    with pytest.raises(ConnectionFailedError):
        await put_one(store, make_event("s", 1))


def test_invalid_arguments() -> None:
    with pytest.raises(ConfigurationError):
        MongoConnectionManager()
    with pytest.raises(ConfigurationError):
        MongoConnectionManager("mongodb://x", client=object())
    with pytest.raises(InvalidNameError):
        MongoConnectionManager("mongodb://x", database="bad/name")
    with pytest.raises(InvalidNameError):
        MongoConnectionManager("mongodb://x", database="")
    with pytest.raises(ConfigurationError):
        MongoConnectionManager("mongodb://x", server_selection_timeout=0)


async def test_invalid_uri_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"not a MongoDB URI|invalid MongoDB URI"):
        await MongoConnectionManager("http://nope", database="x").connect()
    with pytest.raises(ConfigurationError, match="AsyncMongoClient"):
        await MongoConnectionManager(client=object(), database="x").connect()


def test_mask_uri() -> None:
    assert mask_uri("mongodb+srv://u:p@h/db") == "mongodb+srv://***@h/db"
    assert mask_uri("mongodb://h:1") == "mongodb://h:1"


def test_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no `eventlab serve` here
    monkeypatch.delenv("EVENTLAB_MONGODB_URI", raising=False)
    with pytest.raises(ConfigurationError, match=r"set EVENTLAB_MONGODB_URI .* `eventlab serve`"):
        MongoConnectionManager.from_env()
    assert not (tmp_path / ".eventlab").exists(), "nothing started or written"
    monkeypatch.setenv("EVENTLAB_MONGODB_URI", "mongodb://u:pw@h:1")
    assert MongoConnectionManager.from_env(database="d").display_uri == "mongodb://***@h:1"


async def test_given_client_is_used_and_left_open(mongo_uri: str, database_name: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        mongo_uri, tz_aware=True, uuidRepresentation="standard"
    )
    async with MongoConnectionManager(client=client, database=database_name) as conn:
        assert conn.client is client
        assert conn.display_uri.startswith("mongodb://")
    assert (await client.admin.command("ping"))["ok"] == 1.0  # still open
    await client.close()


async def test_only_a_native_async_client_is_accepted(mongo_uri: str) -> None:
    from pymongo import MongoClient

    sync_client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, connect=False)
    try:
        with pytest.raises(ConfigurationError, match="AsyncMongoClient, got MongoClient"):
            MongoConnectionManager(client=sync_client)
    finally:
        sync_client.close()


async def test_a_sharded_events_collection_is_refused_with_the_reason(
    connection: MongoConnectionManager,
) -> None:
    # The embedded server is a replica set; the cluster's view is what eventlab asks for: the
    # deployment's kind (hello) and config.collections (written here as mongos keeps it).
    from dataclasses import replace

    from eventlab import MigrationError

    assert connection._info is not None
    connection._info = replace(connection._info, kind="sharded")
    namespace = f"{connection.database_name}.domain_events"
    config = connection.client["config"]["collections"]
    await config.insert_one({"_id": namespace, "key": {"aggregate_id": "hashed"}})
    try:
        store = MongoEventStore(connection)
        with pytest.raises(MigrationError, match=r"sharded on .*unique index prefixed"):
            await store.count()
        with pytest.raises(MigrationError, match="unshardCollection"):
            await store.migrate()
        assert "domain_events" not in await connection.database.list_collection_names()
        # Unsharded there: the store runs, and followers look at every position.
        other = MongoEventStore(connection, events_collection="unsharded_events")
        sid = stream_id()
        await other.append(sid, [make_event(sid, 1)], 0)
        head = await other.log.head()
        assert head.strategy == "transactional" and head.settled_after == head.position == 1
        assert [e.aggregate_id for e in await other.read_all().to_list()] == [sid]
    finally:
        await config.delete_one({"_id": namespace})

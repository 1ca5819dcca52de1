from __future__ import annotations

from typing import Any

import pytest

from eventlab import ConfigurationError, MigrationError, MongoEventStore
from eventlab._mongo.migrations import EVENT_STORE_MIGRATIONS, IndexSpec, Migration, Migrator, asc


async def test_migrate_is_idempotent_and_recorded(connection: Any) -> None:
    store = MongoEventStore(connection, events_collection="ev", auto_migrate=False)
    first = await store.migrate()
    assert first.applied == ("ev:0001_event_store_core",)
    second = await store.migrate()
    assert second.applied == () and second.already_applied == first.applied
    indexes = await store.events.index_information()
    assert indexes["stream_version"]["unique"] and indexes["position"]["unique"]
    query = {
        "aggregate_type_occurred_at",
        "correlation_id",
        "event_type_position",
        "recorded_at",
        "occurred_at",
    }
    assert not query & set(indexes), "query indexes are opt-in: each costs every append"
    records = await connection.database["_migrations"].find().to_list(None)
    assert {r["_id"] for r in records} == set(first.applied)
    third = await store.migrate(query_indexes=True)
    assert third.applied == ("ev:0002_event_store_queries", "ev:0003_event_store_time")
    assert query <= set(await store.events.index_information())
    opted_in = MongoEventStore(connection, events_collection="ev2", query_indexes=True)
    await opted_in.count()  # first use migrates
    assert query <= set(await opted_in.events.index_information())
    assert all(r["applied_at"].tzinfo is not None for r in records)


async def test_migration_failure_is_typed(connection: Any) -> None:
    db = connection.database
    await db["clash"].create_index([("x", 1)], name="x_idx")
    migrator = Migrator(db, {"c": "clash"})
    bad = Migration(1, "clash", "c", (IndexSpec(asc("x"), "x_idx", unique=True),))
    with pytest.raises(MigrationError, match="clash"):
        await migrator.run([bad])
    with pytest.raises(ConfigurationError, match="role"):
        await Migrator(db, {}).run(EVENT_STORE_MIGRATIONS)


async def test_partial_filter_index(connection: Any) -> None:
    migrator = Migrator(connection.database, {"c": "partial"})
    spec = IndexSpec(asc("k"), "k_live", unique=True, partial_filter={"live": True})
    await migrator.run([Migration(1, "partial", "c", (spec,))])
    info = await connection.database["partial"].index_information()
    assert info["k_live"]["partialFilterExpression"] == {"live": True}

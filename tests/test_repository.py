"""Repository, mapper, unit of work and outbox working together in one transaction."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from eventlab import (
    ConcurrencyError,
    ConfigurationError,
    MongoConnectionManager,
    MongoEventStore,
    MongoModelMapper,
    MongoOutboxStore,
    MongoRepository,
    MongoUnitOfWork,
    OutboxMessage,
    QueryOptions,
    SerializationError,
    SpecificationBuilder,
    TransactionsUnsupportedError,
    UnitOfWorkStateError,
    run_unit_of_work,
)
from eventlab.embedded import EmbeddedMongo

from .conftest import stream_id
from .domain import LineAdded


class Tier(enum.Enum):
    GOLD = "gold"
    SILVER = "silver"


class Address(BaseModel):
    city: str
    zip: str


class Customer(BaseModel):
    id: str
    name: str
    tier: Tier
    balance: Decimal
    joined_at: datetime
    address: Address
    tags: list[str] = []
    ref: uuid.UUID | None = None
    version: int = 0


@dataclass
class Note:
    id: ObjectId
    text: str
    created_at: datetime
    scores: list[int] = field(default_factory=list)


def customer(i: int, **over: Any) -> Customer:
    base = dict(
        id=f"c-{i:03d}",
        name=f"Customer {i}",
        tier=Tier.GOLD if i % 3 == 0 else Tier.SILVER,
        balance=Decimal(i) / 4,
        joined_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=i),
        address=Address(city=["Berlin", "Paris", "Lisbon"][i % 3], zip=f"{10000 + i}"),
        tags=["vip"] if i % 5 == 0 else ["new", "promo"] if i % 2 else [],
        ref=uuid.UUID(int=i),
    )
    base.update(over)
    return Customer(**base)  # type: ignore[arg-type]


@pytest.fixture
def customers(connection: MongoConnectionManager) -> MongoRepository[Customer]:
    return MongoRepository(connection=connection, collection="customers", model_cls=Customer)


# -- mapper ---------------------------------------------------------------------------------


def test_mapper_document_shape() -> None:
    mapper = MongoModelMapper(Customer)
    doc = mapper.to_doc(customer(3))
    assert list(doc)[:2] == ["_id", "_version"] and doc["_id"] == "c-003"
    assert doc["tier"] == "gold" and doc["address"] == {"city": "Berlin", "zip": "10003"}
    assert str(doc["balance"]) == "0.75"
    assert mapper.from_doc(doc) == customer(3)
    with pytest.raises(ConfigurationError):
        MongoModelMapper(dict)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        MongoModelMapper(Customer, id_field="nope")
    with pytest.raises(SerializationError):
        mapper.to_doc(Note(ObjectId(), "x", datetime.now(UTC)))  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="does not fit"):
        mapper.from_doc({"_id": "x", "name": 1})


@settings(max_examples=40, deadline=None)
@given(
    name=st.text(max_size=30),
    balance=st.decimals(
        allow_nan=False, allow_infinity=False, places=2, min_value=-(10**9), max_value=10**9
    ),
    days=st.integers(min_value=0, max_value=20000),
    tags=st.lists(st.text(max_size=8), max_size=4),
    ref=st.none() | st.uuids(),
    tier=st.sampled_from(Tier),
)
def test_mapper_round_trip_is_exact(
    name: str, balance: Decimal, days: int, tags: list[str], ref: uuid.UUID | None, tier: Tier
) -> None:
    import bson

    from eventlab._core.bson_values import CODEC_OPTIONS

    mapper = MongoModelMapper(Customer)
    entity = customer(
        1,
        name=name,
        balance=balance,
        tags=tags,
        ref=ref,
        tier=tier,
        joined_at=datetime(1990, 1, 1, tzinfo=UTC) + timedelta(days=days, milliseconds=7),
    )
    stored = bson.decode(
        bson.encode(mapper.to_doc(entity), codec_options=CODEC_OPTIONS), codec_options=CODEC_OPTIONS
    )
    assert mapper.from_doc(stored) == entity


async def test_dataclass_entities_and_hooks(connection: MongoConnectionManager) -> None:
    class NoteRepository(MongoRepository[Note]):
        def _mapper_to_doc(self, entity: Note) -> dict[str, Any]:
            doc = super()._mapper_to_doc(entity)
            doc["score_total"] = sum(entity.scores)  # a computed field, queryable
            return doc

        def _mapper_from_doc(self, doc: dict[str, Any]) -> Note:
            doc = {k: v for k, v in doc.items() if k != "score_total"}
            return super()._mapper_from_doc(doc)

    notes = NoteRepository(connection=connection, collection="notes", model_cls=Note)
    note = Note(ObjectId(), "hello", datetime(2026, 2, 2, 12, 0, 0, 5000, tzinfo=UTC), [3, 4])
    assert await notes.add(note) is note  # unversioned: plain upsert
    assert await notes.get(note.id) == note
    raw = await notes.collection.find_one({"_id": note.id})
    assert raw is not None and raw["score_total"] == 7
    found = await notes.search(
        QueryOptions().with_specification(
            SpecificationBuilder().where("score_total", "gt", 5).build()
        )
    )
    assert found == [note]
    assert await notes.delete(note.id) and not await notes.delete(note.id)
    assert await notes.get(note.id) is None


# -- repository -----------------------------------------------------------------------------


async def test_crud_and_optimistic_concurrency(customers: MongoRepository[Customer]) -> None:
    saved = await customers.add(customer(1))
    assert saved.version == 1
    assert await customers.get("c-001") == saved
    assert await customers.get("missing") is None
    stale = saved
    fresh = await customers.add(saved.model_copy(update={"name": "Renamed"}))
    assert fresh.version == 2
    with pytest.raises(ConcurrencyError) as info:
        await customers.add(stale.model_copy(update={"name": "Lost update"}))
    assert info.value.expected_version == 1 and info.value.actual_version == 2
    with pytest.raises(ConcurrencyError):
        await customers.add(customer(1))  # version 0 = "new", but it exists
    assert (await customers.get("c-001")).name == "Renamed"  # type: ignore[union-attr]
    await customers.add(customer(2))
    assert [c.id for c in await customers.list_all(["c-002", "nope", "c-001"])] == [
        "c-002",
        "c-001",
    ]
    assert len(await customers.list_all()) == 2


async def test_search_operators_ordering_pagination_streaming(
    customers: MongoRepository[Customer],
) -> None:
    for i in range(1, 31):
        await customers.add(customer(i))

    async def ids(spec: Any, *order: str) -> list[str]:
        options = QueryOptions().with_specification(spec).with_ordering(*(order or ("id",)))
        return [c.id for c in await customers.search(options)]

    b = SpecificationBuilder
    assert await ids(b().where("id", "eq", "c-007").build()) == ["c-007"]
    assert len(await ids(b().where("tier", "ne", "gold").build())) == 20
    assert await ids(b().where("balance", "gt", Decimal("7")).build()) == ["c-029", "c-030"]
    assert len(await ids(b().where("balance", "gte", Decimal("7")).build())) == 3
    assert await ids(b().where("joined_at", "lt", datetime(2026, 1, 3, tzinfo=UTC)).build()) == [
        "c-001"
    ]
    assert len(await ids(b().where("balance", "lte", Decimal("1")).build())) == 4
    assert await ids(
        b().where("address.city", "in", ["Paris"]).where("balance", "lt", 2).build()
    ) == ["c-001", "c-004", "c-007"]
    assert len(await ids(b().where("address.city", "not_in", ["Paris", "Lisbon"]).build())) == 10
    assert len(await ids(b().where("tags", "contains", "vip").build())) == 6
    assert len(await ids(b().where("tags", "all", ["new", "promo"]).build())) == 12
    assert len(await ids(b().where("tags", "size", 0).build())) == 12
    assert len(await ids(b().where("ref", "exists", True).build())) == 30
    assert (await ids(b().where("name", "startswith", "Customer 2").build()))[:2] == [
        "c-002",
        "c-020",
    ]
    assert await ids(b().where("balance", "between", [Decimal("2"), Decimal("2.5")]).build()) == [
        "c-008",
        "c-009",
        "c-010",
    ]
    either = b().where("id", "eq", "c-001").or_where("id", "eq", "c-002").build()
    assert await ids(either) == ["c-001", "c-002"]
    assert len(await ids(~b().where("tier", "eq", "gold").build())) == 20
    combined = (
        b().where("tier", "eq", "gold").build() & b().where("address.city", "eq", "Berlin").build()
    )
    assert len(await ids(combined)) == 10
    assert (await ids(b().where("tier", "eq", "gold").build(), "-balance"))[0] == "c-030"

    page = QueryOptions().with_ordering("-joined_at").with_pagination(limit=5, offset=10)
    result = customers.search(page)
    assert [c.id for c in await result] == [f"c-{i:03d}" for i in range(20, 15, -1)]
    assert await result.count() == 30
    streamed = [
        c.id
        async for c in customers.search(QueryOptions().with_ordering("id")).stream(batch_size=7)
    ]
    assert streamed == [f"c-{i:03d}" for i in range(1, 31)]
    projected = await customers.search(
        QueryOptions()
        .with_specification(b().where("id", "eq", "c-003").build())
        .with_projection("name", "address.city")
    )
    assert projected == [{"_id": "c-003", "name": "Customer 3", "address": {"city": "Berlin"}}]


# -- unit of work -----------------------------------------------------------------------------


async def test_one_unit_of_work_for_aggregate_events_and_outbox(
    connection: MongoConnectionManager, customers: MongoRepository[Customer], registry: Any
) -> None:
    store = MongoEventStore(connection, registry=registry)
    outbox = MongoOutboxStore(connection)
    await store.migrate()
    await outbox.migrate()
    await store.get_current_version("warm")

    async def write(uow: Any, sid: str, cid: str) -> None:
        await customers.add(customer(1, id=cid), uow=uow)
        stored = await store.append(
            sid, [LineAdded(sku="a", quantity=1, price=Decimal(1))], 0, uow=uow
        )
        await outbox.save_messages([OutboxMessage.from_stored_event(e) for e in stored], uow=uow)

    sid = stream_id()
    async with MongoUnitOfWork(connection) as uow:
        await write(uow, sid, "c-commit")
        await uow.commit()
    assert uow.committed
    assert await customers.get("c-commit") is not None
    assert len(await store.read_stream(sid)) == 1
    assert (await outbox.counts()).get("pending") == 1

    failed = stream_id()
    with pytest.raises(RuntimeError):
        async with MongoUnitOfWork(connection) as uow:
            await write(uow, failed, "c-abort")
            raise RuntimeError("handler failed after writing")
    assert await customers.get("c-abort") is None
    assert await store.read_stream(failed) == []
    assert (await outbox.counts()).get("pending") == 1

    no_commit = stream_id()
    async with MongoUnitOfWork(connection) as uow:
        await write(uow, no_commit, "c-nocommit")
    assert await customers.get("c-nocommit") is None and not uow.committed

    rolled = stream_id()
    async with MongoUnitOfWork(connection) as uow:
        await write(uow, rolled, "c-rollback")
        await uow.rollback()
        with pytest.raises(UnitOfWorkStateError):
            await customers.add(customer(9), uow=uow)
    assert await store.read_stream(rolled) == []
    with pytest.raises(UnitOfWorkStateError):
        async with uow:
            pass


async def test_client_managed_session_stays_usable(
    connection: MongoConnectionManager, customers: MongoRepository[Customer]
) -> None:
    async with connection.client.start_session() as session:
        async with MongoUnitOfWork(session=session) as uow:
            await customers.add(customer(1), uow=uow)
            await uow.commit()
        assert not session.has_ended
        async with MongoUnitOfWork(session=session) as uow2:
            await customers.add(customer(2), uow=uow2)
            await uow2.commit()
        assert (await connection.database["customers"].count_documents({}, session=session)) == 2
    with pytest.raises(ConfigurationError):
        MongoUnitOfWork()


async def test_run_unit_of_work_retries_transient_failures(
    connection: MongoConnectionManager, customers: MongoRepository[Customer]
) -> None:
    await customers.add(customer(50))  # create the collection outside the transaction
    attempts = 0

    async def work(uow: Any) -> str:
        nonlocal attempts
        attempts += 1
        await customers.add(customer(1), uow=uow)
        return "ok"

    await connection.client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 2},
            "data": {
                "failCommands": ["insert"],
                "errorCode": 112,
                "errorLabels": ["TransientTransactionError"],
            },
        }
    )
    assert await run_unit_of_work(connection, work) == "ok"
    assert attempts == 3
    assert (await customers.get("c-001")) is not None


async def test_standalone_unit_of_work() -> None:
    async with (
        EmbeddedMongo(standalone=True) as server,
        MongoConnectionManager(server.uri, database="solo") as conn,
    ):
        with pytest.raises(TransactionsUnsupportedError, match="replSet"):
            async with MongoUnitOfWork(conn):
                pass
            with pytest.raises(TransactionsUnsupportedError):
                await run_unit_of_work(conn, lambda uow: customers_noop())
            with pytest.warns(RuntimeWarning, match="NOT rolled back"):
                async with MongoUnitOfWork(conn, require_replica_set=False) as uow:
                    assert not uow.transactional
                    repo = MongoRepository(connection=conn, collection="c", model_cls=Customer)
                    await repo.add(customer(1), uow=uow)
                    await uow.commit()
            assert await repo.get("c-001") is not None


async def customers_noop() -> None:  # pragma: no cover - never awaited: the check fails first
    return None

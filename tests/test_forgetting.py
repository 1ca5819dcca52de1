"""Crypto-shredding on both backends: the key stores and the stores given one keep the same
contracts (eventlab.contracts), against the real server and in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eventlab import REDACTED, EventRegistry, MongoConnectionManager, MongoEventStore, MongoKeyStore
from eventlab.contracts import KeyStoreContract, PersonalDataContract, unique
from eventlab.memory import MemoryBackend, MemoryEventStore, MemoryKeyStore

ORDERS = str(Path(__file__).resolve().parent.parent / "data" / "orders.jsonl")


async def _mongo_material(key_store: Any, subject: str) -> bytes:
    doc = await key_store.collection.find_one({"_id": subject})
    return bytes(doc["data_key"])


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


# -- hostile inputs to the entry points that are not the contracts' -------------------------


async def test_a_store_refuses_keys_that_are_not_a_key_store(
    connection: MongoConnectionManager,
) -> None:
    from eventlab import ConfigurationError

    for keys in ("personal_keys", {"$ne": None}, 42, object()):
        with pytest.raises(ConfigurationError, match="KeyStore"):
            MongoEventStore(connection, keys=keys)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="KeyStore"):
            MemoryEventStore(keys=keys)  # type: ignore[arg-type]


async def test_a_store_without_keys_refuses_to_forget(connection: MongoConnectionManager) -> None:
    from eventlab import ConfigurationError

    with pytest.raises(ConfigurationError, match="keys="):
        await MemoryEventStore().forget("someone")
    with pytest.raises(ConfigurationError, match="keys="):
        await MongoEventStore(connection).forget("someone")


@pytest.mark.parametrize(
    "make",
    [
        lambda conn: MongoKeyStore("mongodb://x", "keys"),
        lambda conn: MongoKeyStore(conn, "$bad"),
        lambda conn: MongoKeyStore(conn, {"$ne": None}),
        lambda conn: MongoKeyStore(conn, "x" * 300),
    ],
)
async def test_a_mongo_key_store_refuses_bad_arguments(
    connection: MongoConnectionManager, make: Any
) -> None:
    from eventlab import ConfigurationError

    with pytest.raises(ConfigurationError):
        make(connection)


@pytest.mark.parametrize("store", ["memory", "mongo"])
async def test_get_refuses_what_is_not_a_list_of_subjects(
    connection: MongoConnectionManager, store: str
) -> None:
    from eventlab import ConfigurationError

    keys: Any = MemoryKeyStore() if store == "memory" else MongoKeyStore(connection, unique("k"))
    for subjects in ("one-subject", {"$in": ["a"]}, 42, None):
        with pytest.raises(ConfigurationError):
            await keys.get(subjects)
    if store == "mongo":
        with pytest.raises(ConfigurationError, match="at most"):
            await keys.get(["s"] * 10_001)
        assert await keys.collection.count_documents({}) == 0


@pytest.mark.parametrize("subject", ["", "x" * 600, "nul\x00inside"], ids=["empty", "huge", "nul"])
def test_the_cli_refuses_a_bad_subject_and_writes_nothing(
    mongo_uri: str, database_name: str, subject: str
) -> None:
    from typer.testing import CliRunner

    from eventlab.cli import app

    runner = CliRunner()
    seeded = runner.invoke(app, ["import", ORDERS, "--uri", mongo_uri, "-d", database_name])
    assert seeded.exit_code == 0, seeded.output
    for args in ([subject], [subject, "--dry-run"]):
        done = runner.invoke(app, ["forget", *args, "--uri", mongo_uri, "-d", database_name])
        assert done.exit_code == 1 and "subject" in done.output, done.output
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    try:
        assert "personal_keys" not in client[database_name].list_collection_names()
    finally:
        client.close()


def test_the_cli_forgets_with_a_dry_run_first(mongo_uri: str, database_name: str) -> None:
    from typer.testing import CliRunner

    from eventlab.cli import app

    runner = CliRunner()
    missing = runner.invoke(app, ["forget", "cust-1", "--uri", mongo_uri, "-d", database_name])
    assert missing.exit_code == 1  # no store there: nothing to forget in, nothing written
    seeded = runner.invoke(app, ["import", ORDERS, "--uri", mongo_uri, "-d", database_name])
    assert seeded.exit_code == 0, seeded.output
    args = ["--uri", mongo_uri, "-d", database_name]
    dry = runner.invoke(app, ["forget", "cust-1", "--dry-run", *args])
    assert dry.exit_code == 0 and dry.output.startswith("dry run: subject 'cust-1': no live key")
    done = runner.invoke(app, ["forget", "cust-1", *args])
    assert done.exit_code == 0 and "0 events in 0 streams now read as redacted" in done.output
    again = runner.invoke(app, ["forget", "cust-1", *args])
    assert again.exit_code == 0 and "no live key" in again.output


async def test_a_forget_that_fails_after_the_key_finishes_when_run_again() -> None:
    """The key goes first: a forget cut short after it (a snapshot store that fails) has
    already made the values unreadable, and running it again deletes what is left."""
    from eventlab import AggregateStore, TransientError
    from eventlab.contracts._forgetting import registered
    from eventlab.samples import Customer, CustomerMoved, customer_registry

    store = MemoryEventStore(registry=customer_registry(), keys=MemoryKeyStore())
    snapshots = store.backend.snapshots()
    customer = Customer("cust-1")
    customer.record(registered("cust-1"))
    customer.record(CustomerMoved(customer_id="cust-1", street="1 Main St", city="Leeds"))
    await AggregateStore(store, snapshots=snapshots).save(customer)

    class FailingOnce:
        failed = False

        async def get(self, aggregate_id: str, uow: Any = None) -> Any:
            return await snapshots.get(aggregate_id, uow)

        async def delete(self, aggregate_id: str) -> bool:
            if not self.failed:
                self.failed = True
                raise TransientError("the snapshot store is down")
            return await snapshots.delete(aggregate_id)

    failing = FailingOnce()
    with pytest.raises(TransientError):
        await store.forget("cust-1", snapshots=[failing])  # type: ignore[list-item]
    assert (await store.read_domain_events("cust-1"))[0].email == "<redacted>"
    assert await snapshots.get("cust-1") is not None  # left behind by the failure
    again = await store.forget("cust-1", snapshots=[failing])  # type: ignore[list-item]
    assert (again.had_key, again.snapshots_deleted) == (False, 1)
    assert await snapshots.get("cust-1") is None


def test_the_cli_tells_a_key_kept_elsewhere_from_a_forgotten_one(
    mongo_uri: str, database_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys in a collection of their own: a command that looks in another one stops (exit 1,
    nothing written, no tombstone) instead of reading live data as forgotten."""
    import asyncio
    import json

    from typer.testing import CliRunner

    from eventlab.cli import app
    from eventlab.contracts._forgetting import registered
    from eventlab.samples import customer_registry

    async def seed() -> None:
        async with MongoConnectionManager(mongo_uri, database=database_name) as conn:
            keys = MongoKeyStore(conn, "crm_keys")
            store = MongoEventStore(conn, registry=customer_registry(), keys=keys)
            await store.append("k1", [registered("k1")], 0)

    async def collections() -> list[str]:
        async with MongoConnectionManager(mongo_uri, database=database_name) as conn:
            names: list[str] = await conn.database.list_collection_names()
            return names

    async def databases() -> list[str]:
        async with MongoConnectionManager(mongo_uri, database=database_name) as conn:
            names: list[str] = await conn.client.list_database_names()
            return names

    asyncio.run(seed())
    runner = CliRunner()
    db = ["--uri", mongo_uri, "-d", database_name]
    out = tmp_path / "copy.jsonl"
    for command in (["export", str(out)], ["replay", "k1"], ["forget", "k1"]):
        refused = runner.invoke(app, [*command, *db])
        assert refused.exit_code == 1 and "--keys-collection" in refused.output, refused.output
    assert not out.exists() and "personal_keys" not in asyncio.run(collections())
    keys = ["--keys-collection", "crm_keys"]
    assert runner.invoke(app, ["export", str(out), *db, *keys]).exit_code == 0
    assert json.loads(out.read_text())["payload"]["name"] != "<redacted>"  # still sealed
    # Imported where its subject has neither a key nor a tombstone, the sealed values could
    # never be opened (and --registry would make a new key that cannot open them): refused.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "crm_domain.py").write_text(
        "from eventlab.samples import customer_registry\nregistry = customer_registry()\n"
    )
    copy = ["--uri", mongo_uri, "-d", f"{database_name}_copy"]
    for extra in ([], keys, ["--registry", "crm_domain:registry"]):
        refused = runner.invoke(app, ["import", str(out), *copy, *extra])
        assert refused.exit_code == 1, refused.output
        assert "--keys-collection" in refused.output and "'k1'" in refused.output
    assert f"{database_name}_copy" not in asyncio.run(databases())
    done = runner.invoke(app, ["forget", "k1", *db, *keys])
    assert done.exit_code == 0 and "1 event in 1 stream now read as redacted" in done.output
    assert runner.invoke(app, ["export", str(out), "--force", *db, *keys]).exit_code == 0
    assert json.loads(out.read_text())["payload"]["name"] == "<redacted>"


def test_import_seals_personal_fields_or_refuses_their_plain_text(
    mongo_uri: str, database_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import json
    import uuid

    from typer.testing import CliRunner

    from eventlab.cli import app
    from eventlab.contracts._forgetting import registered
    from eventlab.samples import CustomerMoved, customer_registry

    def line(event_type: str, stream: str, version: int, payload: dict[str, Any]) -> str:
        return json.dumps(
            {
                "event_id": str(uuid.uuid4()),
                "event_type": event_type,
                "aggregate_id": stream,
                "aggregate_type": "Customer",
                "version": version,
                "schema_version": 1,
                "occurred_at": "2026-01-01T00:00:00+00:00",
                "payload": payload,
                "metadata": {},
            }
        )

    async def seeded_store(conn: MongoConnectionManager) -> MongoEventStore:
        return MongoEventStore(conn, registry=customer_registry(), keys=MongoKeyStore(conn))

    async def seed() -> None:
        async with MongoConnectionManager(mongo_uri, database=database_name) as conn:
            await (await seeded_store(conn)).append("imp1", [registered("imp1")], 0)

    async def raw_and_read() -> tuple[list[bytes], list[Any]]:
        async with MongoConnectionManager(mongo_uri, database=database_name) as conn:
            from bson.raw_bson import RawBSONDocument

            raw = conn.database.get_collection("domain_events").with_options(
                codec_options=conn.database.codec_options.with_options(
                    document_class=RawBSONDocument
                )
            )
            docs = [d.raw async for d in raw.find({})]
            store = await seeded_store(conn)
            return docs, await store.read_domain_events("imp1")

    asyncio.run(seed())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "crm_domain.py").write_text(
        "from eventlab.samples import customer_registry\nregistry = customer_registry()\n"
    )
    db = ["--uri", mongo_uri, "-d", database_name]
    runner = CliRunner()
    plain = tmp_path / "plain.jsonl"
    plain.write_text(
        line("CustomerRegistered", "imp2", 1, {"customer_id": "imp2", "name": "PLAIN-NAME",
             "email": "p@x", "plan": "free"}) + "\n"
    )  # fmt: skip
    refused = runner.invoke(app, ["import", str(plain), *db])
    assert refused.exit_code == 1 and "--registry" in refused.output, refused.output

    def moved_file(name: str, stream: str, version: int, street: str, credit: str) -> Path:
        """A file of one CustomerMoved event (its city the same text as its street)."""
        path = tmp_path / name
        payload = {"customer_id": stream, "street": street, "city": street, "credit": credit}
        path.write_text(line("CustomerMoved", stream, version, payload) + "\n")
        return path

    moved = moved_file("moved.jsonl", "imp1", 2, "PLAIN-STREET", "0")
    registry = ["--registry", "crm_domain:registry"]
    for _ in range(2):  # the second run resumes: the sealed event is the same bytes
        done = runner.invoke(app, ["import", str(moved), *db, *registry])
        assert done.exit_code == 0, done.output
    assert "skipped 1 event already stored" in done.output
    raw, read = asyncio.run(raw_and_read())
    assert not any(b"PLAIN-" in doc for doc in raw) and len(raw) == 2
    assert isinstance(read[1], CustomerMoved) and read[1].street == "PLAIN-STREET"
    # An event holding the redaction marker as text (a forgotten subject's, imported as it
    # is) does not make the type look unsealed: the next plain value is still refused.
    marker = moved_file("marker.jsonl", "imp3", 1, "<redacted>", "<redacted>")
    kept = runner.invoke(app, ["import", str(marker), *db])
    assert kept.exit_code == 0, kept.output
    after = moved_file("after.jsonl", "imp4", 1, "PLAIN-AFTER", "0")
    refused = runner.invoke(app, ["import", str(after), *db])
    assert refused.exit_code == 1 and "--registry" in refused.output, refused.output
    assert not any(b"PLAIN-AFTER" in doc for doc in asyncio.run(raw_and_read())[0])
    assert runner.invoke(app, ["forget", "imp1", *db]).exit_code == 0
    assert asyncio.run(raw_and_read())[1][1].street == "<redacted>"


async def test_a_snapshot_in_a_collection_of_its_own_holds_no_plaintext_after_a_forget(
    connection: MongoConnectionManager,
) -> None:
    """Snapshots in a collection forget() is not told of: sealed with the subject's key, so
    a raw scan of every collection finds nothing of the forgotten subject."""
    from bson.raw_bson import RawBSONDocument

    from eventlab import AggregateStore, MongoSnapshotStore
    from eventlab.contracts._forgetting import registered
    from eventlab.samples import Customer, CustomerMoved, customer_registry

    keys = MongoKeyStore(connection, unique("keys"))
    store = MongoEventStore(
        connection, registry=customer_registry(), keys=keys, events_collection=unique("events")
    )
    aggregates = AggregateStore(
        store, snapshots=MongoSnapshotStore(connection, collection=unique("customer_snapshots"))
    )
    for subject in ("c1", "c2"):
        customer = Customer(subject)
        customer.record(registered(subject, name=f"Ada Secret{subject}"))
        customer.record(CustomerMoved(customer_id=subject, street="12 Secret St", city="Ely"))
        await aggregates.save(customer)

    async def scan(needle: bytes) -> list[str]:
        database = connection.database
        options = database.codec_options.with_options(document_class=RawBSONDocument)
        found = []
        for name in await database.list_collection_names():
            raw = database.get_collection(name).with_options(codec_options=options)
            found += [name async for doc in raw.find({}) if needle in doc.raw]
        return found

    assert await scan(b"Secretc1") == []  # sealed at rest, the snapshot too
    assert (await aggregates.load(Customer, "c1")).name == "Ada Secretc1"
    assert (await store.forget("c1")).snapshots_deleted == 0  # not told of that collection
    loaded = await aggregates.load(Customer, "c1")
    assert (loaded.name, loaded.address) == (REDACTED, "<redacted>, <redacted>")
    assert (await aggregates.load(Customer, "c2")).name == "Ada Secretc2"
    assert await scan(b"Secretc1") == [] and await scan(b"12 Secret St") == []

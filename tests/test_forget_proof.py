"""The forget-and-scan proof: personal data written through every path eventlab has (appends,
snapshots, a read model, the outbox, the frame cache, exports), one subject forgotten, then
every collection of the database (raw BSON) and every file eventlab wrote (raw bytes, and
Parquet decoded) scanned for the forgotten values: none is found; the other subject's data is
intact and readable; a follower stays contiguous."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from bson.raw_bson import RawBSONDocument
from typer.testing import CliRunner

from eventlab import (
    REDACTED,
    AggregateStore,
    MongoConnectionManager,
    MongoEventStore,
    MongoKeyStore,
    MongoOutboxStore,
    OutboxMessage,
    Projection,
    Projector,
    Rows,
    StoredEvent,
    Subscriber,
    on,
)
from eventlab.cli import app
from eventlab.samples import Customer, CustomerMoved, CustomerRegistered, customer_registry
from eventlab.workbench import read_frame
from eventlab.workbench._flat import export_flat

GONE, KEPT = "cust-ada", "cust-grace"
SECRETS = {
    GONE: ["Ada Lovelace", "ada.lovelace@example.org", "12 Analytical Street", "Marylebone"],
    KEPT: ["Grace Hopper", "grace.hopper@example.org", "7 Cobol Lane", "Arlington"],
}


class Contacts(Projection):
    """A read model that copies personal data (what a careless projection does)."""

    name = "contacts"
    version = 1

    @on("CustomerRegistered")
    async def registered(self, rows: Rows, event: StoredEvent) -> None:
        rows.put(
            event.aggregate_id, {"name": event.payload["name"], "email": event.payload["email"]}
        )

    @on("CustomerMoved")
    async def moved(self, rows: Rows, event: StoredEvent) -> None:
        row = await rows.get(event.aggregate_id) or {}
        rows.put(event.aggregate_id, {**row, "street": event.payload["street"]})


def _customer(subject: str) -> Customer:
    name, email, street, city = SECRETS[subject]
    customer = Customer(subject)
    customer.record(CustomerRegistered(customer_id=subject, name=name, email=email))
    customer.record(CustomerMoved(customer_id=subject, street=street, city=city))
    return customer


def _cli(uri: str, database: str, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--uri", uri, "--database", database])
    assert result.exit_code == 0, result.output
    return result.output


async def _scan_database(connection: MongoConnectionManager, needles: list[bytes]) -> list[str]:
    """Every collection of the database, every document as raw BSON: where a needle is."""
    database = connection.database
    found = []
    for name in await database.list_collection_names():
        raw = database.get_collection(name).with_options(
            codec_options=database.codec_options.with_options(document_class=RawBSONDocument)
        )
        async for doc in raw.find({}):
            for needle in needles:
                if needle in doc.raw:
                    found.append(f"{name}: {needle!r}")
    return found


def _scan_files(root: Path, needles: list[bytes]) -> list[str]:
    """Every file under ``root``: its raw bytes, and Parquet files decoded too (compressed
    pages could hide a value from a byte scan)."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        texts = [path.read_bytes()]
        if path.suffix == ".parquet":
            texts.append(json.dumps(pq.read_table(path).to_pylist(), default=repr).encode())
        for text in texts:
            found += [f"{path.name}: {needle!r}" for needle in needles if needle in text]
    return found


@pytest.mark.timeout(240)
async def test_forgetting_a_subject_leaves_no_plaintext_anywhere(
    connection: MongoConnectionManager, mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    keys = MongoKeyStore(connection)
    store = MongoEventStore(connection, registry=customer_registry(), keys=keys)
    snapshots = store.backend.snapshots()
    aggregates = AggregateStore(store, snapshots=snapshots)
    outbox = MongoOutboxStore(connection)
    seen: list[int] = []

    async def follow(event: StoredEvent, uow: Any) -> None:
        seen.append(event.position or 0)

    follower = Subscriber(store, "follower", follow)
    projector = Projector(store, Contacts(), keep_retired=0)

    # Every path, for both subjects.
    for subject in (GONE, KEPT):
        await aggregates.save(_customer(subject))  # appends, and a snapshot (every 2)
        assert (await snapshots.get(subject)) is not None
    stored = await store.read_stream(GONE) + await store.read_stream(KEPT)
    sealed = [e for e in (await store.log.sealed().read(0, 4)).events]
    await outbox.save_messages([OutboxMessage.from_stored_event(e) for e in sealed])
    await projector.run_until_caught_up()
    await follower.run_until_caught_up()
    cache = tmp_path / "cache"
    before = await read_frame(store, cache=cache, progress=False)
    assert sorted(before["payload.name"].dropna()) == ["Ada Lovelace", "Grace Hopper"]
    await export_flat(store, tmp_path / "flat-before", progress=False)
    await asyncio.to_thread(_cli, mongo_uri, database_name, "export", str(tmp_path / "a.jsonl"))
    await asyncio.to_thread(_cli, mongo_uri, database_name, "export", str(tmp_path / "a.parquet"))
    assert {row["name"] for row in await projector.rows()} == {"Ada Lovelace", "Grace Hopper"}
    assert len(stored) == 4

    # Before: the copies on disk and the snapshot hold no plaintext (sealed, the snapshot
    # with the subject's key); the read model does (what the scan must then find gone).
    gone = [value.encode() for value in SECRETS[GONE]]
    assert _scan_files(tmp_path, gone) == []
    found = await _scan_database(connection, gone)
    assert any(f.startswith("rm_contacts") for f in found), found
    assert not any(f.startswith("snapshots") for f in found), found

    # The dry run says what would become unreadable, and changes nothing.
    said = await asyncio.to_thread(_cli, mongo_uri, database_name, "forget", GONE, "--dry-run")
    assert "2 events in 1 stream would become redacted" in said and GONE in said
    assert (await store.read_domain_events(GONE))[0].name == "Ada Lovelace"

    said = await asyncio.to_thread(_cli, mongo_uri, database_name, "forget", GONE)
    assert "2 events in 1 stream now read as redacted; deleted 1 snapshot" in said

    # What comes after: projections rebuilt, the cache refreshed, exports and messages again.
    await projector.rebuild()
    await projector.read_models.drop_retired("contacts", 0)
    after = await read_frame(store, cache=cache, progress=False)
    await export_flat(store, tmp_path / "flat-after", progress=False)
    await asyncio.to_thread(_cli, mongo_uri, database_name, "export", str(tmp_path / "b.jsonl"))
    await asyncio.to_thread(_cli, mongo_uri, database_name, "export", str(tmp_path / "b.parquet"))
    later = await store.read_stream(GONE)
    await outbox.save_messages(
        [OutboxMessage(message_id=str(uuid.uuid4()), event_type=e.event_type, payload=e.payload)
         for e in later]
    )  # fmt: skip
    await store.append(KEPT, [CustomerMoved(customer_id=KEPT, street="9 Next Rd", city="Ely")], 2)
    await follower.run_until_caught_up()

    # The scan: nothing of the forgotten subject anywhere eventlab wrote.
    assert await _scan_database(connection, gone) == []
    assert _scan_files(tmp_path, gone) == []
    # ... while the scan does find what was not forgotten, where it is kept opened.
    assert await _scan_database(connection, [b"Grace Hopper"])  # the read model holds it

    # Every read shows the marker for the forgotten subject, the values for the other.
    registered = (await store.read_domain_events(GONE))[0]
    assert registered.name is REDACTED and registered.email is REDACTED
    other = await aggregates.load(Customer, KEPT)
    assert (other.name, other.address) == ("Grace Hopper", "9 Next Rd, Ely")
    assert (await aggregates.load(Customer, GONE)).email is REDACTED
    rows = {row["_id"]: row for row in await projector.rows()}
    assert rows[GONE]["name"] == "<redacted>" and rows[KEPT]["email"] == SECRETS[KEPT][1]
    by_stream = after.set_index(["aggregate_id", "version"])
    assert by_stream.loc[(GONE, 1), "payload.name"] is REDACTED
    assert bool(by_stream.loc[(GONE, 1), "redacted"]) and not by_stream.loc[(KEPT, 1), "redacted"]
    assert by_stream.loc[(KEPT, 1), "payload.email"] == SECRETS[KEPT][1]
    flat = ds.dataset(tmp_path / "flat-after", partitioning="hive").to_table().to_pylist()
    assert {row["aggregate_id"] for row in flat if row["redacted"]} == {GONE}
    lines = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    exported = {(line["aggregate_id"], line["version"]): line["payload"] for line in lines}
    assert exported[(GONE, 1)]["name"] == "<redacted>" == exported[(GONE, 2)]["city"]
    assert "$binary" in json.dumps(exported[(KEPT, 1)]["name"])  # kept sealed in the copy
    messages = [await outbox.get(str(e.event_id)) for e in stored]
    assert all(m is not None for m in messages)

    # An export imported again keeps its values sealed: readable through the same key store,
    # the forgotten subject's as the marker, and no read fails.
    await asyncio.to_thread(
        _cli, mongo_uri, database_name, "import", str(tmp_path / "b.jsonl"),
        "--events-collection", "restored",
    )  # fmt: skip
    restored = MongoEventStore(
        connection, registry=customer_registry(), keys=keys, events_collection="restored"
    )
    assert (await restored.read_domain_events(KEPT))[0].name == "Grace Hopper"
    back = (await restored.read_domain_events(GONE))[0]
    assert back.name is REDACTED and back.born is REDACTED

    # The follower saw every position once, in order, with no hole.
    head = (await store.log.head()).position
    assert seen == list(range(1, head + 1))

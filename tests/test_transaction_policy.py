"""One transaction policy: every transaction any component runs commits with ``w: "majority"``
(seen on the wire), the sync runner of the ``eventsourcing`` module is generated from the async
one and behaves as it does, and a commit given up on is ended on the server."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError
from pymongo import monitoring

from eventlab import (
    AggregateStore,
    MongoConnectionManager,
    MongoEventStore,
    MongoOutboxStore,
    MongoSnapshotStore,
    MongoUnitOfWork,
    OutboxMessage,
    Projector,
    Subscriber,
    run_unit_of_work,
)
from eventlab.eventsourcing import MongoApplicationRecorder, MongoDatastore
from eventlab.samples import Order, OrderTotals, generate_orders, order_registry

from .conftest import make_event, stream_id


def _majority(write_concern: Any) -> bool:
    # A retried commit carries wtimeout too (the drivers' specification adds it).
    return isinstance(write_concern, dict) and write_concern.get("w") == "majority"


class Commits(monitoring.CommandListener):
    """The write concern of every ``commitTransaction``, and every ``killSessions``."""

    def __init__(self) -> None:
        self.write_concerns: list[Any] = []
        self.kills = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "commitTransaction":
            self.write_concerns.append(event.command.get("writeConcern"))
        if event.command_name == "killSessions":
            self.kills += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_every_commit_of_every_component_has_majority_write_concern(
    mongo_uri: str, database_name: str
) -> None:
    commits = Commits()
    async with MongoConnectionManager(
        mongo_uri, database=database_name, event_listeners=[commits]
    ) as connection:
        store = MongoEventStore(connection, registry=order_registry())
        seen: Counter[str] = Counter()

        async def count(what: str, work: Any) -> None:
            before = len(commits.write_concerns)
            await work
            seen[what] += len(commits.write_concerns) - before

        aggregates = AggregateStore(store, snapshots=MongoSnapshotStore(connection))
        orders = list(generate_orders(3))
        await count("append", aggregates.save(orders[0]))

        async def in_unit_of_work() -> None:
            async with MongoUnitOfWork(connection) as uow:
                await aggregates.save(orders[1], uow=uow)
                await uow.commit()

        await count("unit of work", in_unit_of_work())

        async def snapshot_in_runner(uow: Any) -> None:
            await aggregates.save(orders[2], uow=uow)
            order = await aggregates.load(Order, orders[2].id, uow=uow)
            await aggregates.snapshot(order, uow=uow)

        await count("run_unit_of_work", run_unit_of_work(connection, snapshot_in_runner))
        outbox = MongoOutboxStore(connection, ordered=True)
        await outbox.migrate()
        message = OutboxMessage(message_id="m-1", event_type="E", payload={}, ordering_key="k")
        await count("outbox", outbox.save_messages([message]))

        async def effect(event: Any, uow: Any) -> None:
            return None

        subscriber = Subscriber(store, "policy", effect)
        await count("subscriber", subscriber.run_until_caught_up())
        projector = Projector(store, OrderTotals())
        await count("projector", projector.run_until_caught_up())
        await count("rebuild", projector.rebuild())
        sid = stream_id()
        await count("restore", store.restore([make_event(sid, 1).with_position(10**6)]))
        preallocated = MongoEventStore(
            connection, events_collection="holes", positions="preallocated"
        )
        await preallocated.count()
        await preallocated.counters.update_one(
            {"_id": "holes.position"}, {"$inc": {"seq": 2}}
        )  # two positions taken and never used
        await count("abandon", preallocated.read_all(gap_timeout=0).to_list())
    assert all(seen.values()) and len(seen) == 9, seen
    assert commits.write_concerns, "commits were seen"
    assert all(_majority(wc) for wc in commits.write_concerns), Counter(
        str(wc) for wc in commits.write_concerns
    )


def test_the_sync_runner_is_generated_from_the_async_one() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    checked = subprocess.run(
        [sys.executable, str(root / "tools" / "synchro.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_sync_runner_backs_off_and_ends_the_session_when_it_gives_up(
    mongo_uri: str, database_name: str
) -> None:
    commits = Commits()
    datastore = MongoDatastore(mongo_uri, database_name, event_listeners=[commits])
    recorder = MongoApplicationRecorder(datastore, "stored_events")
    recorder.create_table()
    admin = datastore.client.admin
    admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 10_000},
            "data": {
                "failCommands": ["commitTransaction"],
                "errorCode": 91,
                "errorLabels": ["UnknownTransactionCommitResult"],
            },
        }
    )
    try:
        with pytest.raises(OperationalError, match="outcome is unknown"):
            datastore.transaction(
                lambda s: datastore.database["t"].insert_one({"_id": uuid.uuid4()}, session=s),
                time_budget=0.5,
            )
    finally:
        admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        datastore.close()
    # Retried as commits with backoff (a hot loop sends hundreds in half a second), all with
    # majority, and the session ended on the server once given up on.
    assert 2 <= len(commits.write_concerns) < 60, len(commits.write_concerns)
    assert all(_majority(wc) for wc in commits.write_concerns)
    assert commits.kills == 1


async def test_the_async_unit_of_work_ends_the_session_when_it_gives_up(
    mongo_uri: str, database_name: str
) -> None:
    commits = Commits()
    async with MongoConnectionManager(
        mongo_uri, database=database_name, event_listeners=[commits]
    ) as connection:
        store = MongoEventStore(connection)
        await store.count()
        await connection.client.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": {"times": 10_000},
                "data": {
                    "failCommands": ["commitTransaction"],
                    "errorCode": 91,
                    "errorLabels": ["UnknownTransactionCommitResult"],
                },
            }
        )
        try:
            from eventlab import CommitOutcomeUnknownError

            with pytest.raises(CommitOutcomeUnknownError):
                async with MongoUnitOfWork(connection, commit_time_budget=0.3) as uow:
                    sid = stream_id()
                    await store.append(sid, [make_event(sid, 1)], 0, uow=uow)
                    await uow.commit()
        finally:
            await connection.client.admin.command(
                {"configureFailPoint": "failCommand", "mode": "off"}
            )
        assert commits.kills == 1
        assert all(_majority(wc) for wc in commits.write_concerns)
        # The counter it held is free again: the next append does not wait for it.
        sid = stream_id()
        await asyncio.wait_for(store.append(sid, [make_event(sid, 1)], 0), 30)

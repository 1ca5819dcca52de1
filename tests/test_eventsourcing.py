"""The `eventsourcing` library's own test cases, unmodified, judge eventlab's MongoDB module:
each subclass below only says how to create a recorder or sets the environment. One case is
scaled down (``test_concurrent_no_conflicts``: 10,000 events through 10 threads took 80 s of the
suite on the embedded server and checked only that nothing raised): the same shape, fewer
events, and it checks what was stored."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote_plus

import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InterfaceError,
    OperationalError,
    ProcessRecorder,
    StoredEvent,
    TrackingRecorder,
)

# Modules, not names: pytest would collect an imported base TestCase as a test of its own.
from eventsourcing.tests import application as library_application
from eventsourcing.tests import persistence as library
from eventsourcing.utils import Environment
from pymongo import MongoClient

from eventlab.eventsourcing import (
    EMBEDDED_STORAGE,
    MongoAggregateRecorder,
    MongoApplicationRecorder,
    MongoDatastore,
    MongoFactory,
    MongoProcessRecorder,
    MongoTrackingRecorder,
)

URI: dict[str, str] = {}


@pytest.fixture(autouse=True, scope="module")
def _deployment(mongo_uri: str) -> Iterator[None]:
    # unittest.TestCase classes take no fixtures: the deployment is handed over here.
    URI["uri"] = mongo_uri
    yield


class OnMongo:
    """A fresh database per test, dropped afterwards."""

    database: str
    datastore: MongoDatastore

    def setUp(self) -> None:
        self.database = f"es_{uuid.uuid4().hex[:12]}"
        self.datastore = MongoDatastore(URI["uri"], self.database)
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        self.datastore.client.drop_database(self.database)
        self.datastore.close()


class TestAggregateRecorder(OnMongo, library.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        recorder = MongoAggregateRecorder(self.datastore, "stored_events")
        recorder.create_table()
        return recorder


class TestApplicationRecorder(
    OnMongo, library.ApplicationRecorderTestCase[MongoApplicationRecorder]
):
    def create_recorder(self) -> MongoApplicationRecorder:
        recorder = MongoApplicationRecorder(self.datastore, "stored_events")
        recorder.create_table()
        return recorder

    def test_insert_subscribe(self) -> None:
        # Optional in the library's suite (a recorder may not support subscribe): this one does.
        self.optional_test_insert_subscribe()

    def test_concurrent_no_conflicts(self, initial_position: int = 0) -> None:
        """The library's case, scaled down: 10 writer threads insert 30 batches of 40 events
        while two readers select notifications; every batch is stored, and the notification
        ids are 1..N with no gap and no repeat."""
        recorder = self.create_recorder()
        batches, per_batch = 30, 40
        errors: list[BaseException] = []
        stop_reading = threading.Event()

        def insert() -> None:
            originator = uuid.uuid4()
            recorder.insert_events(
                [
                    StoredEvent(
                        originator_id=originator, originator_version=i, topic="t", state=b"s"
                    )
                    for i in range(per_batch)
                ]
            )

        def read() -> None:
            while not stop_reading.is_set():
                try:
                    recorder.select_notifications(
                        start=initial_position, limit=10, inclusive_of_start=False
                    )
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)
                    return

        readers = [threading.Thread(target=read) for _ in range(2)]
        for reader in readers:
            reader.start()
        try:
            with ThreadPoolExecutor(max_workers=10) as pool:
                for future in [pool.submit(insert) for _ in range(batches)]:
                    future.result()
        finally:
            stop_reading.set()
            for reader in readers:
                reader.join()
        assert errors == []
        total = batches * per_batch
        ids = [n.id for n in recorder.select_notifications(start=1, limit=total + 10)]
        assert ids == list(range(1, total + 1))
        assert recorder.max_notification_id() == total


class TestTrackingRecorder(OnMongo, library.TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        recorder = MongoTrackingRecorder(self.datastore)
        recorder.create_table()
        return recorder


class TestProcessRecorder(OnMongo, library.ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        recorder = MongoProcessRecorder(self.datastore, "stored_events", "tracking")
        recorder.create_table()
        return recorder


class TestNonInterleavingNotificationIDs(OnMongo, library.NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> ApplicationRecorder:
        recorder = MongoApplicationRecorder(self.datastore, "stored_events")
        recorder.create_table()
        return recorder


class TrackingRecorderSubclass(MongoTrackingRecorder):
    pass


class TestInfrastructureFactory(library.InfrastructureFactoryTestCase[MongoFactory]):
    def expected_factory_class(self) -> type[MongoFactory]:
        return MongoFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return MongoAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return MongoApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return MongoTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return TrackingRecorderSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return MongoProcessRecorder

    def setUp(self) -> None:
        self.database = f"es_{uuid.uuid4().hex[:12]}"
        self.env = Environment(
            "TestCase",
            {
                "PERSISTENCE_MODULE": "eventlab.eventsourcing",
                "MONGODB_URI": URI["uri"],
                "MONGODB_DATABASE": self.database,
            },
        )
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        client: MongoClient[dict[str, Any]] = MongoClient(URI["uri"])
        client.drop_database(self.database)
        client.close()


class TestExampleApplication(library_application.ExampleApplicationTestCase):
    expected_factory_topic = "eventlab.eventsourcing:MongoFactory"
    _saved: ClassVar[dict[str, str | None]] = {}

    def setUp(self) -> None:
        self.database = f"es_{uuid.uuid4().hex[:12]}"
        settings = {
            "PERSISTENCE_MODULE": "eventlab.eventsourcing",
            "MONGODB_URI": URI["uri"],
            "MONGODB_DATABASE": self.database,
        }
        for key, value in settings.items():
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        client: MongoClient[dict[str, Any]] = MongoClient(URI["uri"])
        client.drop_database(self.database)
        client.close()


def test_an_application_written_from_two_threads_opens_in_the_workbench(
    mongo_uri: str, database_name: str
) -> None:
    """An `eventsourcing` application on eventlab's module, written from two threads, then
    opened with eventlab's own reads: every event present, no gaps, JSON fields as columns."""

    from eventsourcing.tests.application import BankAccounts

    app = BankAccounts(
        env={
            "PERSISTENCE_MODULE": "eventlab.eventsourcing",
            "MONGODB_URI": mongo_uri,
            "MONGODB_DATABASE": database_name,
        }
    )
    try:
        _write_and_open(app, mongo_uri, database_name)
    finally:
        app.close()


def _write_and_open(app: Any, mongo_uri: str, database_name: str) -> None:
    import asyncio
    from decimal import Decimal

    from eventlab import MongoConnectionManager, MongoEventStore
    from eventlab.workbench import find_gaps, read_frame

    accounts = [app.open_account(f"owner {n}", f"owner{n}@example.com") for n in range(2)]

    def credit(account_id: uuid.UUID) -> None:
        for _ in range(25):
            app.credit_account(account_id, Decimal("1.00"))

    threads = [threading.Thread(target=credit, args=(a,)) for a in accounts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [app.get_balance(a) for a in accounts] == [Decimal("25.00")] * 2
    expected = 2 + 2 * 25  # two openings, fifty credits
    assert app.recorder.max_notification_id() == expected

    async def open_with_eventlab() -> Any:
        async with MongoConnectionManager(mongo_uri, database=database_name) as conn:
            store = MongoEventStore(conn, events_collection="bankaccounts_events")
            return await read_frame(store)

    frame = asyncio.run(open_with_eventlab())
    assert len(frame) == expected and list(frame["position"]) == list(range(1, expected + 1))
    report = find_gaps(frame)
    assert report.clean, report
    assert set(frame["aggregate_id"]) == {str(a) for a in accounts}
    assert frame["event_type"].astype(str).str.endswith("TransactionAppended").sum() == 50
    # The default JSON transcoder's state, as columns (a Decimal is {"_type_", "_data_"} there).
    assert "payload.amount._data_" in frame.columns and "payload.timestamp._data_" in frame.columns
    assert set(frame["payload.amount._data_"].dropna()) == {"1.00"}


async def test_the_sync_recorders_work_inside_a_running_event_loop(
    mongo_uri: str, database_name: str
) -> None:
    """A Jupyter cell has a running loop: the library's synchronous calls still work there."""
    from decimal import Decimal

    from eventsourcing.tests.application import BankAccounts

    app = BankAccounts(
        env={
            "PERSISTENCE_MODULE": "eventlab.eventsourcing",
            "MONGODB_URI": mongo_uri,
            "MONGODB_DATABASE": database_name,
        }
    )
    try:
        account = app.open_account("Ada", "ada@example.com")
        app.credit_account(account, Decimal("3.00"))
        assert app.get_balance(account) == Decimal("3.00")
        with app.recorder.subscribe(gt=0) as subscription:
            first = next(subscription)
            assert first.id == 1 and first.originator_id == account
    finally:
        app.close()


@pytest.fixture
def no_deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No URI in the environment, and a working directory with no `eventlab serve`."""
    for name in ("EVENTLAB_MONGODB_URI", "MONGODB_URI", EMBEDDED_STORAGE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_without_a_deployment_the_factory_says_what_to_set(no_deployment: Path) -> None:
    with pytest.raises(InterfaceError) as caught:
        MongoFactory(Environment("Bank", {}))
    message = str(caught.value)
    assert "MONGODB_URI" in message and "eventlab serve" in message
    assert EMBEDDED_STORAGE in message
    assert not (no_deployment / ".eventlab").exists(), "nothing was started or written"


def test_the_factory_uses_the_serve_running_here(no_deployment: Path, mongo_uri: str) -> None:
    from eventlab._core.deployment import DEFAULT_STORAGE, ServeClaim

    claim = ServeClaim()
    assert claim.take()
    claim.publish({"uri": mongo_uri, "pid": os.getpid(), "storage": str(DEFAULT_STORAGE.resolve())})
    factory = MongoFactory(Environment("Bank", {"MONGODB_DATABASE": f"es_{uuid.uuid4().hex[:8]}"}))
    try:
        assert factory.datastore.uri == mongo_uri
        assert factory.application_recorder().max_notification_id() is None
    finally:
        factory.datastore.client.drop_database(factory.datastore.database.name)
        factory.close()
        claim.release()


def test_an_embedded_server_only_when_asked_and_its_data_survives(no_deployment: Path) -> None:
    from eventsourcing.tests.application import BankAccounts

    from eventlab import eventsourcing as module

    storage = no_deployment / "bank-data"
    env = {"PERSISTENCE_MODULE": "eventlab.eventsourcing", EMBEDDED_STORAGE: str(storage)}
    bank = BankAccounts(env=env)
    try:
        account = bank.open_account("Ada", "ada@example.com")
    finally:
        bank.close()
    module._embedded.pop(storage.resolve()).stop()  # the process's server goes away
    again = BankAccounts(env=env)  # a new server on the same directory
    try:
        assert again.get_account(account).full_name == "Ada"
    finally:
        again.close()
        module._embedded.pop(storage.resolve()).stop()


def test_driver_errors_leave_as_the_librarys_own_without_secrets() -> None:
    secret = "s3cr3t-P@ss"
    with pytest.raises(InterfaceError) as bad:
        MongoDatastore(f"mongodb://ada:{secret}@host:notaport/", "bank")
    assert secret not in str(bad.value) and "***" in str(bad.value)
    quoted = quote_plus(secret)
    datastore = MongoDatastore(
        f"mongodb://ada:{quoted}@127.0.0.1:1/?serverSelectionTimeoutMS=200", "bank"
    )
    try:
        recorder = MongoApplicationRecorder(datastore, "stored_events")
        with pytest.raises(OperationalError) as unreachable:
            recorder.max_notification_id()
        with pytest.raises(OperationalError):
            recorder.select_notifications(start=1, limit=10)
        shown = str(unreachable.value) + repr(datastore)
        assert secret not in shown and quoted not in shown
    finally:
        datastore.close()


def test_the_cli_opens_an_applications_store(mongo_uri: str, database_name: str) -> None:
    from decimal import Decimal

    from eventsourcing.tests.application import BankAccounts
    from typer.testing import CliRunner

    from eventlab.cli import app as cli

    env = {
        "PERSISTENCE_MODULE": "eventlab.eventsourcing",
        "MONGODB_URI": mongo_uri,
        "MONGODB_DATABASE": database_name,
    }
    bank = BankAccounts(env=env)
    try:
        account = bank.open_account("Grace", "grace@example.com")
        bank.credit_account(account, Decimal("5.00"))
    finally:
        bank.close()
    base = ["--uri", mongo_uri, "--database", database_name]
    result = CliRunner().invoke(cli, ["stats", *base, "--events-collection", "bankaccounts_events"])
    assert result.exit_code == 0, result.output
    assert "2 events in 1 streams" in result.output and "0 missing" in result.output
    gaps = CliRunner().invoke(cli, ["gaps", *base, "--events-collection", "bankaccounts_events"])
    assert "missing_positions                 0" in gaps.output, gaps.output


def test_the_documented_bank_application_runs_as_written(
    mongo_uri: str,
    database_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    tmp_path: Path,
) -> None:
    import importlib
    import re

    page = (Path(__file__).resolve().parent.parent / "docs" / "eventsourcing.md").read_text()
    (source,) = re.findall(r"^```python\n(.*?)^```", page, re.S | re.M)
    module = f"bank_{uuid.uuid4().hex[:8]}"  # the page's bank.py: the library imports its topics
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PERSISTENCE_MODULE", "eventlab.eventsourcing")
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DATABASE", database_name)
    importlib.import_module(module)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "125.50"
    assert [line.split()[0] for line in printed[1:]] == ["1", "2", "3"]
    assert printed[1].endswith("BankAccount.Opened") and printed[3].endswith("Credited")
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    try:
        events = client[database_name]["bankaccounts_events"]
        assert [d["position"] for d in events.find({}, sort=[("position", 1)])] == [1, 2, 3]
    finally:
        client.close()


def test_an_application_with_the_library_cipher_stores_no_plaintext(
    mongo_uri: str, database_name: str
) -> None:
    """The `eventsourcing` library encrypts with its own cipher (``CIPHER_TOPIC``): on
    eventlab's module the stored events hold no plaintext, and the application reads them
    back (docs/forgetting.md, "The eventsourcing module")."""
    from eventsourcing.cryptography import AESCipher
    from eventsourcing.tests.application import BankAccounts

    env = {
        "PERSISTENCE_MODULE": "eventlab.eventsourcing",
        "MONGODB_URI": mongo_uri,
        "MONGODB_DATABASE": database_name,
        "CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
        "CIPHER_KEY": AESCipher.create_key(32),
    }
    app = BankAccounts(env=env)
    try:
        account_id = app.open_account("Ada Lovelace", "ada.lovelace@example.org")
        client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
        try:
            database = client[database_name]
            for name in database.list_collection_names():
                for doc in database[name].find({}):
                    assert b"ada.lovelace@example.org" not in repr(doc).encode(), name
        finally:
            client.close()
        assert app.get_account(account_id).email_address.address == "ada.lovelace@example.org"
    finally:
        app.close()

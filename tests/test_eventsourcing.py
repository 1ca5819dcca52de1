"""The `eventsourcing` library's own test cases, unmodified, judge eventlab's MongoDB module:
each subclass below only says how to create a recorder or sets the environment."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ProcessRecorder,
    TrackingRecorder,
)

# Modules, not names: pytest would collect an imported base TestCase as a test of its own.
from eventsourcing.tests import application as library_application
from eventsourcing.tests import persistence as library
from eventsourcing.utils import Environment
from pymongo import MongoClient

from eventlab.eventsourcing import (
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


_ = threading  # the library's concurrency cases start their own threads

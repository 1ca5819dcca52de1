"""The pytest module ``eventlab check`` runs against a user's deployment: eventlab's contract
suites with both position strategies, then a bounded model-based run of each state machine
(the in-memory backend beside the deployment). Its fixtures come from the check's plugin
(:mod:`eventlab._check._plugin`): the URI and the scratch database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from .._mongo.connection import MongoConnectionManager
from .._mongo.dcb import MongoDCBStore
from .._mongo.event_store import MongoEventStore
from .._mongo.outbox import MongoOutboxStore
from ..contracts import ArchiveContract, ArchiveScavengeContract, Contracts, contract_registry
from ..ports import PositionStrategy
from ..statemachines import (
    DecisionMachine,
    FollowerMachine,
    LaneMachine,
    MemoryLanes,
    MongoLanes,
    StreamMachine,
    run_machine,
)
from ._plugin import machine_examples, machine_run_settings


@pytest.fixture
async def check_connection(
    check_uri: str, check_database: str
) -> AsyncIterator[MongoConnectionManager]:
    """The scratch database, emptied after each test: the contract suites expect a fresh
    database per test (the test suite gives each its own; here there is only one)."""
    async with MongoConnectionManager(check_uri, database=check_database) as conn:
        try:
            yield conn
        finally:
            for collection in await conn.database.list_collection_names():
                await conn.database.drop_collection(collection)


def _contract_store(conn: MongoConnectionManager, strategy: PositionStrategy) -> MongoEventStore:
    return MongoEventStore(
        conn,
        registry=contract_registry(),
        positions=strategy,
        events_collection=f"contract_{strategy[:3]}_events",
        counters_collection=f"contract_{strategy[:3]}_counters",
    )


class _ContractsOnTheDeployment(Contracts):
    """The contract suites on the user's deployment, with a store of ``strategy``. All but
    the archive's (with the scavenge's through an archive): what an archive asks of a
    deployment (range deletes, a compare-and-set record, majority writes, an upserted
    replacement) the other suites ask too, and its files are this process's."""

    strategy: PositionStrategy

    @pytest.fixture
    async def contract_store(self, check_connection: MongoConnectionManager) -> MongoEventStore:
        return _contract_store(check_connection, self.strategy)

    @pytest.fixture
    def make_outbox(self, check_connection: MongoConnectionManager) -> Callable[..., Any]:
        return lambda **options: MongoOutboxStore(check_connection, **options)

    @pytest.fixture
    def make_dcb(self) -> Callable[..., Any]:
        return MongoDCBStore


for _suite in (ArchiveContract, ArchiveScavengeContract):
    for _name in dir(_suite):  # the suite's own tests and those of the classes it is made of
        if _name.startswith("test_"):
            setattr(_ContractsOnTheDeployment, _name, None)  # pytest collects no test of that name


class TestContractsTransactional(_ContractsOnTheDeployment):
    strategy = "transactional"


class TestContractsPreallocated(_ContractsOnTheDeployment):
    strategy = "preallocated"


def _machine(machine: type[LaneMachine], uri: str, database: str, examples: int) -> None:
    run_machine(
        machine,
        [MemoryLanes(), MongoLanes(uri, database)],
        settings=machine_run_settings(examples),
    )


def test_model_streams(check_uri: str, check_database: str, check_examples: int) -> None:
    examples = machine_examples("test_model_streams", check_examples)
    _machine(StreamMachine, check_uri, check_database, examples)


def test_model_decisions(check_uri: str, check_database: str, check_examples: int) -> None:
    examples = machine_examples("test_model_decisions", check_examples)
    _machine(DecisionMachine, check_uri, check_database, examples)


def test_model_followers(check_uri: str, check_database: str, check_examples: int) -> None:
    examples = machine_examples("test_model_followers", check_examples)
    _machine(FollowerMachine, check_uri, check_database, examples)

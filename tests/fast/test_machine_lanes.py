"""The lanes of the state machines (eventlab.statemachines): what a lane offers is found by
asking the backend, and bad arguments are typed errors before anything runs."""

from __future__ import annotations

import asyncio

import pytest

from eventlab import ConfigurationError, InvalidNameError
from eventlab.memory import MemoryEventStore
from eventlab.statemachines import MemoryLanes, MongoLanes
from eventlab.statemachines._lanes import dcb_for, memory_strategies


def test_memory_lanes_follow_what_the_backend_offers() -> None:
    lanes = asyncio.run(MemoryLanes().open())
    assert [lane.strategy for lane in lanes] == memory_strategies()
    assert lanes[0].name == "memory" and lanes[0].strategy == "transactional"
    # DCB where the in-memory store offers it, and never on preallocated positions.
    assert (lanes[0].dcb is None) == (dcb_for(MemoryEventStore()) is None)
    assert all(lane.dcb is None for lane in lanes if lane.strategy == "preallocated")


@pytest.mark.parametrize("uri", ["mongodb://", "http://localhost", "not a uri", 42])
def test_mongo_lanes_refuse_a_malformed_uri(uri: object) -> None:
    lanes = MongoLanes(uri, "machines")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        asyncio.run(lanes.open())


@pytest.mark.parametrize("database", ["", "a/b", "has space", "$x", "x" * 100])
def test_mongo_lanes_refuse_a_bad_database_name(database: str) -> None:
    lanes = MongoLanes("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=1", database)
    with pytest.raises(InvalidNameError):
        asyncio.run(lanes.open())

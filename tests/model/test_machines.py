"""The state machines (eventlab.statemachines) against the embedded server, both position
strategies, beside the in-memory backend as the reference model: every result and every
error's class compared between them, and the promises of docs/ checked after every step.

Bounded and derandomised by default (the same examples on every run); run them longer with
``uv run pytest tests/model --hypothesis-profile=long``. A passing bounded run takes well
under a minute; a failing one replays examples while it shrinks them, for minutes: the
timeout leaves it room to print the shortest steps.
"""

from __future__ import annotations

import pytest

from eventlab.statemachines import (
    DecisionMachine,
    FollowerMachine,
    MemoryLanes,
    MongoLanes,
    StreamMachine,
    machine_settings,
    run_machine,
)

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]


def test_streams_aggregates_and_snapshots(mongo_uri: str, database_name: str) -> None:
    run_machine(
        StreamMachine,
        [MemoryLanes(), MongoLanes(mongo_uri, database_name)],
        settings=machine_settings(15),
    )


def test_decisions_and_their_conditions(mongo_uri: str, database_name: str) -> None:
    run_machine(
        DecisionMachine,
        [MemoryLanes(), MongoLanes(mongo_uri, database_name)],
        settings=machine_settings(40),
    )


def test_consumers_and_projectors(mongo_uri: str, database_name: str) -> None:
    run_machine(
        FollowerMachine,
        [MemoryLanes(), MongoLanes(mongo_uri, database_name)],
        settings=machine_settings(6),
    )

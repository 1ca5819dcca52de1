"""The state machines (eventlab.statemachines) on the in-memory backend alone: the promises of
docs/ checked after every step, without a server. DCB runs where the backend offers it (a
capability check)."""

from __future__ import annotations

import pytest

from eventlab.memory import MemoryEventStore
from eventlab.statemachines import (
    DecisionMachine,
    FollowerMachine,
    MemoryLanes,
    StreamMachine,
    machine_settings,
    run_machine,
)
from eventlab.statemachines._lanes import dcb_for


def test_streams_aggregates_and_snapshots_on_memory() -> None:
    run_machine(StreamMachine, [MemoryLanes()], settings=machine_settings(20))


def test_consumers_and_projectors_on_memory() -> None:
    run_machine(FollowerMachine, [MemoryLanes()], settings=machine_settings(12))


def test_decisions_on_memory() -> None:
    if dcb_for(MemoryEventStore()) is None:
        pytest.skip("the in-memory backend offers no DCB store")
    run_machine(DecisionMachine, [MemoryLanes()], settings=machine_settings(25))

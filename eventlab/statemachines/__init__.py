"""Model-based tests: Hypothesis state machines that drive eventlab's ports on several
backends side by side.

Each machine runs random sequences of operations (appends with every kind of expectation,
resends with the same and with other content, DCB reads and conditional appends, consumers
started, stopped, crashed and replaced, rebuilds, snapshots) in every **lane**: the in-memory
backend (the reference model) and MongoDB with each position strategy. After every step the
lanes must agree (results, and errors by class) and each must keep the promises of docs/
(:mod:`._invariants`). Rules that run another actor at a race point
(:mod:`eventlab._core.race_points`) explore interleavings deterministically.

Needs Hypothesis (the ``check`` extra). ``eventlab check`` runs a bounded run of
them against a user's own deployment; eventlab's test suite runs them against the embedded
server (``tests/model``) and the in-memory backend alone (``tests/fast``).

May import: the backends it drives (``memory``, ``_mongo``), ``testing``, the services and the
ports.
"""

from ._aggregates import StreamMachine
from ._decision_races import DecisionMachine
from ._harness import Harness, LaneMachine, Outcome, run_machine
from ._lanes import Lane, LaneFactory, MemoryLanes, MongoLanes
from ._profiles import machine_settings, register_profiles
from ._projectors import FollowerMachine

__all__ = [
    "DecisionMachine",
    "FollowerMachine",
    "Harness",
    "Lane",
    "LaneFactory",
    "LaneMachine",
    "MemoryLanes",
    "MongoLanes",
    "Outcome",
    "StreamMachine",
    "machine_settings",
    "register_profiles",
    "run_machine",
]

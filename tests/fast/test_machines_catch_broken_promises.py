"""The machines are not vacuous: on a backend that breaks one promise of docs/ they fail, with
the promise named (the in-memory backend, with one defect put in by the test)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import Phase, settings

from eventlab.memory import MemoryCheckpointStore, MemoryLog
from eventlab.ports import LogSlice, UnitOfWork
from eventlab.statemachines import FollowerMachine, MemoryLanes, StreamMachine, run_machine
from eventlab.statemachines._profiles import BOUNDED

QUICK = settings(BOUNDED, max_examples=30, phases=[Phase.generate])
"""Found, not shrunk: what matters here is that the machine fails at all."""


def test_a_log_that_hides_an_event_from_followers_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read = MemoryLog.read

    async def skipping(self: MemoryLog, after: int, until: int, **options: Any) -> LogSlice:
        found = await read(self, after, until, **options)
        kept = [e for e in found.events if e.position != 2]
        return LogSlice(kept, found.through, found.present, found.abandoned)

    monkeypatch.setattr(MemoryLog, "read", skipping)
    with pytest.raises(
        AssertionError, match=r"the model|not contiguous|order appended|a follower .* saw"
    ):
        run_machine(StreamMachine, [MemoryLanes()], settings=QUICK)


def test_a_checkpoint_that_runs_ahead_of_its_batch_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    save = MemoryCheckpointStore.save

    async def ahead(
        self: MemoryCheckpointStore,
        name: str,
        position: int,
        *,
        expected: int | None = None,
        gaps: Iterable[int] = (),
        owner: str | None = None,
        uow: UnitOfWork | None = None,
    ) -> None:
        # A consumer's checkpoint one past its batch: the next event is never handed on.
        jump = 1 if name.startswith("c") and expected is not None else 0
        await save(self, name, position + jump, expected=expected, gaps=gaps, owner=owner, uow=uow)

    monkeypatch.setattr(MemoryCheckpointStore, "save", ahead)
    with pytest.raises(AssertionError, match="skipped"):
        run_machine(FollowerMachine, [MemoryLanes()], settings=QUICK)

"""Suite 10, faults: what one fault costs the append that meets it.

Each round arms a one-shot fail point (``{times: 1}``) and times one append that meets it,
through the documented retry of the same events when the outcome is reported unknown. The
budget (``one-fault``) is the time until the event is stored; a writer blocked by a
transaction left open would wait for the server's transaction lifetime (about a minute).
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from eventlab import CommitOutcomeUnknownError, EventRegistry, MongoConnectionManager

from ._verdicts import decide
from .budgets import FAULT_BUDGETS_SECONDS
from .conftest import make_events, make_store

Run = Callable[[Awaitable[Any]], Any]
FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "commit-unknown": (
        "commitTransaction",
        {"errorCode": 91, "errorLabels": ["UnknownTransactionCommitResult"]},
    ),
    "commit-transient": (
        "commitTransaction",
        {"errorCode": 112, "errorLabels": ["TransientTransactionError"]},
    ),
    "insert-transient": (
        "insert",
        {"errorCode": 112, "errorLabels": ["TransientTransactionError"]},
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_one_fault_costs(
    benchmark: Any,
    fault: str,
    connection: MongoConnectionManager,
    registry: EventRegistry,
    run: Run,
) -> None:
    """One append meeting one fault, until its event is stored (median of 10)."""
    store = make_store(connection, registry, run, "transactional", f"bench_faults_{fault}")
    command, data = FAULTS[fault]
    admin = connection.client.admin
    try:
        run(admin.command({"configureFailPoint": "failCommand", "mode": "off"}))
    except Exception:  # a deployment without test commands
        pytest.skip("the server does not accept configureFailPoint")

    def arm() -> tuple[tuple[Any, ...], dict[str, Any]]:
        run(
            admin.command(
                {
                    "configureFailPoint": "failCommand",
                    "mode": {"times": 1},
                    "data": {"failCommands": [command], **data},
                }
            )
        )
        return (), {}

    async def append_through_the_fault() -> None:
        aggregate = f"fault-{uuid.uuid4().hex}"
        events = make_events(1)
        try:
            await store.append(aggregate, events, 0)
        except CommitOutcomeUnknownError:
            await store.append(aggregate, events, 0)  # the documented retry, same ids

    try:
        benchmark.pedantic(
            lambda: run(append_through_the_fault()), setup=arm, rounds=10, warmup_rounds=1
        )
    finally:
        run(admin.command({"configureFailPoint": "failCommand", "mode": "off"}))
    decide(
        benchmark,
        f"an append through one {fault} fault",
        limit=FAULT_BUDGETS_SECONDS["one-fault"] * 1e3,
        measured=statistics.median(benchmark.stats.stats.data) * 1e3,
        unit="ms",
    )

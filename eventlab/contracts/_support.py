"""What the contract suites share: plain records, unique names, and the registry a backend's
store is made with for them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from .._core.records import StoredEvent
from .._core.registry import EventRegistry
from ..ports import EventStore
from ..samples import order_registry


class NeedsAStore:
    """What every contract suite stands on: the store under contract, which a backend's test
    module provides (its ``contract_store`` fixture)."""

    @pytest.fixture
    async def contract_store(self) -> EventStore:
        raise NotImplementedError("a backend's test module provides the store under contract")


def contract_registry() -> EventRegistry:
    """The registry a store under contract is made with (the sample orders' events)."""
    return order_registry()


def contract_event(
    aggregate_id: str, version: int = 1, event_type: str = "ContractNoted", **payload: Any
) -> StoredEvent:
    """A plain record for the contracts (no registry needed)."""
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type=event_type,
        aggregate_id=aggregate_id,
        aggregate_type="Contract",
        version=version,
        payload=payload or {"n": version},
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def unique(prefix: str = "contract") -> str:
    """A name no other test uses (stores under contract may be shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def fields(event: StoredEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in StoredEvent.__dataclass_fields__}

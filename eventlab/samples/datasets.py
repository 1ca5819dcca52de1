"""Deterministic sample datasets: the shipped ``data/*.jsonl`` files are exactly these."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from .._core.checks import check_int, check_positive
from .._core.records import StoredEvent
from .._core.registry import EventRegistry
from .chat import chat_registry, generate_chats
from .orders import generate_orders, order_registry


def _stored(aggregates: Iterable[object], registry: EventRegistry, seed: int) -> list[StoredEvent]:
    """Envelope every pending event, then number them in the order they were recorded."""
    rng = random.Random(seed)
    events: list[StoredEvent] = []
    for aggregate in aggregates:
        kind = type(aggregate).aggregate_type  # type: ignore[attr-defined]
        for version, event in enumerate(aggregate.pending_events, start=1):  # type: ignore[attr-defined]
            stored = registry.to_stored(
                event,
                aggregate_id=aggregate.id,  # type: ignore[attr-defined]
                aggregate_type=kind,
                version=version,
                metadata={
                    "correlation_id": f"cmd-{rng.getrandbits(32):08x}",
                    "user_id": f"user-{rng.randint(1, 25)}",
                },
            )
            recorded = stored.occurred_at + timedelta(milliseconds=rng.randint(1, 40))
            events.append(replace(stored, recorded_at=recorded))
    events.sort(key=lambda e: (e.recorded_at, e.aggregate_id, e.version))
    return [replace(e, position=i) for i, e in enumerate(events, start=1)]


def orders_dataset(orders: int = 800, *, seed: int = 7) -> list[StoredEvent]:
    """Orders placed, filled, shipped or cancelled, interleaved in one global order."""
    return _stored(generate_orders(orders, seed=seed), order_registry(), seed)


def many_orders(events: int, *, chunk: int = 10_000, seed: int = 7) -> Iterator[list[StoredEvent]]:
    """``events`` order events for a big store, ``chunk`` at a time, in position order: copies
    of :func:`orders_dataset` (3,000 orders, about 12,600 events, three weeks), each copy with
    new ids and streams, shifted in time by the span of the one before (so the log covers
    months at a million events)."""
    events = check_int(events, "events")
    chunk = check_positive(chunk, "chunk")
    base = orders_dataset(3000, seed=seed)
    span = (base[-1].recorded_at or base[-1].occurred_at) - base[0].occurred_at + timedelta(hours=1)
    made = 0
    copy = 0
    pending: list[StoredEvent] = []
    while made < events:
        shift = span * copy
        for event in base[: events - made]:
            made += 1
            pending.append(
                replace(
                    event,
                    event_id=uuid.uuid4(),
                    aggregate_id=f"{event.aggregate_id}-{copy}",
                    occurred_at=event.occurred_at + shift,
                    recorded_at=(event.recorded_at or event.occurred_at) + shift,
                    position=made,
                )
            )
            if len(pending) >= chunk:
                yield pending
                pending = []
        copy += 1
    if pending:
        yield pending


def chat_dataset(chats: int = 400, *, seed: int = 11) -> list[StoredEvent]:
    """Chats with participants and messages; half become tasks with status, assignee, due date."""
    return _stored(generate_chats(chats, seed=seed), chat_registry(), seed)


def anomalies_dataset() -> tuple[list[StoredEvent], dict[str, object]]:
    """A small orders dataset with planted anomalies, and the exact list of what was planted.

    Planted: two global position gaps (a run of 3 and a single position), one duplicated version,
    one stream starting at version 3, one event recorded out of position order.
    """
    events = orders_dataset(60, seed=21)
    shifted = [
        replace(e, position=(e.position or 0) + (3 if i >= 50 else 0) + (1 if i >= 120 else 0))
        for i, e in enumerate(events)
    ]
    by_stream: dict[str, list[int]] = {}
    for index, event in enumerate(shifted):
        by_stream.setdefault(event.aggregate_id, []).append(index)
    three = next(s for s in sorted(by_stream) if len(by_stream[s]) == 3)
    later = next(s for s in sorted(by_stream) if s != three and len(by_stream[s]) >= 2)
    dup_index = by_stream[three][2]
    shifted[dup_index] = replace(shifted[dup_index], version=2)
    for index in by_stream[later]:
        shifted[index] = replace(shifted[index], version=shifted[index].version + 2)
    late_index = 200
    early = shifted[late_index - 5].recorded_at
    assert early is not None
    shifted[late_index] = replace(shifted[late_index], recorded_at=early - timedelta(seconds=1))
    planted: dict[str, object] = {
        "position_gaps": [(51, 53, 3), (124, 124, 1)],
        "duplicate_versions": [(three, 2, 2)],
        "streams_not_starting_at_1": [(later, 3)],
        "version_gaps": [],
        "duplicate_positions": [],
        "out_of_order": [shifted[late_index].position],
    }
    return shifted, planted


def write_datasets(directory: str | Path) -> dict[str, int]:
    """Write ``orders.jsonl``, ``chat.jsonl`` and ``anomalies.jsonl`` into ``directory``."""
    from ..workbench import dump_jsonl

    directory = Path(directory)
    anomalies, _ = anomalies_dataset()
    return {
        "orders.jsonl": dump_jsonl(orders_dataset(), directory / "orders.jsonl"),
        "chat.jsonl": dump_jsonl(chat_dataset(), directory / "chat.jsonl"),
        "anomalies.jsonl": dump_jsonl(anomalies, directory / "anomalies.jsonl"),
    }


if __name__ == "__main__":  # pragma: no cover - `python -m eventlab.samples.datasets data/`
    import sys

    print(write_datasets(sys.argv[1] if len(sys.argv) > 1 else "data"))

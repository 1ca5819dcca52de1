"""The promises of docs/ as checks over what a lane stores and what its readers saw.

Each check raises :class:`AssertionError` naming the lane, the promise and the evidence.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from .._core.records import StoredEvent
from ..ports import PositionStrategy


def check_log(lane: str, strategy: PositionStrategy, log: Sequence[StoredEvent]) -> None:
    """docs/positions.md: one global order, positions increasing; each event once; versions
    ``1..n`` in every stream (docs/gaps.md: eventlab's writes never leave a version gap);
    ``transactional`` positions contiguous from 1."""
    positions = [event.position or 0 for event in log]
    assert all(a < b for a, b in itertools.pairwise(positions)), (
        f"{lane}: the log is not in increasing position order: {positions}"
    )
    ids = [event.event_id for event in log]
    assert len(set(ids)) == len(ids), f"{lane}: an event is stored twice: {ids}"
    versions: dict[str, list[int]] = defaultdict(list)
    for event in log:
        versions[event.aggregate_id].append(event.version)
    for stream, found in versions.items():
        assert found == list(range(1, len(found) + 1)), (
            f"{lane}: stream {stream!r} has versions {found}, not 1..{len(found)} in log order"
        )
    if strategy == "transactional":
        assert positions == list(range(1, len(positions) + 1)), (
            f"{lane}: transactional positions are not contiguous from 1: {positions}"
        )


def matches(query: Any, event: StoredEvent) -> bool:
    """Whether ``event`` matches a DCB query (docs/dcb.md, "Query"), computed here, not by the
    code under test: any item whose types include the event's (any type if none) and whose
    tags the event all carries; no items: every event."""
    items = query.items
    return not items or any(
        (not item.types or event.event_type in item.types) and set(item.tags) <= set(event.tags)
        for item in items
    )


def check_read(
    lane: str,
    query: Any,
    after: int,
    read: Any,
    log: Sequence[StoredEvent],
    limit: int | None = None,
) -> None:
    """docs/dcb.md, the guarantee's point 4: a read returns every event matching its query
    after ``after`` up to the head it reports, and nothing else, in position order (with a
    full ``limit``, the first ``limit`` of them, the head being the last)."""
    head = read.head
    wanted = [e for e in log if after < (e.position or 0) <= head and matches(query, e)]
    got = [e.event_id for e in read.events]
    assert got == [e.event_id for e in wanted], (
        f"{lane}: a DCB read after {after} reports head {head} but returned events at "
        f"{[e.position for e in read.events]}; events matching its query up to the head are at "
        f"{[e.position for e in wanted]}"
    )
    if limit is not None and len(got) == limit:
        assert head == (read.events[-1].position or 0), (
            f"{lane}: a full page's head must be its last event: {head}"
        )


def check_condition(
    lane: str,
    query: Any,
    after: int,
    accepted: Sequence[StoredEvent] | None,
    refused_by: StoredEvent | None,
    log: Sequence[StoredEvent],
) -> None:
    """docs/dcb.md, "The guarantee": a conditional append commits only if no event matching
    its query, other than its own, is stored after ``after``; and a condition refuses only
    what matches (the event named by the refusal matches and lies after ``after``)."""
    if accepted is not None:
        own = {event.event_id for event in accepted}
        first = min(event.position or 0 for event in accepted)
        clashes = [
            e.position
            for e in log
            if after < (e.position or 0) < first and e.event_id not in own and matches(query, e)
        ]
        assert not clashes, (
            f"{lane}: a conditional append after {after} was accepted at {first}, but events "
            f"matching its query are stored between: {clashes}"
        )
    if refused_by is not None:
        assert matches(query, refused_by) and (refused_by.position or 0) > after, (
            f"{lane}: a condition after {after} was refused by event #{refused_by.position}, "
            "which does not match its query after that position"
        )


def check_stream(lane: str, stream: str, stored: Sequence[Any], expected: Sequence[Any]) -> None:
    assert list(stored) == list(expected), (
        f"{lane}: stream {stream!r} holds {list(stored)}, the model says {list(expected)}"
    )


def check_effects(
    lane: str, consumer: str, effects: dict[str, int], expected: Iterable[str], *, repeats: bool
) -> None:
    """docs/positions.md, "Delivery modes": a consumer caught up has handled every event after
    its start once (exactly-once: its effects equal one clean pass); at-least-once may repeat
    only what a crash cut off, never skip."""
    wanted = set(expected)
    missing = sorted(wanted - set(effects))
    extra = sorted(set(effects) - wanted)
    twice = sorted(key for key, n in effects.items() if n > 1)
    assert not missing and not extra, (
        f"{lane}: consumer {consumer!r} caught up but skipped {missing} / handled events it "
        f"should not have {extra}"
    )
    assert repeats or not twice, f"{lane}: consumer {consumer!r} handled {twice} more than once"

"""Snapshots of aggregates that hold personal data, sealed with their subjects' keys.

An aggregate's state copies what its events carried, personal values included. So a snapshot
of a stream whose events declare personal fields is sealed, whole, with the data key of every
subject those events name (one layer per subject), and only its subject ids stay readable.
Forgetting a subject destroys its key: every snapshot holding its data becomes unreadable
wherever it lives (any collection, any backup), and a load ignores it and replays the events
(which read as redacted). A save for a forgotten subject writes no snapshot at all: there is
no key to seal it with, and plain text is never the fallback.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from .._core.domain import AggregateRoot
from .._core.personal import personal_fields
from .._core.sealing import sealed_subject
from .._shred.personal_data import PersonalData
from ..ports import Snapshot

SEALED_STATE = "_eventlab_sealed_state"
SUBJECTS = "_eventlab_subjects"
_TRACKED = "_eventlab_personal_subjects"
"""The attribute an aggregate carries its subjects in (private: never in a snapshot's state)."""


def subjects_of(events: Iterable[Any]) -> set[str]:
    """The subjects whose personal data the domain ``events`` carry."""
    subjects: set[str] = set()
    for event in events:
        event_class: Any = type(event)
        declared = personal_fields(event_class)
        if declared is not None:
            subject = getattr(event, declared.subject_field, None)
            if isinstance(subject, str) and subject:
                subjects.add(subject)
    return subjects


def tracked(aggregate: AggregateRoot) -> frozenset[str]:
    """The subjects ``aggregate``'s state may hold data of (as this module recorded them)."""
    found = aggregate.__dict__.get(_TRACKED)
    return found if isinstance(found, frozenset) else frozenset()


def track(aggregate: AggregateRoot, subjects: Iterable[str]) -> None:
    """Record that ``aggregate``'s state may hold data of ``subjects`` too."""
    aggregate.__dict__[_TRACKED] = tracked(aggregate) | frozenset(subjects)


def is_sealed_snapshot(snapshot: Snapshot) -> bool:
    return SEALED_STATE in snapshot.state


async def seal(
    personal: PersonalData | None, snapshot: Snapshot, subjects: Iterable[str]
) -> Snapshot | None:
    """``snapshot`` sealed with the keys of ``subjects`` (itself when there are none), or
    ``None`` when a subject's key is gone: then no snapshot may be written."""
    ordered = sorted(set(subjects))
    if not ordered or personal is None:
        # No personal data, or a store without a key store (its events hold their values as
        # they are): the snapshot adds nothing to what the events hold.
        return snapshot
    keys = await personal.keys.get(ordered)
    if any(subject not in keys for subject in ordered):
        return None
    associated = _associated(snapshot)
    value: Any = snapshot.state
    for subject in ordered:
        value = keys[subject].seal(value, associated, SEALED_STATE)
    return Snapshot(
        aggregate_id=snapshot.aggregate_id,
        aggregate_type=snapshot.aggregate_type,
        version=snapshot.version,
        schema_version=snapshot.schema_version,
        state={SEALED_STATE: value, SUBJECTS: ordered},
        taken_at=snapshot.taken_at,
    )


async def open_sealed(
    personal: PersonalData | None, snapshot: Snapshot
) -> tuple[Snapshot, frozenset[str]] | None:
    """``snapshot`` with its state opened, and its subjects; ``None`` when it cannot be
    opened (a subject forgotten, no key store, altered bytes): then it must be ignored."""
    subjects = snapshot.state.get(SUBJECTS)
    if personal is None or not isinstance(subjects, list) or not subjects:
        return None
    if not all(isinstance(s, str) for s in subjects):
        return None
    keys = await personal.keys.get(subjects)
    value: Any = snapshot.state.get(SEALED_STATE)
    associated = _associated(snapshot)
    for _ in subjects:
        subject = sealed_subject(value)
        key = keys.get(subject) if subject is not None else None
        if key is None:
            return None
        ok, value = key.open(value, associated, SEALED_STATE)
        if not ok:
            return None
    if not isinstance(value, dict):
        return None
    opened = Snapshot(
        aggregate_id=snapshot.aggregate_id,
        aggregate_type=snapshot.aggregate_type,
        version=snapshot.version,
        schema_version=snapshot.schema_version,
        state=value,
        taken_at=snapshot.taken_at,
    )
    return opened, frozenset(subjects)


def _associated(snapshot: Snapshot) -> uuid.UUID:
    # Binds the sealed state to its aggregate and version: copied elsewhere, it does not open.
    name = f"eventlab snapshot\x00{snapshot.aggregate_type}\x00{snapshot.aggregate_id}"
    return uuid.uuid5(uuid.NAMESPACE_OID, f"{name}\x00{snapshot.version}")

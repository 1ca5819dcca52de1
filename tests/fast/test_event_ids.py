"""Event ids follow one rule everywhere: a UUID, or its canonical string, converted on entry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from eventlab import DomainEvent, EventlabError, InvalidEventError, StoredEvent

NOT_UUIDS: list[Any] = [
    "not-a-uuid",
    "",
    "12345678123456781234567812345678",  # bare hex: accepted by uuid.UUID, not canonical
    "{12345678-1234-5678-1234-567812345678}",
    "urn:uuid:12345678-1234-5678-1234-567812345678",
    "12345678-1234-5678-1234-5678123456789",
    " 12345678-1234-5678-1234-567812345678",
    b"\x12" * 16,
    123,
    None,
    {"$ne": None},
]


class Pinged(DomainEvent):
    aggregate_type = "Probe"
    n: int


def stored(event_id: Any, aggregate_id: str = "probe-1") -> StoredEvent:
    return StoredEvent(
        event_id=event_id,
        event_type="Pinged",
        aggregate_id=aggregate_id,
        aggregate_type="Probe",
        version=1,
        payload={"n": 1},
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


# Fixed values: test ids must be the same in every collection (pytest-xdist compares them).
@pytest.mark.parametrize(
    "text",
    ["6c000b6a-0c05-4cef-9fb3-9faf1b68b6f7", "C4487A94-BCBB-4EB0-B834-08269DA24734"],
    ids=["lower", "upper"],
)
def test_canonical_string_is_accepted_by_both_records(text: str) -> None:
    expected = uuid.UUID(text)
    from_domain = Pinged(n=1, event_id=text).event_id
    from_stored = stored(text).event_id
    assert isinstance(from_domain, uuid.UUID) and from_domain == expected
    assert isinstance(from_stored, uuid.UUID) and from_stored == expected


@pytest.mark.parametrize("bad", NOT_UUIDS, ids=repr)
def test_anything_else_is_a_typed_error_in_both(bad: Any) -> None:
    with pytest.raises(InvalidEventError, match="canonical string form"):
        stored(bad)
    with pytest.raises(InvalidEventError, match="canonical string form"):
        Pinged(n=1, event_id=bad)


def test_domain_validation_errors_are_eventlab_errors() -> None:
    with pytest.raises(EventlabError, match="n"):
        Pinged(n="not a number")  # type: ignore[arg-type]

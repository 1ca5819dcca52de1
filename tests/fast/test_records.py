"""Records refuse what they cannot stand for, with a typed error naming the argument, instead
of coercing it (``OutboxMessage(None, ...)`` once became the message ``'None'``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from eventlab import ConfigurationError, InvalidIdError
from eventlab.memory import MemoryBackend
from eventlab.ports import OutboxMessage

OPERATOR: Any = {"$ne": None}
HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("id None", {"message_id": None}, "message_id"),
    ("id empty", {"message_id": ""}, "message_id"),
    ("id an operator", {"message_id": OPERATOR}, "message_id"),
    ("id an int", {"message_id": 7}, "message_id"),
    ("id with NUL", {"message_id": "a\x00b"}, "message_id"),
    ("type None", {"event_type": None}, "event_type"),
    ("type an operator", {"event_type": OPERATOR}, "event_type"),
    ("key an operator", {"ordering_key": OPERATOR}, "ordering_key"),
    ("key empty", {"ordering_key": ""}, "ordering_key"),
    ("sequence negative", {"sequence": -1}, "sequence"),
    ("sequence huge", {"sequence": 2**64}, "sequence"),
    ("sequence a bool", {"sequence": True}, "sequence"),
    ("sequence a string", {"sequence": "1"}, "sequence"),
    ("payload a list", {"payload": [1]}, "payload"),
    ("headers a string", {"headers": "h"}, "headers"),
    ("created_at a string", {"created_at": "2026-01-01"}, "created_at"),
]


def message(**fields: Any) -> OutboxMessage:
    return OutboxMessage(**{"message_id": "m-1", "event_type": "T", "payload": {}, **fields})


@pytest.mark.parametrize(("label", "fields", "named"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_an_outbox_message_refuses_what_it_cannot_be(
    label: str, fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        message(**fields)


async def test_none_is_not_the_message_none_and_nothing_is_saved() -> None:
    outbox = MemoryBackend().outbox()
    with pytest.raises(InvalidIdError, match="message_id must be a non-empty string, got None"):
        await outbox.save_messages([message(message_id=None)])
    assert await outbox.counts() == {} and await outbox.get("None") is None


def test_a_uuid_is_its_canonical_text() -> None:
    event_id = uuid.uuid4()
    made = message(message_id=event_id, created_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert made.message_id == str(event_id)

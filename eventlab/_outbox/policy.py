"""The outbox's rules that do not depend on where messages are stored: its options (attempts,
backoff, order), the checks of a claim's arguments, and what "the same message" means for an
idempotent save. One object for every backend, so both accept and refuse the same things."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypedDict

from .._core.bson_values import same_bson_value
from .._core.checks import check_page_size
from .._core.errors import ConfigurationError, DuplicateMessageError
from .._core.retry import retry_delay
from ..ports import OutboxMessage

CONTENT_FIELDS = ("event_type", "payload", "ordering_key", "headers")
"""What a message says: a stored copy with the same fields (and sequence, when the message
carries one) is the same message."""


class OutboxOptions(TypedDict, total=False):
    """The options every outbox takes (each backend's constructor, ``Backend.outbox``): the
    fields of :class:`OutboxPolicy`, all optional."""

    max_attempts: int
    backoff_base: float
    backoff_max: float
    ordered: bool


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    """How an outbox retries, dead-letters and orders its messages.

    :param max_attempts: failures after which a message is dead-lettered (status ``dead``).
    :param backoff_base: seconds before the first retry; doubles per attempt, with jitter.
    :param backoff_max: cap of the retry delay in seconds.
    :param ordered: publish messages that share an ordering key one at a time, in ``sequence``
        order.
    """

    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    ordered: bool = False

    def __post_init__(self) -> None:
        if type(self.max_attempts) is not int or self.max_attempts < 1:
            raise ConfigurationError(
                f"max_attempts must be an int >= 1, got {self.max_attempts!r:.80}"
            )
        for name in ("backoff_base", "backoff_max"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value < math.inf  # NaN fails this too
            ):
                raise ConfigurationError(
                    f"backoff_base and backoff_max must be numbers >= 0, got {name}={value!r:.80}"
                )
        if not isinstance(self.ordered, bool):
            raise ConfigurationError(f"ordered must be True or False, got {self.ordered!r:.80}")

    def retry_delay(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: base * 2^(attempts-1), capped, ±25% jitter."""
        return retry_delay(attempts, self.backoff_base, self.backoff_max)


def check_claim(worker_id: Any, limit: Any) -> None:
    """A claim's arguments: a worker's name and how many messages it takes at most."""
    if not isinstance(worker_id, str) or not worker_id:
        raise ConfigurationError("worker_id must be a non-empty string")
    check_page_size(limit, "limit")


def lease_seconds(lease: Any) -> float:
    """A lease in seconds: a positive, finite number of seconds or a :class:`timedelta`."""
    if isinstance(lease, bool) or not isinstance(lease, int | float | timedelta):
        raise ConfigurationError(f"a lease must be seconds or a timedelta, not {lease!r:.80}")
    seconds = lease.total_seconds() if isinstance(lease, timedelta) else float(lease)
    if not 0 < seconds < math.inf:  # NaN fails this too
        raise ConfigurationError(f"a lease must be positive, not {lease!r:.80}")
    return seconds


def claim_token_of(message: Any) -> str:
    """The claim token a claimed message carries: what every later step of its claim is
    conditional on (ids alone could change a message another relay now owns)."""
    if not isinstance(message, OutboxMessage):
        raise ConfigurationError(
            f"expected a claimed OutboxMessage, got {type(message).__name__} {message!r:.40}: "
            "ids alone could change a message another relay now owns; pass the messages "
            "claim() returned (they carry the claim token)"
        )
    if message.claim_token is None:
        raise ConfigurationError(
            f"message {message.message_id} carries no claim token: pass the messages "
            "claim() returned"
        )
    return message.claim_token


def contents_of(messages: Sequence[OutboxMessage]) -> list[dict[str, Any]]:
    """What each message of a save says (serialization errors before any I/O); a save that
    names a message id twice is refused."""
    contents = [m.content() for m in messages]
    ids = [m.message_id for m in messages]
    if len(set(ids)) != len(ids):
        raise ConfigurationError("the same message id appears twice in one save")
    return contents


def check_stored_copies(
    messages: Sequence[OutboxMessage],
    contents: Sequence[dict[str, Any]],
    stored: dict[str, dict[str, Any]],
) -> None:
    """Refuse a save whose ids are stored with other content (an idempotent retry sends the
    same messages again): :class:`DuplicateMessageError` naming them, nothing written."""
    differing = []
    for message, content in zip(messages, contents, strict=True):
        doc = stored.get(message.message_id)
        if doc is None:
            continue
        same = all(same_bson_value(doc.get(f), content[f]) for f in CONTENT_FIELDS) and (
            message.sequence is None or doc.get("sequence") == message.sequence
        )
        if not same:
            differing.append(message.message_id)
    if differing:
        raise DuplicateMessageError(differing)

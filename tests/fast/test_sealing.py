"""A sealed value's bytes are a function of the key, the event, the field and the value.

An append resent after an unknown commit outcome must seal to the same bytes, or the store
would take the retry for another event with the same id: the nonce is synthetic, never
random. These known answers pin the format (module doc of ``eventlab._core.sealing``) so
that a change to how sealing is computed cannot silently change what it produces.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from eventlab._core.sealing import DataKey, is_sealed, parse_sealed, plaintext_of
from eventlab._shred import personal_data
from eventlab.memory import MemoryEventStore, MemoryKeyStore
from eventlab.samples.customers import CustomerRegistered, customer_registry

EVENT = uuid.UUID("12345678-1234-5678-1234-567812345678")
KEY = DataKey("person-7", bytes(range(32)))

KNOWN = [
    (
        "Ada Lovelace",
        "656c50310008706572736f6e2d370287daf15d2cf67bfe2191df15db54b76a3448c883608cab2bc04e"
        "de4abcb4fe6f03eaa2b89fb139d459442df28730c223bd5f3f3b",
    ),
    (
        Decimal("19.99"),
        "656c50310008706572736f6e2d372eb591259421dc68678c2352b151546dd31812600b9d7c07d3cec6"
        "3b28703d7cf998a4eb5c1aa80c9e5758caacd8f58d88d9c02e",
    ),
    (
        ["a", 1],
        "656c50310008706572736f6e2d3707c4546c5d4f2dc4f62c85b7856eb34c9595b11c986889e6dc03b4"
        "90de2e37188099a361ef365dc3a651ab7de0730f185ca380db9e2397d1d6",
    ),
]


@pytest.mark.parametrize(("value", "sealed"), KNOWN)
def test_a_value_seals_to_its_known_bytes(value: Any, sealed: str) -> None:
    assert bytes(KEY.seal(value, EVENT, "name")).hex() == sealed
    # The two halves of sealing (the plaintext, made while the key is read) give the same.
    assert bytes(KEY.seal_plaintext(plaintext_of(value, "name"), EVENT, "name")).hex() == sealed
    assert KEY.open(bytes.fromhex(sealed), EVENT, "name") == (True, value)


def test_the_same_value_elsewhere_seals_to_other_bytes_that_do_not_open_here() -> None:
    here = bytes(KEY.seal("Ada", EVENT, "name"))
    other_field = bytes(KEY.seal("Ada", EVENT, "email"))
    other_event = bytes(KEY.seal("Ada", uuid.uuid4(), "name"))
    other_key = bytes(DataKey("person-7", bytes(32)).seal("Ada", EVENT, "name"))
    assert len({here, other_field, other_event, other_key}) == 4
    # Different nonces too: a nonce is never shared by two different sealings.
    nonces = {parse_sealed(s)[1] for s in (here, other_field, other_event, other_key)}  # type: ignore[index]
    assert len(nonces) == 4
    for moved in (other_field, other_event, other_key):
        assert KEY.open(moved, EVENT, "name") == (False, None)


class _ReadInFlight(MemoryKeyStore):
    """A key store whose read stays in flight (as a read from MongoDB does) and says when it
    was sent."""

    def __init__(self, order: list[str]) -> None:
        super().__init__()
        self.order = order

    async def get(self, subjects: Sequence[str]) -> dict[str, DataKey]:
        self.order.append("key read sent")
        await asyncio.sleep(0)  # the reply is on its way
        return await super().get(subjects)


async def test_the_values_are_encoded_while_the_key_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []
    encode = personal_data._plaintexts

    def encoding(*args: Any) -> dict[str, bytes]:
        order.append("values encoded")
        return encode(*args)

    monkeypatch.setattr(personal_data, "_plaintexts", encoding)
    store = MemoryEventStore(registry=customer_registry(), keys=_ReadInFlight(order))
    event = CustomerRegistered(customer_id="customer-1", name="Ada", email="ada@example.org")
    stored = await store.append("customer-1", [event], 0)
    # The read went out first: the encoding (which needs no key) overlaps its round trip.
    assert order == ["key read sent", "values encoded"]
    assert all(is_sealed(stored[0].payload[field]) for field in ("name", "email"))

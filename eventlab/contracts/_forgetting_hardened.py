"""The personal-data contract, continued: no way of declaring a personal field stores it in
plain text, and no snapshot holds a forgotten subject's data, wherever and whenever it was
saved."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any, ClassVar, Optional

import bson
import pytest
from bson.binary import Binary
from pydantic import BaseModel

from .._aggregates.store import AggregateStore
from .._core.bson_values import CODEC_OPTIONS, to_bson_value
from .._core.domain import AggregateRoot, DomainEvent, applies
from .._core.errors import ConfigurationError, SerializationError, SubjectForgottenError
from .._core.personal import REDACTED, Personal
from .._core.records import StoredEvent
from .._core.sealing import SEALED_SUBTYPE, is_sealed
from ..ports import Snapshot
from ..samples.customers import Customer, CustomerMoved, CustomerRegistered
from ._support import unique


class OptionalContact(DomainEvent):
    event_type = "ContractOptionalContact"
    aggregate_type = "Customer"
    personal_subject = "customer_id"
    customer_id: str
    email: Personal[str] | None = None
    phone: Optional[Personal[int]] = None  # noqa: UP045 (the spelling under test)


class Card(BaseModel):
    number: Personal[str]


class InList(DomainEvent):
    event_type = "ContractInList"
    aggregate_type = "Customer"
    personal_subject = "customer_id"
    customer_id: str
    aliases: list[Personal[str]] = []  # noqa: RUF012 (a pydantic default)


class InDict(DomainEvent):
    event_type = "ContractInDict"
    aggregate_type = "Customer"
    personal_subject = "customer_id"
    customer_id: str
    notes: dict[str, Personal[str]] = {}  # noqa: RUF012 (a pydantic default)


class InModel(DomainEvent):
    event_type = "ContractInModel"
    aggregate_type = "Customer"
    personal_subject = "customer_id"
    customer_id: str
    card: Card | None = None


class PlanChanged(DomainEvent):
    """An event of the Customer aggregate that carries no personal data."""

    event_type = "ContractPlanChanged"
    aggregate_type = "Customer"
    plan: str


class Member(Customer):
    """A customer whose plan changes by an event with no personal data."""

    snapshot_every: ClassVar[int] = 2

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.plan = "free"

    @applies(PlanChanged)
    def _plan(self, event: PlanChanged) -> None:
        self.plan = event.plan


class ForeignSnapshots:
    """A snapshot store the event store knows nothing of (a collection of its own, a cache):
    forgetting cannot reach it, so what it holds must be unreadable on its own."""

    def __init__(self) -> None:
        self.held: dict[str, Snapshot] = {}

    async def get(self, aggregate_id: str, uow: Any = None) -> Snapshot | None:
        return self.held.get(aggregate_id)

    async def save(self, snapshot: Snapshot, uow: Any = None) -> bool:
        held = self.held.get(snapshot.aggregate_id)
        if held is not None and held.version >= snapshot.version:
            return False
        self.held[snapshot.aggregate_id] = snapshot
        return True

    async def delete(self, aggregate_id: str) -> bool:
        return self.held.pop(aggregate_id, None) is not None

    def raw(self) -> bytes:
        return b"".join(
            bson.encode(to_bson_value(s.state, "state"), codec_options=CODEC_OPTIONS)
            for s in self.held.values()
        )


def _customer(subject: str, cls: type[Customer] = Customer) -> Customer:
    customer = cls(subject)
    customer.record(
        CustomerRegistered(customer_id=subject, name="Ada Lovelace", email="ada@example.org")
    )
    customer.record(CustomerMoved(customer_id=subject, street="12 Secret St", city="London"))
    return customer


class HardenedPersonalDataContract:
    """Part of :class:`PersonalDataContract` (its fixtures)."""

    async def test_an_optional_personal_field_is_sealed_and_forgotten(
        self, personal_store: Any
    ) -> None:
        personal_store.registry.register(OptionalContact)
        subject = unique("customer")
        event = OptionalContact(customer_id=subject, email="ada@example.org", phone=5550100)
        none = OptionalContact(customer_id=subject)
        stored = await personal_store.append(subject, [event, none], 0)
        assert all(is_sealed(e.payload[f]) for e in stored for f in ("email", "phone"))
        read = await personal_store.read_domain_events(subject)
        assert (read[0].email, read[0].phone, read[1].email) == ("ada@example.org", 5550100, None)
        assert (await personal_store.forget(subject)).events == 2
        read = await personal_store.read_domain_events(subject)
        assert (read[0].email, read[0].phone, read[1].email) == (REDACTED, REDACTED, REDACTED)

    async def test_a_personal_int_beyond_64_bits_is_refused_before_a_key_is_made(
        self, personal_store: Any
    ) -> None:
        personal_store.registry.register(OptionalContact)
        subject = unique("customer")
        event = OptionalContact(customer_id=subject, phone=2**70)
        with pytest.raises(SerializationError, match=r"payload\.phone.*64-bit"):
            await personal_store.append(subject, [event], 0)
        assert await personal_store.get_current_version(subject) == 0
        assert await personal_store.personal.keys.get([subject]) == {}

    @pytest.mark.parametrize(
        ("event_class", "field", "values"),
        [
            (InList, "aliases", {"aliases": ["Ada"]}),
            (InDict, "notes", {"notes": {"a": "Ada"}}),
            (InModel, "card", {"card": Card(number="4111")}),
        ],
    )
    async def test_personal_inside_a_container_or_model_is_refused_naming_the_field(
        self, personal_store: Any, event_class: type[DomainEvent], field: str, values: Any
    ) -> None:
        personal_store.registry.register(event_class)
        stream = unique("customer")
        event = event_class(customer_id=stream, **values)  # type: ignore[call-arg]
        with pytest.raises(ConfigurationError, match=f"{event_class.__name__}.{field}"):
            await personal_store.append(stream, [event], 0)
        assert await personal_store.get_current_version(stream) == 0

    async def test_a_snapshot_in_any_store_holds_no_plaintext_and_dies_with_the_key(
        self, personal_store: Any
    ) -> None:
        snapshots = ForeignSnapshots()
        aggregates = AggregateStore(personal_store, snapshots=snapshots)
        subject = unique("customer")
        await aggregates.save(_customer(subject))
        assert snapshots.held and b"Lovelace" not in snapshots.raw()
        assert b"Secret St" not in snapshots.raw()
        loaded = await aggregates.load(Customer, subject)  # from the sealed snapshot
        assert (loaded.name, loaded.address) == ("Ada Lovelace", "12 Secret St, London")
        await personal_store.forget(subject)  # knows nothing of this snapshot store
        loaded = await aggregates.load(Customer, subject)
        assert (loaded.name, loaded.email) == (REDACTED, REDACTED)
        assert loaded.version == 2 and subject not in snapshots.held  # ignored, then deleted

    async def test_a_save_after_the_forget_writes_no_snapshot(self, personal_store: Any) -> None:
        personal_store.registry.register(PlanChanged)
        snapshots = ForeignSnapshots()
        aggregates = AggregateStore(personal_store, snapshots=snapshots)
        subject = unique("customer")
        member = Member(subject)
        member.record(
            CustomerRegistered(customer_id=subject, name="Ada Lovelace", email="a@example.org")
        )
        await aggregates.save(member)
        in_flight = await aggregates.load(Member, subject)  # a command handler starts
        await personal_store.forget(subject)  # the erasure completes
        in_flight.record(PlanChanged(plan="gold"))
        await aggregates.save(in_flight)  # crosses snapshot_every: no key, no snapshot
        assert subject not in snapshots.held and b"Lovelace" not in snapshots.raw()
        loaded = await aggregates.load(Member, subject)
        assert (loaded.name, loaded.plan) == (REDACTED, "gold")

    async def test_saves_racing_a_forget_leave_no_plaintext_snapshot(
        self, personal_store: Any
    ) -> None:
        snapshots = ForeignSnapshots()
        aggregates = AggregateStore(personal_store, snapshots=snapshots)
        subject = unique("customer")
        await personal_store.append(subject, [CustomerRegistered(
            customer_id=subject, name="Ada Lovelace", email="ada@example.org")], 0)  # fmt: skip

        async def save(n: int) -> None:
            customer = _customer(subject)
            customer.id = f"{subject}-{n}"  # a stream each, every one about the subject
            # Refused when it looked for the key after the forget: that is allowed too.
            with contextlib.suppress(SubjectForgottenError):
                await aggregates.save(customer)

        await asyncio.gather(*[save(n) for n in range(8)], personal_store.forget(subject))
        assert b"Lovelace" not in snapshots.raw() and b"Secret St" not in snapshots.raw()
        for n in range(8):
            if await personal_store.get_current_version(f"{subject}-{n}"):
                loaded = await aggregates.load(Customer, f"{subject}-{n}")
                assert (loaded.name, loaded.email) == (REDACTED, REDACTED)

    async def test_a_snapshot_moved_to_another_aggregate_does_not_open(
        self, personal_store: Any
    ) -> None:
        snapshots = ForeignSnapshots()
        aggregates = AggregateStore(personal_store, snapshots=snapshots)
        first, second = unique("customer"), unique("customer")
        await aggregates.save(_customer(first))
        await aggregates.save(_customer(second))
        moved = snapshots.held[first]
        snapshots.held[second] = Snapshot(second, "Customer", 2, moved.schema_version, moved.state)
        assert (await aggregates.load(Customer, second)).version == 2  # replayed instead

    async def test_a_malformed_sealed_value_reads_as_the_marker_on_every_path(
        self, personal_store: Any
    ) -> None:
        subject = unique("customer")
        first = CustomerRegistered(customer_id=subject, name="Ada Lovelace", email="a@b.org")
        stored = (await personal_store.append(subject, [first], 0))[0]
        good = bytes(stored.payload["name"])
        malformed = [
            b"", b"e", good[:4], good[:8], good[:20], good[:4] + b"\xff\xff" + good[6:],
            good[:4] + b"\x00\x00" + good[6:],  # an empty subject: no key store holds one
            good[:6] + b"\xff\xfe" + good[8:], good[:3] + b"9" + good[4:], bytes(range(64)),
        ]  # fmt: skip
        stream = unique("tampered")
        events = [
            StoredEvent(
                event_id=uuid.uuid4(),
                event_type="ContractTampered",  # declares nothing: stored as given
                aggregate_id=stream,
                aggregate_type="Customer",
                version=n + 1,
                payload={"name": Binary(raw, SEALED_SUBTYPE), "plan": "free"},
                occurred_at=stored.occurred_at,
            )
            for n, raw in enumerate(malformed)
        ]
        await personal_store.append(stream, events, 0)
        read = await personal_store.read_stream(stream)
        assert [e.payload["name"] for e in read] == [REDACTED] * len(malformed)
        head = (await personal_store.log.head()).position
        logged = [e for e in (await personal_store.log.read(0, head)).events]
        assert [e.payload["name"] for e in logged if e.aggregate_id == stream] == [REDACTED] * len(
            malformed
        )
        # The others still read: one bad document never breaks the read of the rest.
        assert [e.payload["name"] for e in logged if e.aggregate_id == subject] == ["Ada Lovelace"]

    async def test_an_aggregate_without_personal_data_keeps_a_plain_snapshot(
        self, personal_store: Any
    ) -> None:
        class Counter(AggregateRoot):
            snapshot_every: ClassVar[int] = 1

            def __init__(self, id: str) -> None:
                super().__init__(id)
                self.plan = ""

            @applies(PlanChanged)
            def _plan(self, event: PlanChanged) -> None:
                self.plan = event.plan

        personal_store.registry.register(PlanChanged)
        snapshots = ForeignSnapshots()
        counter = Counter(unique("counter"))
        counter.record(PlanChanged(plan="gold"))
        await AggregateStore(personal_store, snapshots=snapshots).save(counter)
        assert snapshots.held[counter.id].state == {"plan": "gold"}

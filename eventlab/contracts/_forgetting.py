"""The personal-data contract: a store given a key store seals personal fields, opens them on
every read, and forgets a subject for good."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from .._aggregates.sealed_snapshots import SEALED_STATE, SUBJECTS
from .._aggregates.store import AggregateStore
from .._core.domain import DomainEvent
from .._core.errors import (
    ConfigurationError,
    DocumentTooLargeError,
    InvalidIdError,
    SerializationError,
    SubjectForgottenError,
)
from .._core.personal import REDACTED, Personal, Redacted
from .._core.records import StoredEvent
from .._core.registry import EventRegistry
from .._core.sealing import is_sealed
from ..ports import OutboxMessage
from ..samples.customers import Customer, CustomerMoved, CustomerRegistered, customer_registry
from ._forgetting_hardened import HardenedPersonalDataContract
from ._keys import HOSTILE_SUBJECTS
from ._support import unique


class RenamedV1(DomainEvent):
    """Version 1 of an event whose personal field was renamed in version 2."""

    event_type = "ContractRenamed"
    aggregate_type = "Customer"
    personal_subject = "customer_id"
    customer_id: str
    full_name: Personal[str]


class RenamedV2(DomainEvent):
    event_type = "ContractRenamed"
    schema_version: ClassVar[int] = 2
    aggregate_type = "Customer"
    personal_subject = "customer_id"
    customer_id: str
    first: Personal[str]
    last: Personal[str]


def _split(payload: dict[str, Any]) -> dict[str, Any]:
    full = payload.pop("full_name")
    if isinstance(full, Redacted):  # forgotten: both halves are
        payload["first"] = payload["last"] = full
    else:
        payload["first"], _, payload["last"] = full.partition(" ")
    return payload


def v2_registry() -> EventRegistry:
    registry = customer_registry()
    registry.register(RenamedV2)
    registry.add_upcaster("ContractRenamed", 1, _split)
    return registry


def v1_registry() -> EventRegistry:
    registry = customer_registry()
    registry.register(RenamedV1)
    return registry


def registered(subject: str, name: str = "Ada Lovelace") -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=subject,
        name=name,
        email=f"{name.split()[0].lower()}@example.org",
        born=datetime(1815, 12, 10, tzinfo=UTC),
    )


class PersonalDataContract(HardenedPersonalDataContract):
    """What every store given a key store guarantees. A backend's test provides
    ``make_personal_store``: ``(registry) -> store``, each store made over the same events
    and the same key store (code of two versions on one store)."""

    @pytest.fixture
    def make_personal_store(self) -> Any:
        raise NotImplementedError("a backend's test module provides the stores")

    @pytest.fixture
    def personal_store(self, make_personal_store: Any) -> Any:
        return make_personal_store(v2_registry())

    async def test_personal_fields_are_sealed_at_rest_and_opened_on_read(
        self, personal_store: Any
    ) -> None:
        subject = unique("customer")
        stored = await personal_store.append(subject, [registered(subject)], 0)
        assert is_sealed(stored[0].payload["email"])  # returned as stored: for an outbox
        message = OutboxMessage.from_stored_event(stored[0])  # a publisher opens it
        opened = await personal_store.personal.open_payload(message.payload, stored[0].event_id)
        assert opened["email"] == "ada@example.org" and is_sealed(message.payload["email"])
        head = (await personal_store.log.head()).position
        raw = [e for e in (await personal_store.log.sealed().read(0, head)).events]
        mine = [e for e in raw if e.aggregate_id == subject]
        assert is_sealed(mine[0].payload["name"]) and mine[0].payload["plan"] == "free"
        assert b"Lovelace" not in bytes(mine[0].payload["name"])
        typed = (await personal_store.read_domain_events(subject))[0]
        assert (typed.name, typed.email) == ("Ada Lovelace", "ada@example.org")
        assert typed.born == datetime(1815, 12, 10, tzinfo=UTC)
        assert (await personal_store.read_stream(subject))[0].payload["name"] == "Ada Lovelace"
        logged = (await personal_store.log.read(0, head)).events
        assert [e.payload["email"] for e in logged if e.aggregate_id == subject] == [
            "ada@example.org"
        ]

    async def test_forget_redacts_every_read_and_keeps_the_others(
        self, personal_store: Any
    ) -> None:
        gone, kept = unique("customer"), unique("customer")
        await personal_store.append(gone, [registered(gone)], 0)
        await personal_store.append(kept, [registered(kept, "Grace Hopper")], 0)
        moved = CustomerMoved(customer_id=gone, street="1 Main St", city="Leeds")
        await personal_store.append(gone, [moved], 1)
        result = await personal_store.forget(gone)
        assert (result.had_key, result.events, result.streams) == (True, 2, (gone,))
        first, second = await personal_store.read_domain_events(gone)
        assert first.name is REDACTED and first.email is REDACTED and first.born is REDACTED
        assert first.plan == "free" and first.customer_id == gone
        assert second.street is REDACTED and second.credit is REDACTED
        assert isinstance(first.name, str) and first.name == "<redacted>"
        assert (await personal_store.read_stream(gone))[0].payload["email"] is REDACTED
        head = (await personal_store.log.head()).position
        sealed = (await personal_store.log.sealed().read(0, head)).events
        later = next(e for e in sealed if e.aggregate_id == gone)
        reopened = await personal_store.personal.open_payload(later.payload, later.event_id)
        assert reopened["email"] is REDACTED and reopened["plan"] == "free"
        everything = [e async for e in personal_store.read_all()]
        for event in (await personal_store.log.read(0, head)).events + everything:
            if event.aggregate_id == gone and event.event_type == "CustomerRegistered":
                assert all(event.payload[f] is REDACTED for f in ("name", "email", "born"))
            elif event.aggregate_id == gone:
                assert event.payload["street"] is REDACTED and event.payload["city"] is REDACTED
        other = (await personal_store.read_domain_events(kept))[0]
        assert (other.name, other.email) == ("Grace Hopper", "grace@example.org")

    async def test_concurrent_appends_for_a_new_subject_share_one_key(
        self, personal_store: Any
    ) -> None:
        subject = unique("customer")
        streams = [unique("account") for _ in range(8)]

        async def register(stream: str, n: int) -> None:
            await personal_store.append(stream, [registered(subject, f"Ada Number{n}")], 0)

        await asyncio.gather(*(register(stream, n) for n, stream in enumerate(streams)))
        for n, stream in enumerate(streams):  # each sealed with the one key that was kept
            assert (await personal_store.read_domain_events(stream))[0].name == f"Ada Number{n}"
        forgotten = await personal_store.forget(subject)
        assert (forgotten.events, set(forgotten.streams)) == (8, set(streams))
        for stream in streams:
            assert (await personal_store.read_domain_events(stream))[0].name is REDACTED

    async def test_appends_racing_a_forget_end_redacted_or_refused(
        self, personal_store: Any
    ) -> None:
        subject = unique("customer")
        await personal_store.append(unique("account"), [registered(subject)], 0)
        streams = [unique("account") for _ in range(6)]

        async def register(stream: str) -> str:
            try:
                await personal_store.append(stream, [registered(subject)], 0)
                return "stored"
            except SubjectForgottenError:
                return "refused"

        racing = [register(stream) for stream in streams]
        *outcomes, _ = await asyncio.gather(*racing, personal_store.forget(subject))
        # Whichever side won each race, nothing of the subject reads in clear any more.
        for stream, outcome in zip(streams, outcomes, strict=True):
            events = await personal_store.read_domain_events(stream)
            assert len(events) == (outcome == "stored")
            assert all(e.name is REDACTED and e.email is REDACTED for e in events)
        with pytest.raises(SubjectForgottenError):
            await personal_store.append(unique("account"), [registered(subject)], 0)

    async def test_forgetting_twice_or_an_unknown_subject(self, personal_store: Any) -> None:
        subject = unique("customer")
        await personal_store.append(subject, [registered(subject)], 0)
        assert (await personal_store.forget(subject)).had_key is True
        again = await personal_store.forget(subject)
        assert (again.had_key, again.events) == (False, 1)
        stranger = await personal_store.forget(unique("never-seen"))
        assert (stranger.had_key, stranger.events, stranger.streams) == (False, 0, ())

    async def test_an_append_for_a_forgotten_subject_is_refused(self, personal_store: Any) -> None:
        subject = unique("customer")
        await personal_store.append(subject, [registered(subject)], 0)
        await personal_store.forget(subject)
        head = (await personal_store.log.head()).position
        with pytest.raises(SubjectForgottenError):
            await personal_store.append(subject, [registered(subject)], 1)
        assert await personal_store.get_current_version(subject) == 1
        assert (await personal_store.log.head()).position == head
        # The subject's stream still takes events without personal data of the subject.
        assert await personal_store.append(subject, [_note(subject)], 1)

    async def test_a_dry_run_changes_nothing(self, personal_store: Any) -> None:
        subject = unique("customer")
        await personal_store.append(subject, [registered(subject)], 0)
        planned = await personal_store.forget(subject, dry_run=True)
        assert (planned.dry_run, planned.had_key, planned.events) == (True, True, 1)
        assert "would become redacted" in planned.summary()
        assert (await personal_store.read_domain_events(subject))[0].name == "Ada Lovelace"

    async def test_an_idempotent_retry_stores_nothing_more(self, personal_store: Any) -> None:
        subject = unique("customer")
        event = registered(subject)
        first = await personal_store.append(subject, [event], 0)
        # A resend after an unknown outcome: the same event seals to the same bytes.
        again = await personal_store.append(subject, [event], 0)
        assert [e.event_id for e in again] == [e.event_id for e in first]
        assert await personal_store.get_current_version(subject) == 1

    async def test_a_sealed_value_moved_to_another_event_reads_redacted(
        self, personal_store: Any
    ) -> None:
        subject = unique("customer")
        stored = (await personal_store.append(subject, [registered(subject)], 0))[0]
        copy = StoredEvent(
            event_id=uuid.uuid4(),
            event_type=stored.event_type,
            aggregate_id=subject,
            aggregate_type=stored.aggregate_type,
            version=2,
            payload={**stored.payload, "name": stored.payload["email"]},  # moved field too
            occurred_at=stored.occurred_at,
        )
        await personal_store.append(subject, [copy], 1)
        moved = (await personal_store.read_domain_events(subject))[1]
        assert moved.name is REDACTED and moved.email is REDACTED  # bound to the first event

    async def test_upcasters_see_opened_values_and_the_marker(
        self, make_personal_store: Any
    ) -> None:
        old_code = make_personal_store(v1_registry())
        new_code = make_personal_store(v2_registry())
        gone, kept = unique("customer"), unique("customer")
        for subject in (gone, kept):
            await old_code.append(
                subject, [RenamedV1(customer_id=subject, full_name="Ada Byron")], 0
            )
        await new_code.forget(gone)
        (lifted,) = await new_code.read_domain_events(kept)
        assert (lifted.first, lifted.last) == ("Ada", "Byron")
        (redacted,) = await new_code.read_domain_events(gone)
        assert redacted.first is REDACTED and redacted.last is REDACTED

    async def test_forget_deletes_the_snapshots_that_hold_the_subject(
        self, personal_store: Any
    ) -> None:
        subject = unique("customer")
        snapshots = personal_store.backend.snapshots()
        aggregates = AggregateStore(personal_store, snapshots=snapshots)
        customer = Customer(subject)
        customer.record(registered(subject))
        customer.record(CustomerMoved(customer_id=subject, street="1 Main St", city="Leeds"))
        await aggregates.save(customer)
        taken = await snapshots.get(subject)
        assert taken is not None and set(taken.state) == {SEALED_STATE, SUBJECTS}
        assert (await personal_store.forget(subject, dry_run=True)).snapshots_deleted == 1
        assert (await personal_store.forget(subject)).snapshots_deleted == 1
        assert await snapshots.get(subject) is None
        loaded = await aggregates.load(Customer, subject)
        assert loaded.email is REDACTED and loaded.address == "<redacted>, <redacted>"

    @pytest.mark.parametrize("subject", HOSTILE_SUBJECTS, ids=lambda s: type(s).__name__)
    async def test_hostile_subjects_to_forget_are_refused(
        self, personal_store: Any, subject: Any
    ) -> None:
        with pytest.raises(InvalidIdError):
            await personal_store.forget(subject)
        with pytest.raises(InvalidIdError):
            await personal_store.forget(subject, dry_run=True)

    async def test_hostile_forget_options_are_refused(self, personal_store: Any) -> None:
        subject = unique("customer")
        await personal_store.append(subject, [registered(subject)], 0)
        for options in ({"dry_run": "yes"}, {"snapshots": "snapshots"}, {"snapshots": [42]}):
            with pytest.raises(ConfigurationError):
                await personal_store.forget(subject, **options)
        assert (await personal_store.read_domain_events(subject))[0].name == "Ada Lovelace"

    @pytest.mark.parametrize("subject", ["", "x" * 100_000, "nul\x00inside"])
    async def test_an_event_naming_a_bad_subject_is_refused_with_nothing_written(
        self, personal_store: Any, subject: str
    ) -> None:
        stream = unique("customer")
        head = (await personal_store.log.head()).position
        with pytest.raises(InvalidIdError, match="customer_id"):
            await personal_store.append(stream, [registered(subject)], 0)
        assert await personal_store.get_current_version(stream) == 0
        assert (await personal_store.log.head()).position == head

    @pytest.mark.parametrize("subject", [{"$ne": None}, 42, None, ["a"]], ids=repr)
    async def test_a_stored_event_naming_a_hostile_subject_is_refused(
        self, personal_store: Any, subject: Any
    ) -> None:
        stream = unique("customer")
        raw = StoredEvent(
            event_id=uuid.uuid4(),
            event_type="CustomerRegistered",
            aggregate_id=stream,
            aggregate_type="Customer",
            version=1,
            payload={"customer_id": subject, "name": "Ada", "email": "a@b.c", "plan": "free"},
            occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        # An operator dict is refused as any payload's is (SerializationError); another
        # non-string subject as an id (InvalidIdError): both name the field.
        with pytest.raises((InvalidIdError, SerializationError), match="customer_id"):
            await personal_store.append(stream, [raw], 0)
        assert await personal_store.get_current_version(stream) == 0

    async def test_a_huge_personal_value_is_refused_before_a_key_is_made(
        self, personal_store: Any
    ) -> None:
        subject = unique("customer")
        huge = CustomerRegistered(customer_id=subject, name="A" * (17 * 2**20), email="a@b.c")
        with pytest.raises(DocumentTooLargeError):
            await personal_store.append(subject, [huge], 0)
        assert await personal_store.get_current_version(subject) == 0
        assert await personal_store.personal.keys.get([subject]) == {}

    async def test_a_class_with_personal_fields_and_no_subject_is_refused(
        self, personal_store: Any
    ) -> None:
        class Orphan(DomainEvent):
            aggregate_type = "Customer"
            email: Personal[str]

        personal_store.registry.register(Orphan)
        stream = unique("customer")
        with pytest.raises(ConfigurationError, match="personal_subject"):
            await personal_store.append(stream, [Orphan(email="a@b.c")], 0)
        assert await personal_store.get_current_version(stream) == 0


def _note(subject: str) -> StoredEvent:
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type="ContractNoted",
        aggregate_id=subject,
        aggregate_type="Customer",
        version=1,
        payload={"note": "no personal data"},
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    )

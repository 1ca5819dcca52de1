"""Suite: crypto-shredding, the cost of sealing personal fields at append.

An append of 100 events with 5 ``Personal[str]`` fields each, to a store given a
:class:`~eventlab.MongoKeyStore` (a new stream and a new subject every round: the subject's
key is read for, then made, inside the timed append), against the same append of the same
events with plain ``str`` fields to a store without a key store, paired in one run. The ratio
is the whole cost: the key's two round trips, 500 AES-GCM seals and the larger documents.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from eventlab import (
    DomainEvent,
    EventRegistry,
    MongoConnectionManager,
    MongoEventStore,
    MongoKeyStore,
    Personal,
)
from eventlab._core.appends import prepare_stream
from eventlab._shred.personal_data import PersonalData
from eventlab.memory import MemoryKeyStore

from ._paired import assert_ratio, paired
from .conftest import make_store

Run = Callable[[Awaitable[Any]], Any]
EVENTS = 100


class ContactUpdated(DomainEvent):
    aggregate_type: ClassVar[str | None] = "Contact"
    personal_subject: ClassVar[str | None] = "person_id"
    person_id: str
    name: Personal[str]
    email: Personal[str]
    phone: Personal[str]
    street: Personal[str]
    city: Personal[str]
    source: str


class PlainContactUpdated(DomainEvent):
    """The same event without personal fields (the baseline)."""

    aggregate_type: ClassVar[str | None] = "Contact"
    person_id: str
    name: str
    email: str
    phone: str
    street: str
    city: str
    source: str


def _events(cls: type[DomainEvent], person: str) -> list[DomainEvent]:
    return [
        cls(
            person_id=person,
            name=f"Ada Lovelace {i}",
            email=f"ada.{i}@example.org",
            phone=f"+44 20 7946 {i:04d}",
            street=f"{i} Analytical Street",
            city="London",
            source="web",
        )
        for i in range(EVENTS)
    ]


def test_append_100_with_5_personal_fields(
    benchmark: Any, connection: MongoConnectionManager, run: Run, server_label: str
) -> None:
    """Append of 100 events with 5 sealed fields each vs the same append unencrypted."""
    registry = EventRegistry()
    registry.register_all(ContactUpdated, PlainContactUpdated)
    plain = make_store(connection, registry, run, "transactional", "bench_shred_plain")
    sealed = MongoEventStore(
        connection,
        registry=registry,
        events_collection="bench_shred_sealed",
        keys=MongoKeyStore(connection, "bench_shred_keys"),
    )
    run(sealed.get_current_version("warm-up"))

    def prepare() -> tuple[str, list[DomainEvent]]:
        person = f"person-{uuid.uuid4().hex}"
        return person, _events(ContactUpdated, person)

    def prepare_baseline() -> tuple[str, list[DomainEvent]]:
        person = f"person-{uuid.uuid4().hex}"
        return person, _events(PlainContactUpdated, person)

    stored = paired(
        benchmark,
        name="shredding-append-100",
        server=server_label,
        target=lambda person, events: run(sealed.append(person, events, 0)),
        baseline=lambda person, events: run(plain.append(person, events, 0)),
        prepare=prepare,
        prepare_baseline=prepare_baseline,
        rounds=30,
        warmup_rounds=2,
    )
    assert len(stored) == EVENTS and isinstance(stored[0].payload["email"], bytes)
    person = stored[0].aggregate_id
    assert run(sealed.read_domain_events(person))[0].email == "ada.0@example.org"
    benchmark.extra_info["sealing_cpu_ms"] = round(_sealing_cpu(registry, run) * 1e3, 3)
    assert_ratio(benchmark)


def _sealing_cpu(registry: EventRegistry, run: Run) -> float:
    """The median time of sealing the 500 values alone (keys in memory, no I/O): the part
    of the cost that is the client's CPU, recorded beside the ratio."""
    keys = MemoryKeyStore()
    personal = PersonalData(keys, registry)
    times = []
    for _ in range(15):
        person = f"person-{uuid.uuid4().hex}"
        run(keys.get_or_create(person))
        stream = prepare_stream(
            registry, person, _events(ContactUpdated, person), 0, aggregate_type=None,
            metadata=None,
        )  # fmt: skip
        assert stream is not None
        started = time.perf_counter()
        run(personal.seal(stream))
        times.append(time.perf_counter() - started)
    return statistics.median(times)

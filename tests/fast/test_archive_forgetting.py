"""An archive of a store with a key store (in memory): the archive's files hold personal
fields sealed, never the plaintext; read through the archive they are opened, and once the
subject is forgotten they read as the redaction marker, like live events."""

from __future__ import annotations

from pathlib import Path

from eventlab import REDACTED
from eventlab.memory import MemoryEventStore, MemoryKeyStore
from eventlab.samples import CustomerMoved, CustomerRegistered, customer_registry


async def test_archived_personal_fields_stay_sealed_open_on_read_and_are_forgotten(
    tmp_path: Path,
) -> None:
    store = MemoryEventStore(registry=customer_registry(), keys=MemoryKeyStore())
    for subject, name in (("c1", "Ada Lovelace"), ("c2", "Grace Hopper")):
        registered = CustomerRegistered(customer_id=subject, name=name, email=f"{subject}@x.org")
        moved = CustomerMoved(customer_id=subject, street="Analytical Row 1", city="London")
        again = CustomerMoved(customer_id=subject, street="Difference Lane 2", city="London")
        await store.append(subject, [registered, moved, again], 0)
    report = await store.archive(tmp_path / "archive", through=6)
    assert report.archived == 2  # each customer's first move; first and last events stay live
    files = [p for p in (tmp_path / "archive").rglob("*") if p.is_file()]
    assert files and not [p.name for p in files if b"Analytical" in p.read_bytes()]

    (_, archived, _) = await store.read_domain_events("c1")
    assert archived.street == "Analytical Row 1"  # type: ignore[union-attr]
    await store.forget("c1")
    (forgotten, archived, moved) = await store.read_domain_events("c1")
    assert forgotten.name is REDACTED and moved.street is REDACTED  # type: ignore[union-attr]
    assert archived.street is REDACTED  # type: ignore[union-attr]
    log = await store.read_all().to_list()
    assert [e.payload["name"] for e in log if e.event_type == "CustomerRegistered"] == [
        REDACTED,
        "Grace Hopper",
    ]

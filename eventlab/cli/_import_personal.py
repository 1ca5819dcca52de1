"""``eventlab import`` and personal fields: a personal value is never stored in plain text
where the import can know it is personal.

- With ``--registry``, each event of a class declaring ``Personal`` fields has them sealed with
  its subject's key (``--keys-collection``) before the store is asked about the file, so a
  resumed import compares sealed with sealed (sealing is deterministic). Values sealed already
  (an export) are kept; a subject forgotten in that key collection stops the import before
  anything is written.
- Without it, a file event holding plain text in a field that the newest stored events of its
  type hold sealed is refused, before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._core.errors import DataError, SubjectForgottenError
from .._core.personal import REDACTED, check_subject
from .._core.records import StoredEvent
from .._core.sealing import DataKey, is_sealed, looks_sealed, sealed_subject
from .._shred.personal_data import PersonalData, seal_stored
from ._importing import Chunks
from ._keys import CheckedKeys

_BATCH = 10_000
_NEWEST = 50
"""Stored events of a type looked at for the fields the store seals (without --registry)."""


async def personal_chunks(
    store: Any, chunks: Chunks, path: Any, registry: Any, keys: Any
) -> Chunks:
    """The chunks to import: sealed with ``registry`` (``--registry``), or checked for plain
    text where the store seals (module doc)."""
    await refuse_unknown_subjects(chunks, keys)
    if registry is None:
        await refuse_plaintext(store.events, chunks, path)
        return chunks
    return await sealing_chunks(PersonalData(keys, registry), chunks)


async def refuse_unknown_subjects(chunks: Chunks, keys: Any) -> None:
    """Refuse (before anything is written) a file holding values sealed for a subject with
    neither a key nor a tombstone in ``keys``: the key most likely lives in another key
    collection, and imported here the values could never be opened (and, with
    ``--registry``, a new key would be made for the subject that cannot open them)."""
    subjects: dict[str, None] = {}
    for chunk in chunks():
        for event in chunk:
            for value in event.payload.values():
                if looks_sealed(value):
                    subject = sealed_subject(value)
                    if subject is not None:
                        subjects[subject] = None
    wanted = list(subjects)
    checked = CheckedKeys(keys)
    for start in range(0, len(wanted), _BATCH):
        await checked.get(wanted[start : start + _BATCH])


async def sealing_chunks(personal: PersonalData, chunks: Chunks) -> Chunks:
    """``chunks`` with every declared personal field sealed (keys made first, for every
    subject of the file: a forgotten one raises before anything is written)."""
    subjects: dict[str, None] = {}
    for chunk in chunks():
        for event in chunk:
            declared = personal.declared(event.event_type)
            if declared is not None:
                where = f"event {event.event_id} subject field {declared.subject_field!r}"
                subjects[check_subject(event.payload.get(declared.subject_field), where)] = None
    keys: dict[str, DataKey] = {}
    wanted = list(subjects)
    for start in range(0, len(wanted), _BATCH):
        batch = wanted[start : start + _BATCH]
        keys.update(await personal.keys.get(batch))
        for subject in batch:
            if subject not in keys:
                try:
                    keys[subject] = await personal.keys.get_or_create(subject)
                except SubjectForgottenError as exc:
                    raise DataError(
                        f"the file holds personal data of subject {subject[:80]!r}, forgotten "
                        "in this key collection: nothing was imported"
                    ) from exc

    def sealed() -> Iterator[list[StoredEvent]]:
        for chunk in chunks():
            out = []
            for event in chunk:
                declared = personal.declared(event.event_type)
                if declared is not None:
                    subject = event.payload[declared.subject_field]
                    event = seal_stored(event, declared, keys[subject])
                out.append(event)
            yield out

    return sealed


async def refuse_plaintext(events: Any, chunks: Chunks, path: Any) -> None:
    """Refuse (before anything is written) a file event holding plain text in a field that
    one of the newest stored events of its type holds sealed."""
    sealed_fields: dict[str, set[str]] = {}
    for chunk in chunks():
        for event in chunk:
            if event.event_type not in sealed_fields:
                # The newest events of the type, not only the newest one: that may hold the
                # redaction marker as text (a forgotten subject's event, imported).
                newest = events.find(
                    {"event_type": event.event_type},
                    {"payload": 1},
                    sort=[("position", -1)],
                    limit=_NEWEST,
                )
                sealed_fields[event.event_type] = {
                    field
                    async for doc in newest
                    for field, value in (doc.get("payload") or {}).items()
                    if is_sealed(value)
                }
            for field in sealed_fields[event.event_type]:
                value = event.payload.get(field)
                if field in event.payload and not is_sealed(value) and value != REDACTED:
                    raise DataError(
                        f"{path}: event {event.event_id} ({event.event_type}) holds "
                        f"{field!r} in plain text, where the store's {event.event_type} events "
                        "hold it sealed: import with --registry MODULE:ATTR (your events' "
                        "registry) and --keys-collection to seal it. Nothing was imported"
                    )

"""Sealing an append's personal fields, and opening what a read brings back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from .._core.appends import StreamAppend
from .._core.bson_values import MAX_DOCUMENT_BYTES
from .._core.errors import ConfigurationError, UnknownEventTypeError
from .._core.event_codec import encoded_bodies
from .._core.personal import REDACTED, PersonalFields, check_subject, personal_fields
from .._core.records import StoredEvent
from .._core.registry import EventRegistry
from .._core.sealing import DataKey, is_sealed, looks_sealed, plaintext_of, sealed_subject
from .keys import KeyStore


class PersonalData:
    """What a store with a key store does with personal fields (docs/forgetting.md).

    At append, :meth:`seal` replaces each personal field of an event whose class declares
    some (``Personal[T]``) by its value sealed with the subject's key; on every read,
    :meth:`open_documents` / :meth:`open_events` put the values back, or :data:`REDACTED`
    where the subject's key has been destroyed (or the sealed bytes do not authenticate).
    """

    def __init__(self, keys: KeyStore, registry: EventRegistry) -> None:
        for name in ("get_or_create", "get", "destroy"):
            if not callable(getattr(keys, name, None)):
                raise ConfigurationError(
                    f"keys must be a KeyStore (get_or_create, get, destroy), got "
                    f"{type(keys).__name__}"
                )
        self.keys = keys
        self.registry = registry

    def __repr__(self) -> str:
        return f"<PersonalData keys={type(self.keys).__name__}>"

    # -- append ----------------------------------------------------------------------------

    def declared(self, event_type: str) -> PersonalFields | None:
        """The personal fields of the class registered for ``event_type`` (``None``: none, or
        a type the registry does not know)."""
        try:
            return personal_fields(self.registry.class_for(event_type))
        except UnknownEventTypeError:
            return None

    async def seal(self, stream: StreamAppend) -> StreamAppend:
        """``stream`` with every personal field sealed (values sealed already are kept: an
        export imported again). Checks every subject id before any key is made."""
        plans: list[tuple[int, PersonalFields, str]] = []
        for index, event in enumerate(stream.events):
            declared = self.declared(event.event_type)
            if declared is None:
                continue
            subject = check_subject(
                event.payload.get(declared.subject_field),
                f"event {event.event_id} ({event.event_type}) "
                f"subject field {declared.subject_field!r}",
            )
            plans.append((index, declared, subject))
        if not plans:
            return stream
        # Refused before a key is made for it: an event too large to store, or one that does
        # not encode (an integer beyond 64 bits, text that is not Unicode), writes nothing.
        encoded_bodies(
            (stream.bodies[i] for i, _, _ in plans), MAX_DOCUMENT_BYTES, [None] * len(plans)
        )
        subjects = list(dict.fromkeys(subject for _, _, subject in plans))
        # One read for the keys that exist (the common case: one round trip), then one
        # race-free create per subject still without one (a forgotten one raises there).
        # The values are encoded while the read is under way: that part needs no key.
        lookup = asyncio.ensure_future(self.keys.get(subjects))
        await asyncio.sleep(0)  # the read goes out before the encoding starts
        try:
            plaintexts = [
                _plaintexts(stream.events[index], declared) for index, declared, _ in plans
            ]
        except BaseException:
            lookup.cancel()
            raise
        keys = await lookup
        for subject in subjects:
            if subject not in keys:
                keys[subject] = await self.keys.get_or_create(subject)
        events, bodies = list(stream.events), list(stream.bodies)
        for (index, _, subject), fields in zip(plans, plaintexts, strict=True):
            event, body = events[index], bodies[index]
            key = keys[subject]
            sealed = {
                field: key.seal_plaintext(plaintext, event.event_id, field)
                for field, plaintext in fields.items()
            }
            if sealed:
                events[index] = replace(event, payload={**event.payload, **sealed})
                # Only the sealed fields changed: the rest of the payload was encoded already
                # (a sealed value is a BSON binary as it is).
                bodies[index] = {**body, "payload": {**body["payload"], **sealed}}
        return StreamAppend(stream.aggregate_id, stream.expected, events, bodies)

    # -- read ------------------------------------------------------------------------------

    async def open_documents(self, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The documents with their sealed payload values opened (copies where changed)."""
        keys = await self._keys_for(doc.get("payload") for doc in documents)
        if keys is None:
            return documents
        opened = []
        for doc in documents:
            payload = doc.get("payload")
            if isinstance(payload, dict) and _holds_sealed(payload):
                doc = {**doc, "payload": open_payload(payload, doc["_id"], keys)}
            opened.append(doc)
        return opened

    async def open_events(self, events: list[StoredEvent]) -> list[StoredEvent]:
        """The events with their sealed payload values opened (copies where changed)."""
        keys = await self._keys_for(event.payload for event in events)
        if keys is None:
            return events
        return [
            replace(event, payload=open_payload(event.payload, event.event_id, keys))
            if _holds_sealed(event.payload)
            else event
            for event in events
        ]

    async def open_payload(self, payload: dict[str, Any], event_id: Any) -> dict[str, Any]:
        """One payload opened (an outbox message's, say, in a publisher)."""
        keys = await self._keys_for([payload]) or {}
        return open_payload(payload, event_id, keys)

    async def redact_forgotten(self, events: list[StoredEvent]) -> list[StoredEvent]:
        """The events as an export keeps them: personal values stay sealed (a copy the key
        store still governs), but those of forgotten subjects become :data:`REDACTED`."""
        keys = await self._keys_for(event.payload for event in events)
        if keys is None:
            return events
        live = set(keys)
        out = []
        for event in events:
            payload, redacted = redact_payload(event.payload, live)
            out.append(replace(event, payload=payload) if redacted else event)
        return out

    async def _keys_for(self, payloads: Iterable[Any]) -> dict[str, DataKey] | None:
        """The keys of the subjects the payloads' sealed values name (``None``: none sealed)."""
        subjects: dict[str, None] = {}
        sealed = False
        for payload in payloads:
            if isinstance(payload, dict):
                for value in payload.values():
                    if looks_sealed(value):
                        sealed = True
                        subject = sealed_subject(value)
                        if subject is not None:
                            subjects[subject] = None
        if not sealed:
            return None
        return await self.keys.get(list(subjects)) if subjects else {}


def open_payload(
    payload: Mapping[str, Any], event_id: Any, keys: Mapping[str, DataKey]
) -> dict[str, Any]:
    """``payload`` with each sealed value opened, or :data:`REDACTED` where its key is gone."""
    opened = dict(payload)
    for field, value in payload.items():
        if not looks_sealed(value):
            continue
        subject = sealed_subject(value)  # None: malformed, read as redacted
        key = keys.get(subject) if subject is not None else None
        ok, plain = key.open(value, event_id, field) if key is not None else (False, None)
        opened[field] = plain if ok else REDACTED
    return opened


def redact_payload(
    payload: Mapping[str, Any], live: Sequence[str] | set[str]
) -> tuple[dict[str, Any], bool]:
    """``payload`` with the sealed values of subjects not in ``live`` replaced by
    :data:`REDACTED` (the others stay sealed); and whether any was."""
    out = dict(payload)
    redacted = False
    for field, value in payload.items():
        if looks_sealed(value) and sealed_subject(value) not in live:
            out[field] = REDACTED
            redacted = True
    return out, redacted


def _holds_sealed(payload: Any) -> bool:
    return isinstance(payload, dict) and any(looks_sealed(v) for v in payload.values())


def seal_stored(event: StoredEvent, declared: PersonalFields, key: DataKey) -> StoredEvent:
    """``event`` with its declared personal fields sealed with ``key`` (those sealed already,
    and the redaction marker, kept as they are)."""
    payload = dict(event.payload)
    for field in declared.fields:
        value = payload.get(field)
        if field in payload and not is_sealed(value) and value != REDACTED:
            payload[field] = key.seal(value, event.event_id, field)
    return replace(event, payload=payload)


def _plaintexts(event: StoredEvent, declared: PersonalFields) -> dict[str, bytes]:
    """What sealing will encrypt of each declared personal field of ``event`` not sealed yet
    (its body encoded: so do its values)."""
    payload = event.payload
    return {
        field: plaintext_of(payload[field], field)
        for field in declared.fields
        if field in payload and not is_sealed(payload[field])
    }

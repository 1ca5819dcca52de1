"""The key-store contract: every :class:`~eventlab.KeyStore` keeps these sentences."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from typing import Any

import pytest

from .._core.errors import InvalidIdError, SubjectForgottenError
from .._core.sealing import DataKey
from .._shred.keys import KeyStore
from ._support import unique

HOSTILE_SUBJECTS: list[Any] = [
    {"$ne": None},
    {"$gt": ""},
    ["a", "b"],
    123,
    None,
    True,
    b"bytes",
    "",
    "x" * 100_000,
    "nul\x00inside",
]
"""Subject ids a key store refuses with :class:`~eventlab.InvalidIdError`."""


def same_key(one: DataKey, other: DataKey) -> bool:
    """Whether two keys are the same key: each opens what the other sealed."""
    event_id = uuid.uuid4()
    ok, value = other.open(one.seal("probe", event_id, "f"), event_id, "f")
    return ok and value == "probe"


class KeyStoreContract:
    """What every key store guarantees. A backend's test provides ``key_store`` (a fresh
    store) and ``other_key_store`` (a second handle on the same keys: another client)."""

    @pytest.fixture
    async def key_store(self) -> KeyStore:
        raise NotImplementedError("a backend's test module provides the key store")

    @pytest.fixture
    def key_material(self) -> Any:
        """``async (key_store, subject) -> bytes``: the stored material, read behind the
        port's back (the port never hands it out), for the test that it is never shown."""
        raise NotImplementedError("a backend's test module says where key material lives")

    @pytest.fixture
    async def other_key_store(self, key_store: KeyStore) -> KeyStore:
        return key_store

    async def test_a_subject_has_one_key(self, key_store: KeyStore) -> None:
        subject = unique("subject")
        first = await key_store.get_or_create(subject)
        again = await key_store.get_or_create(subject)
        got = await key_store.get([subject])
        assert same_key(first, again) and same_key(first, got[subject])
        other = await key_store.get_or_create(unique("subject"))
        assert not same_key(first, other)

    async def test_get_returns_only_subjects_with_a_key(self, key_store: KeyStore) -> None:
        known, never_seen = unique("subject"), unique("subject")
        await key_store.get_or_create(known)
        assert set(await key_store.get([known, never_seen])) == {known}
        assert await key_store.get([]) == {}

    async def test_destroy_forgets_for_good(self, key_store: KeyStore) -> None:
        subject = unique("subject")
        await key_store.get_or_create(subject)
        assert await key_store.destroy(subject) is True
        assert await key_store.get([subject]) == {}
        assert await key_store.destroy(subject) is False  # twice: nothing more to destroy
        with pytest.raises(SubjectForgottenError) as caught:
            await key_store.get_or_create(subject)
        assert caught.value.subject == subject

    async def test_an_unknown_subject_forgotten_stays_forgotten(self, key_store: KeyStore) -> None:
        subject = unique("subject")
        assert await key_store.destroy(subject) is False
        with pytest.raises(SubjectForgottenError):
            await key_store.get_or_create(subject)

    async def test_forgotten_tells_a_tombstone_from_a_subject_never_seen(
        self, key_store: Any
    ) -> None:
        if not callable(getattr(key_store, "forgotten", None)):
            pytest.skip("an optional capability (the CLI's check of --keys-collection)")
        live, gone, never = unique("live"), unique("gone"), unique("never")
        await key_store.get_or_create(live)
        await key_store.get_or_create(gone)
        await key_store.destroy(gone)
        assert await key_store.forgotten([live, gone, never]) == {gone}
        assert await key_store.get([never]) == {} and await key_store.forgotten([never]) == set()

    async def test_concurrent_creates_end_with_one_key(
        self, key_store: KeyStore, other_key_store: KeyStore
    ) -> None:
        subject = unique("subject")
        stores = [key_store, other_key_store] * 8
        keys = await asyncio.gather(*(store.get_or_create(subject) for store in stores))
        stored = (await key_store.get([subject]))[subject]
        assert all(same_key(key, stored) for key in keys)

    async def test_destroy_racing_creates_leaves_the_subject_forgotten(
        self, key_store: KeyStore, other_key_store: KeyStore
    ) -> None:
        subject = unique("subject")

        async def create() -> str:
            try:
                await other_key_store.get_or_create(subject)
                return "created"
            except SubjectForgottenError:
                return "refused"

        results = await asyncio.gather(create(), key_store.destroy(subject), create())
        assert await key_store.get([subject]) == {}
        with pytest.raises(SubjectForgottenError):
            await key_store.get_or_create(subject)
        assert {results[0], results[2]} <= {"created", "refused"}

    @pytest.mark.parametrize("subject", HOSTILE_SUBJECTS, ids=lambda s: type(s).__name__)
    async def test_hostile_subjects_are_refused(self, key_store: KeyStore, subject: Any) -> None:
        with pytest.raises(InvalidIdError):
            await key_store.get_or_create(subject)
        with pytest.raises(InvalidIdError):
            await key_store.destroy(subject)
        with pytest.raises(InvalidIdError):
            await key_store.get([subject])
        if callable(getattr(key_store, "forgotten", None)):
            with pytest.raises(InvalidIdError):
                await key_store.forgotten([subject])  # type: ignore[attr-defined]

    async def test_a_key_never_shows_its_material(
        self, key_store: KeyStore, key_material: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        subject = unique("subject")
        key = await key_store.get_or_create(subject)
        material: bytes = await key_material(key_store, subject)
        assert len(material) == 32
        shown = [repr(key), str(key), repr(key_store), f"{key}", f"{key!r}"]
        with pytest.raises(TypeError) as pickled:
            import pickle

            pickle.dumps(key)
        shown.append(str(pickled.value))
        shown += [record.getMessage() for record in caplog.records]
        forms = [material.hex(), repr(material), base64.b64encode(material).decode()]
        forms += [form[:16] for form in forms]  # nor a part of it
        for text in shown:
            for form in forms:
                assert form not in text

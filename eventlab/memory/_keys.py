"""Subjects' data keys in process memory (the :class:`~eventlab.KeyStore` port), for tests."""

from __future__ import annotations

from collections.abc import Sequence

from .._core.errors import ConfigurationError, SubjectForgottenError
from .._core.personal import check_subject
from .._core.sealing import DataKey, new_key_material


class MemoryKeyStore:
    """Data keys in a dict; a destroyed key leaves its subject as forgotten (``None``).

    Each operation completes without awaiting, so concurrent tasks see them one at a time,
    as the key collection's single-document upserts make them on MongoDB.
    """

    def __init__(self) -> None:
        self._keys: dict[str, bytes | None] = {}

    def __repr__(self) -> str:
        return f"<MemoryKeyStore {len(self._keys)} subjects>"

    async def get_or_create(self, subject: str) -> DataKey:
        subject = check_subject(subject)
        material = self._keys.setdefault(subject, new_key_material())
        if material is None:
            raise SubjectForgottenError(subject)
        return DataKey(subject, material)

    async def get(self, subjects: Sequence[str]) -> dict[str, DataKey]:
        if isinstance(subjects, str) or not isinstance(subjects, Sequence):
            raise ConfigurationError(f"subjects must be a list of str, got {subjects!r:.80}")
        found = {}
        for subject in map(check_subject, subjects):
            material = self._keys.get(subject)
            if material is not None:
                found[subject] = DataKey(subject, material)
        return found

    async def forgotten(self, subjects: Sequence[str]) -> set[str]:
        """Those of ``subjects`` whose key was destroyed (a tombstone)."""
        if isinstance(subjects, str) or not isinstance(subjects, Sequence):
            raise ConfigurationError(f"subjects must be a list of str, got {subjects!r:.80}")
        return {s for s in map(check_subject, subjects) if s in self._keys and not self._keys[s]}

    async def destroy(self, subject: str) -> bool:
        subject = check_subject(subject)
        existed = self._keys.get(subject) is not None
        self._keys[subject] = None
        return existed

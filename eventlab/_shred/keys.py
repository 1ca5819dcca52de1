"""The key-store port: where subjects' data keys live, and how one is destroyed.

Three operations, so that a KMS (AWS KMS, Google Cloud KMS, HashiCorp Vault's transit engine
holding wrapped keys) can stand in for MongoDB's key collection. A key store keeps a
**tombstone** for every destroyed key: a subject once forgotten stays forgotten, and a late
append for it is refused rather than given a new key (docs/forgetting.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .._core.sealing import DataKey


class KeyStore(Protocol):
    """Per-subject data keys (:mod:`eventlab.contracts` holds every key store to these
    sentences)."""

    async def get_or_create(self, subject: str) -> DataKey:
        """The subject's key, made and stored first if it has none. Race-free: concurrent
        calls for a new subject all return the one key that was stored. Raises
        :class:`~eventlab.SubjectForgottenError` once the subject's key has been destroyed."""
        ...

    async def get(self, subjects: Sequence[str]) -> dict[str, DataKey]:
        """The keys of those ``subjects`` that have one; a subject never seen and a subject
        forgotten are both absent."""
        ...

    async def destroy(self, subject: str) -> bool:
        """Destroy the subject's key for good and keep the subject as forgotten (also a
        subject never seen). ``True`` when a key existed (``False``: unknown, or forgotten
        already). Once it returns, no reader of this key store can open the subject's
        values again."""
        ...

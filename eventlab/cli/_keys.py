"""The key collection as the commands read it: a subject whose sealed values a command meets
must have a key, or a tombstone (forgotten). Neither means the key lives elsewhere (another
``--keys-collection``): the command stops rather than write "<redacted>" for live data or
leave a stray tombstone behind."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._core.errors import ConfigurationError

if TYPE_CHECKING:  # the commands' help imports nothing heavy (bson)
    from .._core.sealing import DataKey


def _unknown(subjects: Sequence[str], keys: Any) -> ConfigurationError:
    shown = ", ".join(repr(s[:80]) for s in subjects[:3])
    more = f" and {len(subjects) - 3:,} more" if len(subjects) > 3 else ""
    return ConfigurationError(
        f"no key and no record of a forget for subject {shown}{more} in the key collection "
        f"{keys.collection_name!r}: check --keys-collection (the collection your "
        "MongoKeyStore uses); nothing was written"
    )


class CheckedKeys:
    """A key store for reading: a subject named by a sealed value with neither a key nor a
    tombstone raises :class:`~eventlab.ConfigurationError` (never read as forgotten)."""

    def __init__(self, keys: Any) -> None:
        self.keys = keys

    def __repr__(self) -> str:
        return f"<CheckedKeys {self.keys!r}>"

    async def get(self, subjects: Sequence[str]) -> dict[str, DataKey]:
        found: dict[str, DataKey] = await self.keys.get(subjects)
        missing = [s for s in subjects if s not in found]
        if missing:
            forgotten = await self.keys.forgotten(missing)
            unknown = [s for s in missing if s not in forgotten]
            if unknown:
                raise _unknown(unknown, self.keys)
        return found

    async def get_or_create(self, subject: str) -> DataKey:
        raise ConfigurationError("a read-only command does not make keys")

    async def destroy(self, subject: str) -> bool:
        raise ConfigurationError("a read-only command does not destroy keys")


async def refuse_unknown_subject(store: Any, keys: Any, subject: str) -> None:
    """Raise before anything is written when ``subject`` has sealed values in ``store`` but
    neither a key nor a tombstone in ``keys``: forgetting it there would destroy nothing."""
    if await keys.get([subject]) or await keys.forgotten([subject]):
        return
    preview = await store.forget(subject, dry_run=True)
    if preview.events:
        raise _unknown([subject], keys)

"""A batch of stored event documents as the server sent them: BSON bytes, decoded on demand.

A whole-log scan (frames, exports) hands its batches out undecoded, so that a reader that
builds columns decodes them column by column in bulk (``bson_columns``) instead of making a
Python object of every value. Any other reader iterates the batch as it would a list of
documents: it is decoded then, as the driver would have decoded it (``AS_BSON_STORES``).
The scan's own selection (a position range, no tombstones) is part of the batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, overload

from .tombstones import TOMBSTONE_FIELD

if TYPE_CHECKING:
    import numpy as np

    from .bson_columns import Batch


class StoredBatch(Sequence[dict[str, Any]]):
    """The documents of ``batch`` with ``after < position <= through`` and no tombstone
    field, in the order the server sent them."""

    def __init__(self, batch: Batch, after: int, through: int) -> None:
        self.batch = batch
        self.after = after
        self.through = through

    @classmethod
    def of(cls, raws: Sequence[bytes], after: int, through: int) -> StoredBatch:
        """A batch of separate documents' bytes."""
        from .bson_columns import Batch

        return cls(Batch.of(raws), after, through)

    @cached_property
    def _selection(self) -> tuple[np.ndarray, np.ndarray]:
        from .bson_columns import selection

        return selection(self.batch, self.after, self.through, TOMBSTONE_FIELD)

    @property
    def kept(self) -> np.ndarray:
        """The indexes of the batch's documents in the selection."""
        return self._selection[0]

    @cached_property
    def _documents(self) -> list[dict[str, Any]]:
        from .bson_columns import decoded

        return decoded(self.batch, self.kept)

    def positions(self) -> list[int]:
        """The kept documents' positions, without decoding the documents."""
        found: list[int] = self._selection[1].tolist()
        return found

    def __len__(self) -> int:
        return len(self.kept)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        return self._documents[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._documents)

    def __repr__(self) -> str:
        return f"<StoredBatch of {self.batch.count} documents in ({self.after}, {self.through}]>"


def positions_in(page: Sequence[dict[str, Any]]) -> list[int]:
    """The positions of a page's documents (a stored batch's without decoding it)."""
    if isinstance(page, StoredBatch):
        return page.positions()
    return [int(d["position"]) for d in page]

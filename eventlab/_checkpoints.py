"""Checkpoints: how far a named subscriber has followed the log, stored in MongoDB."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError, PyMongoError

from ._bson import check_collection_name
from ._checks import check_int, check_name
from ._connection import MongoConnectionManager
from ._display import HtmlRecord
from ._errors import CheckpointConflictError
from ._session import SessionProvider, session_of
from ._transactions import map_error

_KEPT_GAPS = 1000


@dataclass(frozen=True, slots=True)
class Checkpoint(HtmlRecord):
    """A subscriber's place in the log: every position up to ``position`` is done with."""

    name: str
    position: int
    updated_at: datetime | None = None
    gaps: tuple[int, ...] = ()
    """Positions found permanently empty (aborted preallocated appends), the latest 1,000."""


class MongoCheckpointStore:
    """Checkpoints in one collection, one document per subscriber name.

    :meth:`save` with ``expected`` is conditional on the stored position, so two instances of
    one subscriber can never both advance it: the second gets
    :class:`~eventlab.CheckpointConflictError`. Pass ``uow=`` to commit the checkpoint in the
    same transaction as the handler's writes (exactly-once effect).
    """

    def __init__(self, connection: MongoConnectionManager, collection: str = "checkpoints") -> None:
        self.connection = connection
        self.collection_name = check_collection_name(collection)

    @property
    def collection(self) -> Any:
        return self.connection.database[self.collection_name]

    async def _ready(self) -> None:
        await self.connection.connect()  # idempotent

    async def get(self, name: str, uow: SessionProvider | None = None) -> Checkpoint | None:
        """The stored checkpoint, or ``None`` for a subscriber that never saved one."""
        name = check_name(name, "subscriber name")
        await self._ready()
        try:
            doc = await self.collection.find_one({"_id": name}, session=session_of(uow))
        except PyMongoError as exc:
            raise map_error(exc) from exc
        if doc is None:
            return None
        return Checkpoint(
            name=name,
            position=int(doc.get("position", 0)),
            updated_at=doc.get("updated_at"),
            gaps=tuple(doc.get("gaps") or ()),
        )

    async def position(self, name: str) -> int:
        """The stored position, 0 when there is none."""
        checkpoint = await self.get(name)
        return checkpoint.position if checkpoint else 0

    async def save(
        self,
        name: str,
        position: int,
        *,
        expected: int | None = None,
        gaps: Iterable[int] = (),
        uow: SessionProvider | None = None,
    ) -> None:
        """Store ``position`` (and record ``gaps``).

        :param expected: the position the caller last read or saved. When given, the save
            applies only if the stored position is still that (0 also matches "none stored"),
            otherwise :class:`~eventlab.CheckpointConflictError`. Without it, the position only
            ever moves forward (``$max``), for at-least-once subscribers.
        """
        name = check_name(name, "subscriber name")
        position = check_int(position, "position")
        update: dict[str, Any] = {"$currentDate": {"updated_at": True}}
        gap_list = [int(g) for g in gaps]
        if gap_list:
            update["$push"] = {"gaps": {"$each": gap_list, "$slice": -_KEPT_GAPS}}
        if expected is None:
            query: dict[str, Any] = {"_id": name}
            update["$max"] = {"position": position}
        else:
            query = {"_id": name, "position": check_int(expected, "expected")}
            update["$set"] = {"position": position}
        await self._ready()
        try:
            result = await self.collection.update_one(
                query, update, upsert=expected in (None, 0), session=session_of(uow)
            )
        except DuplicateKeyError:
            # The upsert for "expected 0" found the name stored at another position.
            raise self._conflict(name, expected) from None
        except PyMongoError as exc:
            raise map_error(exc) from exc
        if expected is not None and result.matched_count == 0 and result.upserted_id is None:
            raise self._conflict(name, expected)

    def _conflict(self, name: str, expected: int | None) -> CheckpointConflictError:
        return CheckpointConflictError(
            f"checkpoint {name!r} is no longer at position {expected}: another instance of "
            "this subscriber advanced it (run one instance per name)"
        )

    async def delete(self, name: str) -> bool:
        """Forget a checkpoint (the subscriber then starts over); whether one existed."""
        await self._ready()
        result = await self.collection.delete_one({"_id": check_name(name, "subscriber name")})
        return bool(result.deleted_count)

    async def all(self) -> list[Checkpoint]:
        """Every stored checkpoint, by name."""
        await self._ready()
        docs = await self.collection.find({}, sort=[("_id", 1)]).to_list(None)
        return [
            Checkpoint(
                d["_id"], int(d.get("position", 0)), d.get("updated_at"), tuple(d.get("gaps") or ())
            )
            for d in docs
        ]

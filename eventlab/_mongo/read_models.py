"""Read models on MongoDB (the :class:`~eventlab.ports.ReadModelStore` port).

Generation *g* of read model *name* lives in the collection ``<prefix><name>_<g>``; one state
document per read model in ``projections`` says which generation is live, which handlers'
version built it, and which replaced generations are kept readable (``retired``). A batch's
write to the state document (:meth:`MongoReadModels.still_live`) and a swap write the same
document, so after a swap no batch of the old generation can commit.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import DeleteOne, ReplaceOne, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from .._core.bson_values import check_collection_name, decimals_to_python, to_bson_value
from .._core.checks import check_name
from .._core.errors import EventlabError
from ..ports import ReadModelState, UnitOfWork
from .connection import MongoConnectionManager
from .lookups import find_in
from .session import session_of
from .transaction_policy import map_error

STATE_COLLECTION = "projections"


class MongoReadModels:
    """Read models' generations and their state in one database."""

    def __init__(self, connection: MongoConnectionManager, prefix: str = "rm_") -> None:
        self.connection = connection
        self.prefix = check_name(prefix, "prefix") if prefix else ""

    @property
    def _state(self) -> Any:
        return self.connection.database[STATE_COLLECTION]

    def location(self, name: str, generation: int) -> str:
        return check_collection_name(f"{self.prefix}{name}_{generation}")

    def collection(self, name: str, generation: int) -> Any:
        """The collection of a generation (MongoDB only: for your own queries)."""
        return self.connection.database[self.location(name, generation)]

    async def exists(self, name: str) -> bool:
        await self.connection.connect()  # idempotent
        try:
            return await self._state.find_one({"_id": check_name(name, "name")}) is not None
        except PyMongoError as exc:
            raise map_error(exc) from exc

    async def state(self, name: str, version: int) -> ReadModelState:
        await self.connection.connect()  # idempotent
        try:
            doc = await self._state.find_one({"_id": name})
            if doc is None:
                with contextlib.suppress(DuplicateKeyError):  # two projectors creating it
                    await self._state.insert_one(
                        {"_id": name, "generation": 1, "version": version, "retired": []}
                    )
                doc = await self._state.find_one({"_id": name})
        except PyMongoError as exc:
            raise map_error(exc) from exc
        if doc is None:  # pragma: no cover - inserted just above
            raise EventlabError(f"read model state of {name} could not be created")
        return _state_of(doc)

    async def rows(self, name: str, generation: int) -> list[dict[str, Any]]:
        cursor = self.collection(name, generation).find({}, sort=[("_id", 1)])
        try:
            return [decimals_to_python(d) async for d in cursor]
        except PyMongoError as exc:
            raise map_error(exc) from exc

    async def count(self, name: str, generation: int) -> int:
        try:
            return int(await self.collection(name, generation).estimated_document_count())
        except PyMongoError as exc:
            raise map_error(exc) from exc

    def batch(self, name: str, generation: int, uow: UnitOfWork | None) -> MongoBatchRows:
        return MongoBatchRows(self.collection(name, generation), session_of(uow))

    async def still_live(self, name: str, generation: int, uow: UnitOfWork) -> bool:
        moved = await self._state.update_one(
            {"_id": name, "generation": generation}, {"$inc": {"batches": 1}}, session=uow.session
        )
        return bool(moved.matched_count)

    async def next_generation(self, name: str) -> int:
        live = await self.state(name, 1)
        counter = f"{name}:generations"
        try:
            await self._state.update_one(
                {"_id": counter}, {"$max": {"seq": live.generation}}, upsert=True
            )
            doc = await self._state.find_one_and_update(
                {"_id": counter}, {"$inc": {"seq": 1}}, return_document=ReturnDocument.AFTER
            )
        except PyMongoError as exc:
            raise map_error(exc) from exc
        assert doc is not None  # created just above
        return int(doc["seq"])

    async def swap(self, name: str, old: int, new: int, version: int, uow: UnitOfWork) -> bool:
        now = datetime.now(UTC)
        swapped = await self._state.update_one(
            {"_id": name, "generation": old},
            {
                "$set": {"generation": new, "version": version, "rebuilt_at": now},
                "$push": {"retired": {"generation": old, "retired_at": now}},
            },
            session=uow.session,
        )
        return bool(swapped.matched_count)

    async def drop_retired(self, name: str, older_than: float) -> list[int]:
        live = await self.state(name, 1)
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        expired = {g for g, at in live.retired if at < cutoff}
        kept = live.readable - expired
        database = self.connection.database
        dropped: list[int] = []
        try:
            for generation in sorted(expired):
                # Off the list first, dropped second: a reader that sees the list without it
                # reads again (see Projector.rows), never an empty collection.
                await self._state.update_one(
                    {"_id": name}, {"$pull": {"retired": {"generation": generation}}}
                )
            pattern = re.compile(rf"^{re.escape(self.prefix + name)}_(\d+)$")
            for collection in await database.list_collection_names():
                found = pattern.match(collection)
                if found and int(found.group(1)) not in kept:
                    await database[collection].drop()
                    dropped.append(int(found.group(1)))
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return sorted(dropped)


class MongoBatchRows:
    """:class:`~eventlab.ports.BatchRows` over a collection in a transaction: read on first use,
    written once per key when the batch ends (one ``bulk_write``)."""

    def __init__(self, collection: Any, session: Any) -> None:
        self._collection = collection
        self._session = session
        self._cache: dict[str, dict[str, Any] | None] = {}
        self._dirty: set[str] = set()

    async def prefetch(self, keys: Iterable[str]) -> None:
        wanted = [k for k in set(keys) if k not in self._cache]
        if not wanted:
            return
        found = {
            d["_id"]: d
            for d in await find_in(self._collection, "_id", wanted, session=self._session)
        }
        for key in wanted:
            doc = found.get(key)
            self._cache[key] = _row_of(doc) if doc is not None else None

    async def get(self, key: str) -> dict[str, Any] | None:
        key = str(key)
        if key not in self._cache:
            await self.prefetch([key])
        row = self._cache[key]
        return copy.deepcopy(row) if row is not None else None

    def put(self, key: str, row: dict[str, Any]) -> None:
        self._cache[str(key)] = copy.deepcopy(row)
        self._dirty.add(str(key))

    def delete(self, key: str) -> None:
        self._cache[str(key)] = None
        self._dirty.add(str(key))

    async def flush(self) -> None:
        operations: list[Any] = []
        for key in sorted(self._dirty):
            row = self._cache[key]
            if row is None:
                operations.append(DeleteOne({"_id": key}))
            else:
                body = to_bson_value(row, f"read-model row {key}")
                operations.append(ReplaceOne({"_id": key}, {"_id": key, **body}, upsert=True))
        if operations:
            await self._collection.bulk_write(operations, ordered=True, session=self._session)
        self._dirty.clear()


def _row_of(doc: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = decimals_to_python({k: v for k, v in doc.items() if k != "_id"})
    return row


def _state_of(doc: dict[str, Any]) -> ReadModelState:
    return ReadModelState(
        name=str(doc["_id"]),
        generation=int(doc["generation"]),
        version=int(doc.get("version", 1)),
        retired=tuple((int(r["generation"]), r["retired_at"]) for r in doc.get("retired") or ()),
    )

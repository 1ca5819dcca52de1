"""Read models in memory (the :class:`~eventlab.ports.ReadModelStore` port), with the rules of
``MongoReadModels``: a batch and a swap both write the read model's state, so they conflict;
a replaced generation stays readable until dropped; the live one is never dropped."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from .._core.bson_values import check_collection_name, to_bson_value
from .._core.checks import check_name
from .._core.errors import WriteConflictError
from ..ports import ReadModelState, UnitOfWork
from ._database import MemoryDatabase, MemoryTransaction

_STATE, _GENERATIONS = "read_models", "read_model_generations"


class MemoryReadModels:
    """Read models' generations and their state, in memory."""

    def __init__(self, database: MemoryDatabase, prefix: str = "rm_") -> None:
        self._db = database
        self.prefix = check_name(prefix, "prefix") if prefix else ""

    def location(self, name: str, generation: int) -> str:
        return check_collection_name(f"{self.prefix}{name}_{generation}")

    def _rows_table(self, name: str, generation: int) -> str:
        return f"rows:{self.location(name, generation)}"

    async def exists(self, name: str) -> bool:
        return self._db.get(_STATE, check_name(name, "name")) is not None

    async def state(self, name: str, version: int) -> ReadModelState:
        doc = self._db.get(_STATE, name)
        if doc is None:
            doc = {"generation": 1, "version": version, "retired": []}
            self._db.put(_STATE, name, doc)
        return _state_of(name, doc)

    async def rows(self, name: str, generation: int) -> list[dict[str, Any]]:
        table = self._db.values(self._rows_table(name, generation))
        return [{"_id": key, **table[key]} for key in sorted(table)]

    async def count(self, name: str, generation: int) -> int:
        return len(self._db.values(self._rows_table(name, generation)))

    def batch(self, name: str, generation: int, uow: UnitOfWork | None) -> MemoryBatchRows:
        transaction = uow.session if uow is not None else None
        return MemoryBatchRows(self._db, self._rows_table(name, generation), transaction)

    async def still_live(self, name: str, generation: int, uow: UnitOfWork) -> bool:
        doc = self._db.get(_STATE, name, uow.session)
        if doc is None or doc["generation"] != generation:
            return False
        self._db.put(_STATE, name, doc, uow.session)  # held: a swap conflicts with this batch
        return True

    async def next_generation(self, name: str) -> int:
        live = await self.state(name, 1)
        seq = max(self._db.get(_GENERATIONS, name) or 0, live.generation) + 1
        self._db.put(_GENERATIONS, name, seq)
        return seq

    async def swap(self, name: str, old: int, new: int, version: int, uow: UnitOfWork) -> bool:
        doc = self._db.get(_STATE, name, uow.session)
        if doc is None or doc["generation"] != old:
            return False
        retired = [*doc["retired"], (old, datetime.now(UTC))]
        self._db.put(
            _STATE, name, {"generation": new, "version": version, "retired": retired}, uow.session
        )
        return True

    async def drop_retired(self, name: str, older_than: float) -> list[int]:
        doc = self._db.get(_STATE, name)
        if doc is None:
            return []
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        kept = [(g, at) for g, at in doc["retired"] if at >= cutoff]
        try:  # off the list first, dropped second (see MongoReadModels.drop_retired)
            self._db.put(_STATE, name, {**doc, "retired": kept})
        except WriteConflictError:
            return []  # a batch holds the state: drop next time
        readable = {doc["generation"]} | {g for g, _ in kept}
        dropped = []
        prefix = f"rows:{self.prefix}{name}_"
        for table in self._db.table_names():
            generation = table[len(prefix) :]
            if (
                table.startswith(prefix)
                and generation.isdigit()
                and int(generation) not in readable
            ):
                self._db.drop_table(table)
                dropped.append(int(generation))
        return sorted(dropped)


class MemoryBatchRows:
    """:class:`~eventlab.ports.BatchRows` in memory: rows written in the batch's transaction."""

    def __init__(
        self, database: MemoryDatabase, table: str, transaction: MemoryTransaction | None
    ) -> None:
        self._db = database
        self._table = table
        self._transaction = transaction

    async def prefetch(self, keys: Iterable[str]) -> None:
        return None  # nothing to gain: every read is a dict lookup

    async def get(self, key: str) -> dict[str, Any] | None:
        row: dict[str, Any] | None = self._db.get(self._table, str(key), self._transaction)
        return row

    def put(self, key: str, row: dict[str, Any]) -> None:
        # Checked as MongoDB would store it: the same rows are refused on both backends.
        to_bson_value(row, f"read-model row {key}")
        self._db.put(self._table, str(key), copy.deepcopy(row), self._transaction)

    def delete(self, key: str) -> None:
        self._db.delete(self._table, str(key), self._transaction)

    async def flush(self) -> None:
        return None  # written as they were put, in the transaction


def _state_of(name: str, doc: dict[str, Any]) -> ReadModelState:
    return ReadModelState(
        name=name,
        generation=int(doc["generation"]),
        version=int(doc["version"]),
        retired=tuple((int(g), at) for g, at in doc["retired"]),
    )

"""Checkpoints, leases and snapshots in memory, with the rules of their MongoDB twins:
conditional checkpoints, leases a successor takes over once they expire (ending the
predecessor's session first), snapshots that never move backwards."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Any

from .._core.bson_values import decimals_to_python, encoded_size, to_bson_value
from .._core.checkpoint_rules import CheckpointSave, check_lease, checkpoint_conflict
from .._core.checks import check_aggregate_id, check_name
from .._core.errors import (
    ConfigurationError,
    WriteConflictError,
)
from .._follow.checkpoint_saves import SavesCheckpoints
from ..ports import KEPT_GAPS, Checkpoint, LeaseGrant, Snapshot, UnitOfWork
from ._database import MemoryDatabase, MemoryTransaction

_CHECKPOINTS, _LEASES, _SNAPSHOTS = "checkpoints", "checkpoint_leases", "snapshots"


def _in(uow: UnitOfWork | None) -> MemoryTransaction | None:
    return uow.session if uow is not None else None


class MemoryCheckpointStore(SavesCheckpoints):
    """:class:`~eventlab.ports.CheckpointStore` in memory (leases by this process's clock)."""

    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    async def get(self, name: str, uow: UnitOfWork | None = None) -> Checkpoint | None:
        name = check_name(name, "subscriber name")
        doc = self._db.get(_CHECKPOINTS, name, _in(uow))
        # A claim alone stores an owner, no position: no checkpoint yet.
        return None if doc is None or doc["position"] is None else Checkpoint(name=name, **doc)

    async def _store_save(self, save: CheckpointSave, uow: UnitOfWork | None) -> None:
        name, position, expected, owner = save.name, save.position, save.expected, save.owner
        gap_list = save.gaps
        transaction = _in(uow)
        doc = self._db.get(_CHECKPOINTS, name, transaction) or _unsaved(None)
        if owner is not None and doc["owner"] != owner:
            raise checkpoint_conflict(name, expected)
        stored = doc["position"]
        if expected is not None and (0 if stored is None else stored) != expected:
            raise checkpoint_conflict(name, expected)
        saved = {
            **doc,
            "position": position if expected is not None else max(stored or 0, position),
            "gaps": tuple([*doc["gaps"], *gap_list][-KEPT_GAPS:]),
            "updated_at": datetime.now(UTC),
        }
        self._db.put(_CHECKPOINTS, name, saved, transaction)

    async def delete(self, name: str) -> bool:
        name = check_name(name, "subscriber name")
        existed = self._db.get(_CHECKPOINTS, name) is not None
        self._db.delete(_CHECKPOINTS, name)
        self._db.delete(_LEASES, name)
        return existed

    async def all(self) -> list[Checkpoint]:
        docs = self._db.values(_CHECKPOINTS)
        return [
            Checkpoint(name=name, **docs[name])
            for name in sorted(docs)
            if docs[name]["position"] is not None
        ]

    async def claim(
        self,
        name: str,
        owner: str,
        *,
        lease: float,
        session_id: Any = None,
        holder: str = "",
    ) -> LeaseGrant:
        name, owner = check_name(name, "subscriber name"), check_name(owner, "owner")
        seconds = check_lease(lease)
        now = time.monotonic()
        current = self._db.get(_LEASES, name)
        if current is not None and current["owner"] != owner and current["until"] > now:
            return LeaseGrant(False, holder=current["holder"])
        took_over = current is not None and current["owner"] not in (None, owner)
        if took_over and current is not None and current["session"] is not None:
            self._db.end_session(current["session"])
        lease_doc = {
            "owner": owner,
            "until": now + seconds,
            "session": session_id,
            "holder": holder,
        }
        try:
            self._db.put(_LEASES, name, lease_doc)
            checkpoint = self._db.get(_CHECKPOINTS, name) or _unsaved(owner)
            self._db.put(_CHECKPOINTS, name, {**checkpoint, "owner": owner})
        except WriteConflictError:  # a transaction of the owner holds it: try again later
            return LeaseGrant(False, holder=current["holder"] if current else None)
        return LeaseGrant(True, holder=holder, took_over=took_over)

    async def renew(self, name: str, owner: str, *, lease: float) -> bool:
        current = self._db.get(_LEASES, name)
        if current is None or current["owner"] != owner:
            return False
        # A conflict: the owner's own transaction writes it, so it is still the owner's.
        with contextlib.suppress(WriteConflictError):
            self._db.put(_LEASES, name, {**current, "until": time.monotonic() + check_lease(lease)})
        return True

    async def release(self, name: str, owner: str) -> None:
        current = self._db.get(_LEASES, name)
        if current is not None and current["owner"] == owner:
            with contextlib.suppress(WriteConflictError):  # else it expires by itself
                self._db.put(_LEASES, name, {**current, "until": 0.0, "session": None})

    async def holds(self, name: str, owner: str, uow: UnitOfWork) -> bool:
        transaction = _in(uow)
        current = self._db.get(_LEASES, name, transaction)
        if current is None or current["owner"] != owner:
            return False
        self._db.put(_LEASES, name, current, transaction)  # held: a takeover conflicts
        return True


def _unsaved(owner: str | None) -> dict[str, Any]:
    """A checkpoint's record before its first save: an owner, no position."""
    return {"position": None, "updated_at": None, "gaps": (), "owner": owner}


class MemorySnapshotStore:
    """:class:`~eventlab.ports.SnapshotStore` in memory."""

    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    async def get(self, aggregate_id: str, uow: UnitOfWork | None = None) -> Snapshot | None:
        doc = self._db.get(_SNAPSHOTS, check_aggregate_id(aggregate_id), _in(uow))
        if doc is None:
            return None
        return Snapshot(**{**doc, "state": decimals_to_python(doc["state"])})

    async def save(self, snapshot: Snapshot, uow: UnitOfWork | None = None) -> bool:
        if not isinstance(snapshot, Snapshot):
            raise ConfigurationError(f"expected a Snapshot, got {type(snapshot).__name__}")
        state = to_bson_value(snapshot.state, f"snapshot of {snapshot.aggregate_id}")
        encoded_size({"state": state}, f"snapshot of {snapshot.aggregate_id}")
        transaction = _in(uow)
        stored = self._db.get(_SNAPSHOTS, snapshot.aggregate_id, transaction)
        if stored is not None and stored["version"] >= snapshot.version:
            return False
        doc = {
            "aggregate_id": snapshot.aggregate_id,
            "aggregate_type": snapshot.aggregate_type,
            "version": snapshot.version,
            "schema_version": snapshot.schema_version,
            "state": state,
            "taken_at": datetime.now(UTC),
        }
        self._db.put(_SNAPSHOTS, snapshot.aggregate_id, doc, transaction)
        return True

    async def delete(self, aggregate_id: str) -> bool:
        aggregate_id = check_aggregate_id(aggregate_id)
        existed = self._db.get(_SNAPSHOTS, aggregate_id) is not None
        self._db.delete(_SNAPSHOTS, aggregate_id)
        return existed

"""Checkpoints and leases: how far a named consumer has followed the log, and who runs it.

A **lease** names the one process that runs a consumer (a subscriber, a projector) and the
server session its transactions run in. A process that takes an expired lease over ends that
session on the server first (``killSessions``), which aborts a dead predecessor's open
transaction at once instead of after the server's transaction lifetime (about a minute). Then
it writes itself into the checkpoint as its owner: from that moment every checkpoint save of
the predecessor, conditional on the owner, fails, so two live consumers of one name never
both commit a batch (docs/positions.md, "Crash takeover").
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from .._core.bson_values import CODEC_OPTIONS, check_collection_name
from .._core.checkpoint_rules import CheckpointSave, check_lease, checkpoint_conflict
from .._core.checks import check_name
from .._core.race_points import LEASE_EXPIRED_SEEN, LEASE_TAKEN_OVER
from .._core.tasks import within
from .._follow.checkpoint_saves import SavesCheckpoints
from ..ports import KEPT_GAPS, Checkpoint, LeaseGrant, UnitOfWork
from .clock import ServerClock
from .connection import MongoConnectionManager
from .session import session_of
from .transaction_policy import map_error

_EXPIRED = datetime(1970, 1, 1, tzinfo=UTC)
_SAVED: dict[str, Any] = {"position": {"$exists": True}}
"""A checkpoint document a consumer has saved a position in (a claim alone writes none)."""


class MongoCheckpointStore(SavesCheckpoints):
    """Checkpoints in one collection, one document per consumer name; leases in a second.

    :meth:`save` with ``expected`` is conditional on the stored position (and with ``owner``
    on the owner), so two instances of one subscriber can never both advance it: the second
    gets :class:`~eventlab.CheckpointConflictError`. Pass ``uow=`` to commit the checkpoint in
    the same transaction as the handler's writes (exactly-once effect).
    """

    def __init__(self, connection: MongoConnectionManager, collection: str = "checkpoints") -> None:
        self.connection = connection
        self.collection_name = check_collection_name(collection)
        self.leases_name = check_collection_name(f"{self.collection_name}_leases")
        self._clock: ServerClock | None = None

    @property
    def collection(self) -> Any:
        return self.connection.database[self.collection_name]

    @property
    def leases(self) -> Any:
        return self.connection.database[self.leases_name]

    async def _ready(self) -> None:
        await self.connection.connect()  # idempotent

    async def get(self, name: str, uow: UnitOfWork | None = None) -> Checkpoint | None:
        """The stored checkpoint, or ``None`` for a subscriber that never saved one (a lease
        taken without a save is no checkpoint: a position of 0 is one)."""
        name = check_name(name, "subscriber name")
        await self._ready()
        try:
            doc = await self.collection.find_one(_SAVED | {"_id": name}, session=session_of(uow))
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return None if doc is None else _checkpoint(doc)

    async def _store_save(self, save: CheckpointSave, uow: UnitOfWork | None) -> None:
        # Without ``expected`` the position only moves forward: ``$max``.
        name, expected = save.name, save.expected
        update: dict[str, Any] = {"$currentDate": {"updated_at": True}}
        if save.gaps:
            update["$push"] = {"gaps": {"$each": save.gaps, "$slice": -KEPT_GAPS}}
        query: dict[str, Any] = {"_id": name}
        if save.owner is not None:
            query["owner"] = save.owner
        if expected is None:
            update["$max"] = {"position": save.position}
        else:
            # A claimed name has an owner but no position until its first save.
            query["position"] = {"$in": [0, None]} if expected == 0 else expected
            update["$set"] = {"position": save.position}
        upsert = save.owner is None and expected in (None, 0)
        await self._ready()
        try:
            result = await self.collection.update_one(
                query, update, upsert=upsert, session=session_of(uow)
            )
        except DuplicateKeyError:
            # The upsert for "expected 0" found the name stored at another position.
            raise checkpoint_conflict(name, expected) from None
        except PyMongoError as exc:
            raise map_error(exc) from exc
        if result.matched_count == 0 and result.upserted_id is None:
            raise checkpoint_conflict(name, expected)

    async def delete(self, name: str) -> bool:
        """Forget a checkpoint (the subscriber then starts over); whether one existed."""
        name = check_name(name, "subscriber name")
        await self._ready()
        try:
            result = await self.collection.delete_one({"_id": name})
            await self.leases.delete_one({"_id": name})
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return bool(result.deleted_count)

    async def all(self) -> list[Checkpoint]:
        """Every stored checkpoint, by name."""
        await self._ready()
        try:
            docs = await self.collection.find(_SAVED, sort=[("_id", 1)]).to_list(None)
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return [_checkpoint(d) for d in docs]

    # -- leases ------------------------------------------------------------------------------

    async def claim(
        self,
        name: str,
        owner: str,
        *,
        lease: float,
        session_id: Mapping[str, Any] | None = None,
        holder: str = "",
    ) -> LeaseGrant:
        """Take the lease of ``name`` for ``lease`` seconds (server time) if it is free, has
        expired or is already ``owner``'s.

        Taking over another owner's lease ends that owner's server session first (its open
        transaction is aborted and its locks released at once), then makes ``owner`` the
        checkpoint's owner, so the predecessor's conditional saves fail from then on.

        :param session_id: the server session (``session.session_id``) the new owner's
            transactions run in, ended by whoever takes the lease over next.
        """
        name = check_name(name, "subscriber name")
        owner = check_name(owner, "owner")
        lease_ms = _lease_ms(lease)
        await self._ready()
        try:
            now = await self._server_clock().now()
            try:
                before = await self.leases.find_one_and_update(
                    {"_id": name, "$or": [{"until": {"$lte": now}}, {"owner": owner}]},
                    [
                        {
                            "$set": {
                                "owner": owner,
                                "holder": holder,
                                "session": session_id,
                                "until": {"$add": ["$$NOW", lease_ms]},
                            }
                        }
                    ],
                    upsert=True,
                    return_document=ReturnDocument.BEFORE,
                )
            except DuplicateKeyError:  # held by another live owner
                held = await self.leases.find_one({"_id": name}, {"holder": 1})
                return LeaseGrant(False, holder=(held or {}).get("holder"))
            took_over = before is not None and before.get("owner") not in (None, owner)
            if took_over and LEASE_EXPIRED_SEEN.armed:
                await LEASE_EXPIRED_SEEN.reach()
            if took_over and before is not None and before.get("session"):
                await self._end_session(before["session"])
            # The owner only: a position is stored by the consumer's first save, so that a
            # checkpoint at 0 and no checkpoint stay two different things.
            await self.collection.update_one({"_id": name}, {"$set": {"owner": owner}}, upsert=True)
            if took_over and LEASE_TAKEN_OVER.armed:
                await LEASE_TAKEN_OVER.reach()
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return LeaseGrant(True, holder=holder, took_over=took_over)

    async def renew(self, name: str, owner: str, *, lease: float) -> bool:
        """Extend ``owner``'s lease by ``lease`` seconds from the server's now; ``False`` when
        it is no longer ``owner``'s."""
        try:
            result = await self.leases.update_one(
                {"_id": name, "owner": owner},
                [{"$set": {"until": {"$add": ["$$NOW", _lease_ms(lease)]}}}],
            )
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return bool(result.matched_count)

    async def release(self, name: str, owner: str) -> None:
        """Give the lease up now (a stopping consumer): a standby takes over at once."""
        with contextlib.suppress(PyMongoError):
            await self.leases.update_one(
                {"_id": name, "owner": owner}, {"$set": {"until": _EXPIRED, "session": None}}
            )

    async def holds(self, name: str, owner: str, uow: UnitOfWork) -> bool:
        """Whether ``owner`` holds the lease of ``name``, written in ``uow``'s transaction: a
        takeover (which writes the lease too) and that transaction cannot both commit."""
        try:
            held = await self.leases.update_one(
                {"_id": name, "owner": owner}, {"$inc": {"writes": 1}}, session=uow.session
            )
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return bool(held.matched_count)

    async def _end_session(self, session_id: Mapping[str, Any]) -> None:
        # Best effort: a server without killSessions, or a session already gone, leaves the
        # transaction to the server's lifetime limit (the takeover then waits for it).
        with contextlib.suppress(PyMongoError, TimeoutError):
            await within(
                self.connection.client.admin.command(
                    "killSessions", [session_id], codec_options=CODEC_OPTIONS
                ),
                5,
            )

    def _server_clock(self) -> ServerClock:
        if self._clock is None:
            self._clock = ServerClock(self.connection.database)
        return self._clock


def _checkpoint(doc: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        name=doc["_id"],
        position=int(doc.get("position", 0)),
        updated_at=doc.get("updated_at"),
        gaps=tuple(doc.get("gaps") or ()),
        owner=doc.get("owner"),
    )


def _lease_ms(lease: float) -> int:
    return max(1, int(check_lease(lease) * 1000))

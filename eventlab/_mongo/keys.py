"""Subjects' data keys in a MongoDB collection (the :class:`~eventlab.KeyStore` port).

One document per subject: ``{_id: subject, data_key: <32 bytes>, created_at}`` while the subject's
data is readable, ``{_id: subject, destroyed_at}`` (the key's bytes gone) once forgotten.
Creating a key is one upsert on ``_id`` with ``$setOnInsert``: concurrent appends for a new
subject all read back the one key that won, and an upsert for a forgotten subject finds the
tombstone and writes nothing. Writes are acknowledged by a majority, reads read majority-
committed documents: a key a reader was given cannot be lost in a failover, and a destroyed
key is never read back from a lagging node's majority view.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import bson
from bson.binary import Binary
from pymongo import ReturnDocument
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from .._core.bson_values import check_collection_name
from .._core.domain import utc_now
from .._core.errors import ConfigurationError, SubjectForgottenError, TransientError
from .._core.personal import check_subject
from .._core.sealing import DataKey, new_key_material
from .connection import MongoConnectionManager
from .lookups import find_in
from .transaction_policy import is_duplicate_key, map_error

MAX_SUBJECTS_PER_GET = 10_000
FIELD = "data_key"
"""The field holding a key's bytes (a name the command-log filter below looks for)."""


class _HideDataKeys(logging.Filter):
    """Blanks the command and reply documents of PyMongo's command log (``pymongo.command``,
    at DEBUG) that carry a data key, as PyMongo itself blanks authentication commands: a key
    must never reach a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record.msg, "_kwargs", None)
        if isinstance(fields, dict):
            for name in ("command", "reply"):
                if _carries_a_key(fields.get(name)):
                    fields[name] = {}
        return True


def _carries_a_key(document: Any) -> bool:
    if document is None or isinstance(document, str):
        return False
    try:
        raw = document.raw if hasattr(document, "raw") else bson.encode(document)
    except Exception:  # not a document: a log line must never fail, nor be dropped
        return False
    return FIELD.encode() + b"\x00" in raw


_COMMAND_LOG = logging.getLogger("pymongo.command")
if not any(isinstance(f, _HideDataKeys) for f in _COMMAND_LOG.filters):
    _COMMAND_LOG.addFilter(_HideDataKeys())


class MongoKeyStore:
    """Subjects' data keys in the collection ``collection`` of the connection's database.

    Keep it where its backups are not the events' backups if you can (another database, or
    a KMS behind the :class:`~eventlab.KeyStore` port): a backup holding both the events and
    the keys brings forgotten data back when it is restored (docs/forgetting.md).
    """

    def __init__(self, connection: MongoConnectionManager, collection: str = "personal_keys"):
        if not isinstance(connection, MongoConnectionManager):
            raise ConfigurationError(
                f"connection must be a MongoConnectionManager, got {type(connection).__name__}"
            )
        self.connection = connection
        self.collection_name = check_collection_name(collection)

    def __repr__(self) -> str:
        return f"<MongoKeyStore {self.collection_name!r}>"

    @property
    def collection(self) -> Any:
        return self.connection.database[self.collection_name].with_options(
            write_concern=WriteConcern("majority"), read_concern=ReadConcern("majority")
        )

    async def get_or_create(self, subject: str) -> DataKey:
        subject = check_subject(subject)
        await self.connection.connect()
        for _ in range(3):
            try:
                doc = await self.collection.find_one_and_update(
                    {"_id": subject},
                    {"$setOnInsert": {FIELD: Binary(new_key_material()), "created_at": utc_now()}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except PyMongoError as exc:
                # Two upserts of one new _id: the loser may see the winner's duplicate key;
                # the document is there now, so going again reads it.
                if is_duplicate_key(exc):
                    continue
                raise map_error(exc) from exc
            if doc is None:
                # A server may answer a racing upsert with no document (the embedded one
                # does): the winner's document is there now, so read it.
                doc = await self._find(subject)
            if doc is not None:
                return _key_of(subject, doc)
        raise TransientError(f"the key of subject {subject[:80]!r} kept colliding; try again")

    async def _find(self, subject: str) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] | None = await self.collection.find_one({"_id": subject})
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return doc

    async def get(self, subjects: Sequence[str]) -> dict[str, DataKey]:
        if isinstance(subjects, str) or not isinstance(subjects, Sequence):
            raise ConfigurationError(f"subjects must be a list of str, got {subjects!r:.80}")
        if len(subjects) > MAX_SUBJECTS_PER_GET:
            raise ConfigurationError(f"at most {MAX_SUBJECTS_PER_GET:,} subjects per get")
        wanted = [check_subject(s) for s in subjects]
        if not wanted:
            return {}
        await self.connection.connect()
        try:
            docs = await find_in(self.collection, "_id", wanted, where={FIELD: {"$exists": True}})
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return {doc["_id"]: _key_of(doc["_id"], doc) for doc in docs}

    async def forgotten(self, subjects: Sequence[str]) -> set[str]:
        """Those of ``subjects`` whose key was destroyed (a tombstone): told apart from a
        subject this collection has never seen, whose key may live in another."""
        if isinstance(subjects, str) or not isinstance(subjects, Sequence):
            raise ConfigurationError(f"subjects must be a list of str, got {subjects!r:.80}")
        wanted = [check_subject(s) for s in subjects]
        if len(wanted) > MAX_SUBJECTS_PER_GET:
            raise ConfigurationError(f"at most {MAX_SUBJECTS_PER_GET:,} subjects per call")
        await self.connection.connect()
        try:
            docs = await find_in(
                self.collection,
                "_id",
                wanted,
                where={"destroyed_at": {"$exists": True}},
                projection={"_id": 1},
            )
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return {doc["_id"] for doc in docs}

    async def destroy(self, subject: str) -> bool:
        subject = check_subject(subject)
        await self.connection.connect()
        try:
            before = await self.collection.find_one_and_update(
                {"_id": subject},
                {"$unset": {FIELD: "", "created_at": ""}, "$set": {"destroyed_at": utc_now()}},
                upsert=True,
                return_document=ReturnDocument.BEFORE,
            )
        except PyMongoError as exc:
            if is_duplicate_key(exc):  # a concurrent create won the insert: destroy it now
                return await self.destroy(subject)
            raise map_error(exc) from exc
        return before is not None and FIELD in before


def _key_of(subject: str, doc: dict[str, Any]) -> DataKey:
    material = doc.get(FIELD)
    if material is None:
        raise SubjectForgottenError(subject)
    return DataKey(subject, bytes(material))

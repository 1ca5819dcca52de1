"""The deployment ``eventlab check`` runs against, and the scratch database it writes in:
reached quickly or not at all, a database that did not exist before, written only there and
dropped after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymongo.errors import OperationFailure, PyMongoError

from .._core.bson_values import check_database_name
from .._core.errors import InternalSignal
from .._core.uris import scrub, uri_options
from .._mongo.connection import MongoConnectionManager

SERVER_SELECTION_TIMEOUT = 3.0
"""Seconds to find a server when the URI sets no ``serverSelectionTimeoutMS``: an unreachable
deployment is reported at once, not after the driver's 30 s."""
UNAUTHORIZED = 13


SYSTEM_DATABASES = frozenset({"admin", "config", "local"})
"""MongoDB's own databases: never a scratch database, even where one does not exist yet."""


class CheckRefused(InternalSignal):
    """The check cannot run against this deployment (one line says why; nothing was written).
    Caught by the command, never raised to a caller: off the public hierarchy."""


def scratch_name(given: str | None) -> str:
    """The scratch database: the one given (checked), else a fresh ``eventlab_check_<hex>``."""
    if given is None:
        return f"eventlab_check_{uuid.uuid4().hex[:12]}"
    name = check_database_name(given)
    if name.lower() in SYSTEM_DATABASES:
        raise CheckRefused(f"{name} is a system database of MongoDB, never a scratch database")
    return name


@asynccontextmanager
async def connected(uri: str, database: str) -> AsyncIterator[MongoConnectionManager]:
    """A connection to ``uri`` whose database is the scratch one (the URI's own database is
    never used: nothing is written there)."""
    timeout = None if "serverselectiontimeoutms" in uri_options(uri) else SERVER_SELECTION_TIMEOUT
    async with MongoConnectionManager(
        uri, database=database, server_selection_timeout=timeout
    ) as conn:
        yield conn


def reason(exc: BaseException, uri: str) -> str:
    """An error's first line (a server error's own message, not the driver's dump of the
    whole reply), any secret of ``uri`` masked."""
    details = exc.details if isinstance(exc, OperationFailure) else None
    if isinstance(exc, OperationFailure) and isinstance(details, dict) and details.get("errmsg"):
        text = f"{details['errmsg']} (code {exc.code})"
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return scrub(text, uri)[:300]


async def claim_scratch(conn: MongoConnectionManager, uri: str) -> None:
    """Make sure the scratch database did not exist and that this user may write it; refuse
    with one line otherwise (nothing written)."""
    name = conn.database_name
    if not conn.info.supports_transactions:
        raise CheckRefused(
            f"{conn.display_uri} is a {conn.info.kind} server: eventlab needs transactions, "
            "which need a replica set or a sharded cluster"
        )
    try:
        existing = await conn.database.list_collection_names()
    except OperationFailure as exc:
        raise CheckRefused(_not_allowed(name, "read", exc, uri)) from None
    except PyMongoError as exc:
        raise CheckRefused(f"cannot read database {name!r}: {reason(exc, uri)}") from None
    if existing:
        raise CheckRefused(
            f"database {name!r} exists and holds {len(existing)} collection(s): eventlab check "
            "writes only to a database it creates, and drops it after; name another one"
        )
    try:
        await conn.database["eventlab_check"].insert_one({"_id": "claimed"})
    except OperationFailure as exc:
        raise CheckRefused(_not_allowed(name, "write", exc, uri)) from None


def _not_allowed(name: str, what: str, exc: OperationFailure, uri: str) -> str:
    if exc.code == UNAUTHORIZED:
        return (
            f"this user may not {what} database {name!r} ({reason(exc, uri)}): eventlab check "
            "needs a user with readWrite on a database it creates and drops (name one with "
            "--database)"
        )
    return f"cannot {what} database {name!r}: {reason(exc, uri)}"


async def drop_scratch(conn: MongoConnectionManager) -> None:
    await conn.client.drop_database(conn.database_name)

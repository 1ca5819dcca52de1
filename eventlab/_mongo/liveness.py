"""Crashed writers: a dead client's open transaction holds up no one for long.

On MongoDB a transaction belongs to a server session, not to a connection: a client killed in
the middle of one leaves it open, with its locks and its inserts, until the server's
transaction lifetime ends (``transactionLifetimeLimitSeconds``, 60 s by default). With
``transactional`` positions it holds the position counter and every append waits; with
``preallocated`` positions it holds a position and every follower waits. eventlab bounds that
with a lease per process (docs/positions.md, "A writer killed mid-transaction"):

* **One registry document per process** and connection, in ``eventlab_processes`` of the
  connection's database: host, pid, ``lease_until`` by the server's clock, and the server
  sessions (lsids) its transactions run in. A session is listed before its first transaction
  and the listing is acknowledged before the transaction can take a lock; the driver pools
  and reuses server sessions, so this is one write per server session, not per transaction.
* **One heartbeat per process** (``_heartbeat.py``): a daemon thread with its own synchronous
  client renews every lease of the process every ``lease / 6`` seconds. A blocked event loop
  or CPU-bound code does not stop it; only a process that is gone (or frozen) stops renewing.
* **Whoever is blocked asks for the dead to be reaped** (:func:`blocked`): a transaction whose
  transient failures (write conflicts) have lasted :data:`BLOCKED_AFTER` seconds, a follower
  that finds an open transaction holding a hole past its ``gap_timeout``. The heartbeat thread
  then takes the documents of processes whose lease has expired by the server's clock (one
  reaper wins each) and ends their sessions with ``killSessions``: their open transactions
  abort at once, exactly as if they had aborted themselves. A live process renews its lease
  whatever its transactions do, so a slow unit of work is never ended.

Where the deployment refuses (no privilege to write the registry, no ``killSessions``), one
warning is logged, :attr:`ProcessRegistry.refused` says why (``connection.liveness``), and the
server's transaction lifetime bounds a crash's stall, as it does without eventlab.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from typing import Any

import pymongo
from bson import Binary
from pymongo.errors import OperationFailure

from .._core.errors import first_line
from . import process_registry as state
from .heartbeat import heartbeat
from .process_registry import COLLECTION, REFUSED_CODES, Listing, Liveness, ProcessRegistry

BLOCKED_AFTER = 1.0
"""Seconds a transaction keeps failing transiently before it asks for dead processes to be
reaped (ordinary contention resolves well within it)."""

_BY_CLIENT: dict[int, tuple[weakref.ref[Any], list[ProcessRegistry]]] = {}
_BY_CLIENT_LOCK = threading.Lock()


def _watch(registry: ProcessRegistry, wake: bool) -> None:
    heartbeat().watch(registry, wake=wake)


def attach(client: Any, database: str, lease: float) -> ProcessRegistry:
    """A registry for ``client``'s transactions in ``database`` (one per connection). Nothing
    is written until the first transaction."""
    registry = ProcessRegistry(client, database, lease, _watch)
    with _BY_CLIENT_LOCK:
        entry = _BY_CLIENT.get(id(client))
        if entry is None or entry[0]() is not client:
            entry = (weakref.ref(client), [])
            _BY_CLIENT[id(client)] = entry
        entry[1].append(registry)
    return registry


def detach(registry: ProcessRegistry) -> None:
    """Stop listing and renewing; the heartbeat thread removes the document (a clean exit is
    not a crash) and closes its client."""
    registry.closed = True
    client = registry.client_ref()
    with _BY_CLIENT_LOCK:
        entry = _BY_CLIENT.get(id(client)) if client is not None else None
        if entry is not None:
            if registry in entry[1]:
                entry[1].remove(registry)
            if not entry[1]:
                del _BY_CLIENT[id(client)]
    heartbeat().wake()


def registries_of(client: Any) -> list[ProcessRegistry]:
    """The registries ``client``'s transactions are listed in (usually one)."""
    entry = _BY_CLIENT.get(id(client))
    if entry is None or entry[0]() is not client:
        return []
    return list(entry[1])


def listing(session: Any) -> Listing | None:
    """The next write that lists ``session`` before its transaction, or ``None``: nothing to
    write (listed everywhere already, no registry for its client, or liveness off). No I/O:
    the caller writes with its own client, so that the same code serves both APIs."""
    if not state.ENABLED:
        return None
    for registry in registries_of(session.client):
        found = registry.listing(session)
        if found is not None:
            return found
    return None


def blocked(client: Any) -> None:
    """Something of ``client``'s has been held up by another transaction for a while: have
    processes whose lease has expired reaped (in the background, rate-limited; no I/O here)."""
    if state.ENABLED:
        for registry in registries_of(client):
            registry.want_reap()


class Stuck:
    """A transaction's run of transient failures: once it has lasted :data:`BLOCKED_AFTER`
    seconds, each further failure asks for dead processes to be reaped."""

    __slots__ = ("_client", "_since")

    def __init__(self, client: Any) -> None:
        self._client = client
        self._since: float | None = None

    def failed(self) -> None:
        now = time.monotonic()
        if self._since is None:
            self._since = now
        elif now - self._since >= BLOCKED_AFTER:
            blocked(self._client)


async def probe(client: Any, registry: ProcessRegistry) -> Liveness:
    """Ask the deployment now whether it lets this process list itself and end sessions (a
    ``killSessions`` of an lsid nobody uses, a probe document written and removed); a refusal
    turns the registry off with its one warning. Other failures (an unreachable server) raise
    the driver's error."""
    if registry.refused:
        return registry.status
    nobody = {"id": Binary(uuid.uuid4().bytes, 4)}
    probes = client.get_database(registry.database).get_collection(COLLECTION)
    probe_id = f"probe-{registry.token}"
    try:
        with pymongo.timeout(registry.lease):
            await client.admin.command("killSessions", [nobody])
            await probes.update_one({"_id": probe_id}, {"$set": {"probe": True}}, upsert=True)
            await probes.delete_one({"_id": probe_id})
    except OperationFailure as exc:
        if exc.code not in REFUSED_CODES:
            raise
        registry.refuse(f"the deployment refuses what it needs ({first_line(exc)})")
    return registry.status

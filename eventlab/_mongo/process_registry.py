"""This process's entry in the registry of crashed-writer recovery (see ``_liveness.py``):
the state both sides share, with no I/O of its own. The caller's side lists sessions through
:meth:`ProcessRegistry.listing` (written with its own client, async or sync); the heartbeat
thread (``_heartbeat.py``) renews the lease and reaps."""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bson import Binary
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from .._core.errors import ConfigurationError, first_line

logger = logging.getLogger("eventlab.liveness")

ENABLED = True
"""Switch for benchmarks (liveness on vs off in one run): False lists nothing and reaps
nothing. Applications turn it off per connection with ``process_lease=None``."""

COLLECTION = "eventlab_processes"
"""The registry's collection, in the connection's database."""
DEFAULT_PROCESS_LEASE = 3.0
"""Seconds a process's lease lasts after each renewal (see docs/positions.md for the choice)."""
MIN_PROCESS_LEASE = 1.0
MAX_PROCESS_LEASE = 3600.0
RENEWALS_PER_LEASE = 6
"""A lease is renewed this many times per lease period: five renewals in a row must fail
before a live process can be presumed dead."""
MAX_LISTED = 1000
"""Server sessions listed per process at most; the oldest listing is dropped past it (and
listed again when its session runs another transaction)."""
REFUSED_CODES = frozenset({13, 59, 115, 121, 166, 8000})
"""Unauthorized, CommandNotFound, CommandNotSupported, DocumentValidationFailure (a validator
on the collection), CommandNotSupportedOnView (the name is a view), Atlas's "not allowed": the
deployment refuses the registry, not a passing failure."""

REFUSALS_TO_GIVE_UP = 3
"""Listings in a row the server answered with an error (not a network failure): the registry
cannot be written here, whatever the code says, and recovery is turned off with its warning
rather than claimed while nothing is listed."""

REAPER_FIELD = "reaped_by"
"""Set on a dead process's entry by the reaper that ends its sessions, before it ends them: the
entry is deleted only after ``killSessions`` succeeded, so a reaper that dies in between leaves
it for the next one; the process itself, if it was only frozen, sees the mark and knows its
sessions were ended."""

_MAJORITY = WriteConcern("majority")


def check_lease(lease: Any) -> float | None:
    """``process_lease`` as given to a connection: seconds, or ``None`` (off)."""
    if lease is None:
        return None
    if (
        isinstance(lease, bool)
        or not isinstance(lease, int | float)
        or not math.isfinite(lease)
        or not MIN_PROCESS_LEASE <= lease <= MAX_PROCESS_LEASE
    ):
        raise ConfigurationError(
            f"process_lease must be a number of seconds from {MIN_PROCESS_LEASE:g} to "
            f"{MAX_PROCESS_LEASE:g}, or None to turn crash recovery off; got {lease!r:.60}"
        )
    return float(lease)


@dataclass(frozen=True, slots=True)
class Liveness:
    """Whether a crashed process's open transactions are ended for this connection
    (``connection.liveness``)."""

    active: bool
    """Listed sessions, a heartbeat, and reaping when blocked."""
    lease: float | None
    """Seconds a process's lease lasts (``None``: turned off)."""
    reason: str = ""
    """Why it is not active: turned off, no transactions here, or what the deployment refused."""


@dataclass(slots=True)
class HeartbeatCounters:
    """What the heartbeat did for one registry (for tests, benchmarks and diagnostics)."""

    renewals: int = 0
    renewing_seconds: float = 0.0
    """Time spent in renewals (round trips included)."""
    longest_gap: float = 0.0
    """The longest time between two successful renewals (seconds): how close this process
    came to being presumed dead (a lease lapses when it exceeds the lease)."""
    reap_rounds: int = 0
    """Times it looked for dead processes."""
    reaped: int = 0
    """Processes whose sessions it ended."""


class ProcessRegistry:
    """This process's entry in the registry of one database, and what it has listed there.

    The event loop (or a sync caller's thread) lists sessions through :meth:`listing`; the
    heartbeat thread renews the lease and reaps. A lock guards what both touch.
    """

    def __init__(
        self,
        client: Any,
        database: str,
        lease: float,
        watch: Callable[[ProcessRegistry, bool], None],
    ) -> None:
        """:param watch: hands the registry to the heartbeat (``True``: wake it now)."""
        self.database = database
        self.lease = lease
        self.client_ref = weakref.ref(client)
        self._watch = watch
        self.refused = ""
        self.closed = False
        self.counters = HeartbeatCounters()
        self.reap_wanted = threading.Event()
        self._lock = threading.Lock()
        self._lapse_reported = False
        self.refusals = 0
        self._new_identity()

    def _new_identity(self) -> None:
        self.token = uuid.uuid4().hex
        self.pid = os.getpid()
        self.created = False
        self._listed: OrderedDict[bytes, dict[str, Any]] = OrderedDict()

    def __repr__(self) -> str:
        state = "refused" if self.refused else ("closed" if self.closed else "active")
        return f"<ProcessRegistry {self.database}.{COLLECTION} {self.token[:8]} {state}>"

    @property
    def status(self) -> Liveness:
        if self.refused:
            return Liveness(False, self.lease, self.refused)
        if not ENABLED:
            return Liveness(
                False, self.lease, "switched off (eventlab._mongo.process_registry.ENABLED)"
            )
        return Liveness(True, self.lease)

    # -- listing sessions (caller's side) --------------------------------------------------------

    def listing(self, session: Any) -> Listing | None:
        """What to write before ``session``'s transaction, or ``None`` when it is listed."""
        if self.refused or self.closed or not ENABLED:
            return None
        if self.pid != os.getpid():  # a forked child is a process of its own
            self._new_identity()
        lsid = session.session_id
        key = bytes(lsid["id"])
        with self._lock:
            if key in self._listed:
                return None
            self._listed[key] = dict(lsid)
            if len(self._listed) > MAX_LISTED:  # the document's $slice drops the same one
                self._listed.popitem(last=False)
            return Listing(self, key, dict(lsid), create=not self.created)

    def listed(self) -> list[dict[str, Any]]:
        """Every session listed (for a document written whole)."""
        with self._lock:
            return list(self._listed.values())

    def unlist(self, key: bytes) -> None:
        with self._lock:
            self._listed.pop(key, None)

    def document(self) -> list[dict[str, Any]]:
        """The update that creates this process's document (or adds to one written
        concurrently): every listed session, the lease from the server's now."""
        return [
            # Written again after a lapse onto an entry a reaper marked: not marked any more
            # (the reaper's delete then spares it: this process is alive).
            {"$unset": [REAPER_FIELD]},
            {
                "$set": {
                    "host": socket.gethostname(),
                    "pid": self.pid,
                    "lease_seconds": self.lease,
                    "lease_until": {"$add": ["$$NOW", int(self.lease * 1000)]},
                    "sessions": {
                        "$concatArrays": [
                            {"$ifNull": ["$sessions", []]},
                            {"$literal": self.listed()},
                        ]
                    },
                }
            },
        ]

    def lapsed(self) -> None:
        """Our document was gone: another process presumed this one dead (no renewal for a
        whole lease) and ended its sessions, or the collection was dropped. It is written
        again with every listed session."""
        self.created = False
        if not self._lapse_reported and not self.closed:
            self._lapse_reported = True
            logger.warning(
                "eventlab: this process's entry in %s.%s was gone: its lease lapsed (no "
                "renewal for %g s: a frozen process, or a server it could not reach) and "
                "another process ended its sessions, or the collection was dropped. A "
                "transaction it had open then may have been ended and fails as aborted "
                "(retried where eventlab runs it). Listed again.",
                self.database,
                COLLECTION,
                self.lease,
            )

    def refuse(self, reason: str) -> None:
        """Stop listing and reaping for good, saying why once."""
        if self.refused:
            return
        self.refused = reason
        logger.warning(
            "eventlab: crash recovery is off for database %r: %s. A process killed inside a "
            "transaction now holds it open until the server's transactionLifetimeLimitSeconds "
            "(60 s by default) ends it: appends wait behind it (transactional positions) or "
            "followers do (preallocated). See docs/scaling.md, 'A writer killed "
            "mid-transaction'.",
            self.database,
            reason,
        )

    # -- asking for the dead to be reaped --------------------------------------------------------

    def want_reap(self) -> None:
        if self.refused or self.closed or not ENABLED:
            return
        self.reap_wanted.set()
        self._watch(self, True)

    def activate(self) -> None:
        """The document exists: renew its lease from now on."""
        self.created = True
        self._watch(self, False)


@dataclass(slots=True)
class Listing:
    """One write to make before a transaction starts: the session's lsid into this process's
    document (created with it when it does not exist yet)."""

    registry: ProcessRegistry
    key: bytes
    lsid: dict[str, Any]
    create: bool

    def collection(self, client: Any) -> Any:
        """The registry collection through the caller's own client (async or sync)."""
        return client.get_database(self.registry.database).get_collection(
            COLLECTION, write_concern=_MAJORITY
        )

    @property
    def filter(self) -> dict[str, Any]:
        if self.create:
            return {"_id": self.registry.token}
        # Not onto an entry a reaper has marked: its sessions are being ended, and it is
        # deleted once they are; a session added there would be forgotten with it.
        return {"_id": self.registry.token, REAPER_FIELD: {"$exists": False}}

    @property
    def update(self) -> Any:
        if self.create:
            return self.registry.document()
        return {"$push": {"sessions": {"$each": [self.lsid], "$slice": -MAX_LISTED}}}

    def written(self, result: Any) -> None:
        """The write was acknowledged (``result``: the driver's ``UpdateResult``). A session
        added to a document that was found gone is listed again, with a new document."""
        registry = self.registry
        registry.refusals = 0
        if self.create or result.matched_count:
            registry.activate()
        else:
            registry.lapsed()
            registry.unlist(self.key)

    def failed(self, exc: BaseException) -> None:
        """The write failed (or was cancelled): the transaction runs unlisted this once (a
        crash inside it waits for the server's lifetime), or, refused by the deployment, from
        now on."""
        registry = self.registry
        registry.unlist(self.key)
        if isinstance(exc, OperationFailure):
            registry.refusals += 1
        if isinstance(exc, OperationFailure) and (
            exc.code in REFUSED_CODES or registry.refusals >= REFUSALS_TO_GIVE_UP
        ):
            registry.refuse(
                f"the registry {registry.database}.{COLLECTION} cannot be written "
                f"({first_line(exc)})"
            )
        elif isinstance(exc, PyMongoError):
            logger.debug(
                "listing a session failed (%s); its transaction runs unlisted", type(exc).__name__
            )


def session_ids(documents: Any) -> list[Mapping[str, Any]]:
    """The lsids of a stored registry document, each checked to be one. The caller must not
    send an empty list: ``killSessions`` with no lsid at all ends *every* session of the
    user."""
    if not isinstance(documents, list):
        return []
    return [
        d
        for d in documents
        if isinstance(d, Mapping) and set(d) == {"id"} and isinstance(d["id"], uuid.UUID | Binary)
    ]

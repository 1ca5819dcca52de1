"""The heartbeat: one daemon thread per process that renews its leases and reaps the dead.

A thread with its own synchronous client, not a task on the event loop: a loop blocked by
CPU-bound code (a notebook cell, a handler that computes) or by a slow synchronous call would
stop a task's renewals, and the process, alive, would be presumed dead and its open
transactions ended. The thread needs the GIL for about a millisecond per renewal, which CPython
hands over every 5 ms whatever the other threads do.

For each registry of the process (``ProcessRegistry``), the thread:

* renews its lease every ``lease / 6`` seconds, once the process has listed a session;
* when asked (someone of this process is blocked), at most every :data:`REAP_EVERY` seconds,
  reads the server's clock and takes the documents of processes whose lease has expired by it,
  each with a delete conditional on the lease it read (one reaper wins; a renewal in between
  saves the process), and ends their sessions with ``killSessions``. A lease counts as expired
  only once the reaper has seen it unchanged for two renewal intervals of prompt answers from
  the server: a server that stalled, and so stalled everyone's renewals, makes no live process
  look dead, as its first answers after the stall start the observation afresh. A find and a
  delete, not a ``findAndModify``: a fail point a test arms on the counter's
  ``findAndModify`` stays the application's;
* on its first turn, checks that the deployment has ``killSessions`` (with an lsid nobody
  uses), so that a refusal is said once at start-up, not at the first crash.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
from bson import Binary
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from .._core.errors import first_line
from .._core.uris import scrub
from . import process_registry as state
from .process_registry import (
    COLLECTION,
    REAPER_FIELD,
    REFUSED_CODES,
    RENEWALS_PER_LEASE,
    ProcessRegistry,
    session_ids,
)

logger = logging.getLogger("eventlab.liveness")

REAP_EVERY = 0.25
"""Seconds between two reaps of one registry, however often blocked parties ask."""
SLOW_SERVER = 0.5
"""A server whose ``hello`` takes longer than this is not asked to judge leases (seconds)."""
_IDLE_WAIT = 5.0
_APP_NAME = "eventlab-heartbeat"


class _Beat:
    """The thread's side of one registry: its client and its timings."""

    def __init__(self, registry: ProcessRegistry) -> None:
        self.registry = registry
        self.client: MongoClient[dict[str, Any]] | None = None
        self.next_renewal = 0.0
        self.last_renewed: float | None = None
        self.last_reap = -REAP_EVERY
        self.probed = False
        self.next_probe = 0.0
        self.last_look: float | None = None
        self.first_seen: dict[Any, tuple[Any, float]] = {}
        """Each other process's lease as last seen, and since when it has been seen so."""
        self.user: str | None = None

    @property
    def interval(self) -> float:
        return self.registry.lease / RENEWALS_PER_LEASE

    def due_in(self, now: float) -> float:
        """Seconds until this beat has something to do."""
        registry = self.registry
        if registry.closed or registry.refused:
            return 0.0
        waits = [_IDLE_WAIT]
        if not self.probed:
            waits.append(self.next_probe - now)
        if not state.ENABLED:  # switched off: nothing due, but look again soon (no busy loop)
            return max(0.0, min([*waits, self.interval]))
        if registry.created:
            waits.append(self.next_renewal - now)
        if registry.reap_wanted.is_set():
            waits.append(self.last_reap + REAP_EVERY - now)
        return max(0.0, min(waits))

    def step(self, now: float) -> bool:
        """Do what is due; ``False`` once the registry is closed and cleaned up."""
        registry = self.registry
        if registry.client_ref() is None:  # its connection was dropped without disconnecting
            registry.closed = True
        if registry.closed or registry.refused:
            self.close()
            return False
        if not self.probed and now >= self.next_probe:
            self.probed = True
            self.next_probe = now + self.interval
            self._probe()
        if not state.ENABLED:
            return True
        if registry.created and now >= self.next_renewal:
            self.next_renewal = now + self.interval
            self._renew()
        if registry.reap_wanted.is_set() and now - self.last_reap >= REAP_EVERY:
            registry.reap_wanted.clear()
            self.last_reap = now
            self._reap()
        return True

    # -- the client -------------------------------------------------------------------------------

    def _client(self) -> MongoClient[dict[str, Any]]:
        if self.client is None:
            self.client = heartbeat_client(self.registry.client_ref())
        return self.client

    def safe(self, exc: BaseException) -> str:
        """An error's first line with the secrets of the connection's URI masked."""
        owner = self.registry.client_ref()
        host = (getattr(owner, "_init_kwargs", None) or {}).get("host")
        return scrub(first_line(exc), host if isinstance(host, str) else None)

    def _collection(self) -> Any:
        return self._client()[self.registry.database][COLLECTION]

    def close(self) -> None:
        """Remove the document of a registry closed cleanly (a clean exit is not a crash),
        and close the client."""
        registry = self.registry
        if registry.created and registry.pid == os.getpid():
            with contextlib.suppress(PyMongoError, RuntimeError), pymongo.timeout(self.interval):
                self._collection().delete_one({"_id": registry.token})
        client, self.client = self.client, None
        if client is not None:
            client.close()

    # -- the three duties ----------------------------------------------------------------------

    def _probe(self) -> None:
        nobody = {"id": Binary(uuid.uuid4().bytes, 4)}
        try:
            with pymongo.timeout(self.registry.lease):
                self._client().admin.command("killSessions", [nobody])
                status = self._client().admin.command("connectionStatus")
        except OperationFailure as exc:
            if exc.code in REFUSED_CODES:
                self.registry.refuse(f"the deployment refuses killSessions ({first_line(exc)})")
            return
        except PyMongoError as exc:
            self.probed = False  # unreachable for now: probe again next turn
            logger.debug("liveness probe failed (%s)", self.safe(exc))
            return
        users = status.get("authInfo", {}).get("authenticatedUsers") or []
        self.user = ",".join(f"{u.get('user')}@{u.get('db')}" for u in users) or None

    def _renew(self) -> None:
        registry = self.registry
        lease_ms = int(registry.lease * 1000)
        started = time.monotonic()
        try:
            with pymongo.timeout(self.interval):
                renewed = self._collection().update_one(
                    {"_id": registry.token, REAPER_FIELD: {"$exists": False}},
                    [{"$set": {"lease_until": {"$add": ["$$NOW", lease_ms]}, "user": self.user}}],
                )
                if renewed.matched_count == 0 and not registry.closed:
                    # Gone, or marked by a reaper that is ending our sessions: written anew.
                    registry.lapsed()
                    self._collection().update_one(
                        {"_id": registry.token}, registry.document(), upsert=True
                    )
                    registry.created = True
        except PyMongoError as exc:
            logger.debug("lease renewal failed (%s); retrying", self.safe(exc))
            return
        done = time.monotonic()
        counters = registry.counters
        counters.renewals += 1
        counters.renewing_seconds += done - started
        if self.last_renewed is not None:
            counters.longest_gap = max(counters.longest_gap, done - self.last_renewed)
        self.last_renewed = done

    def _reap(self) -> None:
        registry = self.registry
        try:
            with pymongo.timeout(registry.lease / 2):
                look = self._look()
                if look is None:
                    return
                now, others = look
                registry.counters.reap_rounds += 1
                for found in others:
                    if not self._dead(found, now):
                        continue
                    # Ours to reap only if its lease is still the one judged: a renewal in
                    # between saves a process. Marked first, deleted only once its sessions
                    # are ended: a reaper that dies in between leaves it to the next one
                    # (ending sessions twice is harmless).
                    marked = self._collection().update_one(
                        {"_id": found["_id"], "lease_until": found["lease_until"]},
                        {"$set": {REAPER_FIELD: registry.token}},
                    )
                    if marked.matched_count and self._end(found, now):
                        self._collection().delete_one(
                            {"_id": found["_id"], REAPER_FIELD: registry.token}
                        )
        except PyMongoError as exc:
            self.last_look = None
            logger.debug("reaping failed (%s)", self.safe(exc))

    def _look(self) -> tuple[datetime, list[dict[str, Any]]] | None:
        """The server's clock and the other processes' entries, if the server answered
        promptly; ``None`` otherwise. What a reaper has seen only counts while it keeps seeing
        it: a slow answer, or a pause between looks long enough to hide a stalled server,
        starts its observations afresh."""
        started = time.monotonic()
        client = self._client()
        hello = client.admin.command("hello")
        replied = time.monotonic()
        others = self._collection().find({"_id": {"$nin": _own_tokens()}}).to_list(None)
        done = time.monotonic()
        local = hello.get("localTime")
        continuous = self.last_look is not None and started - self.last_look <= self.confirm
        if done - started > SLOW_SERVER or not isinstance(local, datetime):
            self.last_look = None
            return None
        if not continuous:
            self.first_seen = {}
        self.last_look = done
        seen: dict[Any, tuple[Any, float]] = {}
        for found in others:
            before = self.first_seen.get(found["_id"])
            same = before is not None and before[0] == found.get("lease_until")
            seen[found["_id"]] = (found.get("lease_until"), before[1] if same and before else done)
        self.first_seen = seen
        now = local.astimezone(UTC) + timedelta(seconds=(replied - started) / 2)
        return now, others

    @property
    def confirm(self) -> float:
        """Seconds a lease must be seen unchanged before its process is judged dead: a live
        process that the server can hear renews at least twice in that time (a renewal that
        timed out is followed by the next one a renewal interval later)."""
        return 2 * self.interval

    def _dead(self, found: dict[str, Any], now: datetime) -> bool:
        """Whether a process's lease has expired and stayed unchanged for :attr:`confirm`
        seconds of prompt looks."""
        until = found.get("lease_until")
        if not isinstance(until, datetime) or until.astimezone(UTC) >= now:
            return False
        _, since = self.first_seen[found["_id"]]
        return time.monotonic() - since >= self.confirm

    def _end(self, gone: dict[str, Any], now: datetime) -> bool:
        """End the server sessions of a process whose document this reaper marked; whether
        they are ended (its document may go)."""
        registry = self.registry
        sessions = session_ids(gone.get("sessions"))
        who = f"pid {gone.get('pid')} on {gone.get('host')}"
        if gone.get("user") != self.user:
            logger.warning(
                "eventlab: process %s ran as %s, this one as %s: killSessions ends another "
                "user's sessions only with the killAnySession privilege (run every writer of "
                "a database as one user)",
                who,
                gone.get("user") or "no user",
                self.user or "no user",
            )
        if not sessions:
            return True
        try:
            client = self._client()
            # The client's codec options, not the command default: the lsids read back are
            # UUIDs (standard representation) and must go out as the same binary subtype.
            client.admin.command("killSessions", sessions, codec_options=client.codec_options)
        except OperationFailure as exc:
            if exc.code in REFUSED_CODES:
                registry.refuse(f"the deployment refuses killSessions ({first_line(exc)})")
                return False
            logger.info("ending a dead process's sessions failed (%s); retrying", self.safe(exc))
            return False
        except PyMongoError as exc:
            logger.info("ending a dead process's sessions failed (%s); retrying", self.safe(exc))
            return False
        registry.counters.reaped += 1
        lease_until = gone.get("lease_until")
        late = (now - lease_until.astimezone(UTC)).total_seconds() if lease_until else 0.0
        logger.warning(
            "eventlab: ended %d server session(s) of process %s, whose lease expired %.1f s "
            "ago: its open transactions, which held up this process, are aborted",
            len(sessions),
            who,
            late,
        )
        return True


def _own_tokens() -> list[str]:
    return [beat.registry.token for beat in heartbeat().beats()]


def heartbeat_client(async_client: Any) -> MongoClient[dict[str, Any]]:
    """A synchronous client to the deployment ``async_client`` talks to, configured the same
    (credentials, TLS, timeouts), without the caller's command listeners and with an app name
    of its own (a fail point aimed at the application's client leaves it alone)."""
    if async_client is None:
        raise RuntimeError("the connection's client is gone")
    options = dict(getattr(async_client, "_init_kwargs", None) or {})
    if not options:
        raise RuntimeError("cannot read the client's settings")
    mine = {
        "event_listeners",
        "appname",
        "maxpoolsize",
        "minpoolsize",
        "connect",
        "uuidrepresentation",
        "tz_aware",
    }
    for key in list(options):
        if key.lower() in mine:
            del options[key]
    if not any(key.lower() == "servermonitoringmode" for key in options):
        options["serverMonitoringMode"] = "poll"  # no round-trip thread of its own
    options.update(
        appname=_APP_NAME,
        maxPoolSize=2,
        uuidRepresentation="standard",
        tz_aware=True,
        connect=False,
    )
    return MongoClient(**options)


class Heartbeat:
    """The process's one heartbeat thread, started with the first registry that needs it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._beats: dict[int, _Beat] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def beats(self) -> list[_Beat]:
        with self._wake:
            return list(self._beats.values())

    def watch(self, registry: ProcessRegistry, *, wake: bool = False) -> None:
        """Renew ``registry``'s lease from now on (and reap for it when asked)."""
        with self._wake:
            if id(registry) not in self._beats:
                self._beats[id(registry)] = _Beat(registry)
                wake = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="eventlab-heartbeat", daemon=True
                )
                self._thread.start()
            if wake:
                self._wake.notify()

    def wake(self) -> None:
        with self._wake:
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                wait = min((b.due_in(now) for b in self._beats.values()), default=_IDLE_WAIT)
                if wait > 0:
                    self._wake.wait(wait)
                beats = list(self._beats.items())
            for key, beat in beats:
                try:
                    alive = beat.step(time.monotonic())
                except Exception as exc:  # never let the heartbeat die: log and go on
                    logger.warning("eventlab heartbeat: %s", beat.safe(exc))
                    alive = True
                if not alive:
                    with self._wake:
                        self._beats.pop(key, None)


_HEARTBEAT: Heartbeat | None = None
_HEARTBEAT_LOCK = threading.Lock()


def heartbeat() -> Heartbeat:
    """This process's heartbeat (a forked child gets its own)."""
    global _HEARTBEAT
    with _HEARTBEAT_LOCK:
        if _HEARTBEAT is None or _HEARTBEAT.pid != os.getpid():
            _HEARTBEAT = Heartbeat()
        return _HEARTBEAT

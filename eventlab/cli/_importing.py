"""``eventlab import``: a file of events into a store, whole or resumed where it stopped.

Three passes, so that a refusal writes nothing:

1. **the file**, read whole: every record parsed, each stream's versions contiguous, positions
   in order, every event encodable and within the server's document size (the parsed events
   are held for the next passes when the file has up to ``KEPT_EVENTS``; a larger file is
   read again, chunk by chunk, so memory stays bounded);
2. **the store**, asked about the whole file: an event id stored with other content, a stream
   whose stored version does not lead to the file's next one, positions already handed out
   (``--preserve-positions``): each is an error naming the ids, and nothing is written;
3. **the writes**, chunk by chunk (a transaction each). Events stored already with the same
   content are skipped, so an import that stopped part-way (a concurrent writer's conflict, a
   lost connection) is **resumed** by running the same command again: it says how much it
   wrote and that a rerun resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._core.appends import check_appendable_stream
from .._core.checks import check_aggregate_id
from .._core.errors import (
    ConflictError,
    DataError,
    EventlabError,
    InvalidEventError,
    TransientError,
)
from .._core.event_codec import encoded_bodies, event_body, same_client_content
from .._core.lifecycle import check_not_reserved
from .._core.race_points import IMPORT_BEFORE_CHUNK
from .._core.records import StoredEvent
from .._mongo.lookups import find_in, in_batches

if TYPE_CHECKING:
    from .._mongo.event_store import MongoEventStore


_SHOWN = 5
KEPT_EVENTS = 50_000
"""A file of up to this many events is parsed once and held in memory (tens of MB) for the
store check and the writes; a larger one is read again for each pass, in chunks."""
_MAX_DOCUMENT = 16 * 1024 * 1024
"""MongoDB's document limit, for the file pass (before any connection)."""

Chunks = Callable[[], Iterator[list[StoredEvent]]]


class CheckedChunk(list[StoredEvent]):
    """A chunk of events as the file check read it, with each event's body encoded as BSON
    (for the size check) and kept for the writes, which then encode nothing again. Any
    change to the events (sealing their personal fields) makes a plain list of new ones."""

    def __init__(self, events: list[StoredEvent], encoded: list[bytes]) -> None:
        super().__init__(events)
        self.encoded = encoded


@dataclass
class FileCheck:
    """Pass 1: what the file holds, checked chunk by chunk (one entry per stream in memory)."""

    path: Path
    preserve_positions: bool = False
    """A restore (positions kept): every event needs its position; markers and DCB streams
    are put back as they were. Otherwise events are appended, and refused as an append
    refuses them (a marker's type, a DCB stream)."""
    events: int = 0
    ordered: bool = True
    problems: list[str] = field(default_factory=list)
    _last_version: dict[str, int] = field(default_factory=dict)
    _last_position: int = 0
    _ids: set[int] = field(default_factory=set)
    """Every event id of the file (as an int: a file may not hold one twice)."""
    _repeated: list[str] = field(default_factory=list)

    def take(self, events: list[StoredEvent]) -> CheckedChunk:
        """Check one chunk of the file; returns it with its events' bodies as BSON."""
        bodies = [self._body(e) for e in events]
        try:
            encoded = encoded_bodies(bodies, _MAX_DOCUMENT, (e.position for e in events))
        except EventlabError as exc:
            raise DataError(f"{self.path}: {exc} (nothing was imported)") from exc
        for event in events:
            self.events += 1
            if event.event_id.int in self._ids:
                self._repeated.append(str(event.event_id))
            self._ids.add(event.event_id.int)
            position = event.position or 0
            if event.position is not None and event.position < 1 and len(self.problems) < _SHOWN:
                self.problems.append(
                    f"a position below 1 (event {event.event_id} at {event.position})"
                )
            if position and position <= self._last_position:
                self.ordered = False
            self._last_position = max(self._last_position, position)
            last = self._last_version.get(event.aggregate_id)
            if last is not None and event.version != last + 1 and len(self.problems) < _SHOWN:
                kind = "a duplicated version" if event.version <= last else "a version gap"
                self.problems.append(
                    f"{kind} in stream {event.aggregate_id!r} (v{last} then v{event.version})"
                )
            self._last_version[event.aggregate_id] = event.version
        return CheckedChunk(events, encoded)

    def _body(self, event: StoredEvent) -> dict[str, Any]:
        """The event's body as written, once the event is one the writes will take."""
        try:
            if self.preserve_positions:
                check_aggregate_id(event.aggregate_id)
                if event.position is None:
                    raise InvalidEventError(
                        f"event {event.event_id} has no position, which --preserve-positions keeps"
                    )
            else:
                check_appendable_stream(event.aggregate_id)
                check_not_reserved(event)
            return event_body(event)
        except EventlabError as exc:
            raise DataError(f"{self.path}: {exc} (nothing was imported)") from exc
        except RecursionError as exc:
            raise DataError(
                f"{self.path}: event {event.event_id} is nested too deeply to store (MongoDB "
                "stores 100 levels; nothing was imported)"
            ) from exc

    def refusal(self) -> str | None:
        where = f"examine it with `eventlab gaps --file {self.path}`"
        if not self.events:
            return f"{self.path} holds no events: nothing was imported"
        if self._repeated:
            return (
                f"{self.path}: refusing to import a file that holds an event id twice "
                f"({_listed(self._repeated)}): nothing was imported"
            )
        if self.problems:
            return (
                f"{self.path}: refusing to import a file that breaks stream invariants "
                f"({'; '.join(self.problems)}); {where}"
            )
        if not self.ordered:
            return (
                f"{self.path}: refusing to import a file whose events are not in position "
                f"order (a position repeated or going back; an export is in order): {where}"
            )
        return None


@dataclass
class StoreCheck:
    """Pass 2: the file against the store, before anything is written."""

    conflicts: list[str] = field(default_factory=list)
    """Event ids stored with other content."""
    streams: list[str] = field(default_factory=list)
    """Streams whose stored version does not lead to the file's next event."""
    stored: int = 0
    """Events of the file stored already, with the same content (skipped)."""
    _started: set[str] = field(default_factory=set)

    async def take(self, store: MongoEventStore, chunk: list[StoredEvent]) -> None:
        ids = [event.event_id for event in chunk]
        found = {doc["_id"]: doc for doc in await find_in(store.events, "_id", ids)}
        new = []
        for event in chunk:
            doc = found.get(event.event_id)
            if doc is None:
                new.append(event)
            elif same_client_content(event_body(event), doc, check_version=True):
                self.stored += 1
            else:
                self.conflicts.append(str(event.event_id))
        first = {}
        for event in new:
            if event.aggregate_id not in self._started:
                self._started.add(event.aggregate_id)
                first[event.aggregate_id] = event.version
        if not first:
            return
        versions = await _stored_versions(store, list(first))
        for stream, version in first.items():
            stored = versions.get(stream, 0)
            if stored != version - 1:
                self.streams.append(
                    f"{stream!r} (stored up to v{stored}; the file's next event, v{version}, "
                    f"follows v{version - 1})"
                )

    def refusal(self, path: Path) -> str | None:
        parts = []
        if self.conflicts:
            parts.append(
                f"{len(self.conflicts):,} event id(s) stored with other content: "
                f"{_listed(self.conflicts)}"
            )
        if self.streams:
            parts.append(f"{len(self.streams):,} stream(s) elsewhere: {_listed(self.streams)}")
        if not parts:
            return None
        return f"{path}: {'; '.join(parts)}. Nothing was imported"


async def _stored_versions(store: MongoEventStore, streams: list[str]) -> dict[str, int]:
    """Each stored stream's last version (in bounded batches: see ``_mongo.lookups``)."""
    versions: dict[str, int] = {}
    for batch in in_batches(streams):
        heads = store.events.aggregate(
            [
                {"$match": {"aggregate_id": {"$in": batch}}},
                {"$group": {"_id": "$aggregate_id", "version": {"$max": "$version"}}},
            ]
        )
        versions.update({doc["_id"]: doc["version"] async for doc in await heads})
    return versions


def _listed(items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN:,} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


@dataclass
class ImportOutcome:
    written: int = 0
    skipped: int = 0


def check_file(path: Path, chunks: Chunks, *, preserve_positions: bool) -> tuple[int, Chunks]:
    """Pass 1 (before any connection): the number of events of the file, and its chunks for
    the next passes (those read in this pass, kept in memory up to ``KEPT_EVENTS`` events,
    or else ``chunks`` itself, which reads the file again)."""
    check = FileCheck(path, preserve_positions)
    kept: list[list[StoredEvent]] | None = []
    for chunk in chunks():  # a malformed record stops here
        checked = check.take(chunk)
        if kept is not None:
            kept.append(checked)
            if check.events > KEPT_EVENTS:
                kept = None
    refusal = check.refusal()
    if refusal:
        raise EventlabError(refusal)
    if kept is None:
        return check.events, chunks
    parsed = kept
    return check.events, lambda: iter(parsed)


async def import_file(
    store: MongoEventStore,
    path: Path,
    chunks: Chunks,
    *,
    preserve_positions: bool,
    bar: Any = None,
) -> ImportOutcome:
    """The three passes (module doc); ``chunks()`` reads the file again from its start."""
    total, chunks = check_file(path, chunks, preserve_positions=preserve_positions)
    return await write_file(
        store, path, chunks, total, preserve_positions=preserve_positions, bar=bar
    )


async def write_file(
    store: MongoEventStore,
    path: Path,
    chunks: Chunks,
    total: int,
    *,
    preserve_positions: bool,
    bar: Any = None,
) -> ImportOutcome:
    """Passes 2 and 3, for a file :func:`check_file` passed."""
    write = restore_file if preserve_positions else append_file
    return await write(store, path, chunks, total, bar or _NoBar())


class _NoBar:
    def update(self, n: int) -> None:
        pass


async def append_file(
    store: MongoEventStore, path: Path, chunks: Chunks, total: int, bar: Any
) -> ImportOutcome:
    """Pass 2 and 3 for an import as new appends (new positions)."""
    check = StoreCheck()
    for chunk in chunks():
        await check.take(store, chunk)
    refusal = check.refusal(path)
    if refusal:
        raise ConflictError(refusal)
    outcome = ImportOutcome()
    try:
        for chunk in chunks():
            if IMPORT_BEFORE_CHUNK.armed:
                await IMPORT_BEFORE_CHUNK.reach()
            await _append_new(store, chunk, outcome)
            bar.update(len(chunk))
    except EventlabError as exc:
        raise _stopped(exc, path, outcome.written + outcome.skipped, total) from exc
    return outcome


async def restore_file(
    store: MongoEventStore, path: Path, chunks: Chunks, total: int, bar: Any
) -> ImportOutcome:
    """Pass 2 and 3 for a restore (positions kept): into an empty store, or resumed into a
    store that holds exactly the file's first events (a restore that stopped)."""
    prefix, following = await _stored_prefix(store, path, chunks)
    head = (await store.log.head()).position
    if following is not None and (following.position or 0) <= head:
        raise ConflictError(
            f"{path}: the store has handed out positions up to {head:,}, and the file's next "
            f"event is at {following.position:,}: restore into an empty store (or a new "
            "--database). Nothing was imported"
        )
    outcome = ImportOutcome(skipped=prefix)
    seen = 0
    try:
        for chunk in chunks():
            rest = chunk[max(0, prefix - seen) :]
            seen += len(chunk)
            if rest:
                if IMPORT_BEFORE_CHUNK.armed:
                    await IMPORT_BEFORE_CHUNK.reach()
                # One transaction per chunk of the file (2,000 events): fewer round trips.
                outcome.written += await _restore_chunk(store, chunk, rest)
            bar.update(len(chunk))
    except EventlabError as exc:
        raise _stopped(exc, path, prefix + outcome.written, total) from exc
    return outcome


async def _restore_chunk(
    store: MongoEventStore, chunk: list[StoredEvent], rest: list[StoredEvent]
) -> int:
    """Restore ``rest``, the last events of ``chunk``, in one transaction: from the bodies
    the file check encoded when ``chunk`` is as it read it."""
    if not isinstance(chunk, CheckedChunk):
        return await store.restore(rest, chunk_size=len(rest), progress=False)
    from .._mongo.restore import restore

    encoded = chunk.encoded[len(chunk) - len(rest) :]
    return await restore(
        store._schema, rest, chunk_size=len(rest), progress=False, encoded_bodies=encoded
    )


async def _stored_prefix(
    store: MongoEventStore, path: Path, chunks: Chunks
) -> tuple[int, StoredEvent | None]:
    """How many of the file's first events the store holds as the file has them, and the
    file's next event; an error when the store holds anything else."""
    events = (event for chunk in chunks() for event in chunk)
    cursor = store.events.find({"aggregate_id": {"$exists": True}}, sort=[("position", 1)])
    matched = 0
    async for doc in cursor:
        event = next(events, None)
        if (
            event is None
            or doc["_id"] != event.event_id
            or doc.get("position") != event.position
            or not same_client_content(event_body(event), doc, check_version=True)
        ):
            stored = await store.count()
            raise ConflictError(
                f"{path}: the store holds {stored:,} events that are not the start of this file "
                f"(stored event {doc['_id']} at position {doc.get('position')}): "
                "--preserve-positions restores into an empty store (or a new --database), or "
                "resumes a restore of the same file. Nothing was imported"
            )
        matched += 1
    return matched, next(events, None)


def _stopped(exc: EventlabError, path: Path, written: int, total: int) -> EventlabError:
    """The error of an import that stopped part-way: what is stored, and how to resume (of
    the kind of ``exc``'s family, whose own arguments it does not have)."""
    family = next(
        (kind for kind in (ConflictError, TransientError, DataError) if isinstance(exc, kind)),
        EventlabError,
    )
    # A conflict stays until someone resolves it, and an event the store refuses until the
    # file is corrected: a rerun before that is refused again.
    when = {
        ConflictError: "Once the conflict is resolved, run",
        DataError: "Once the file is corrected, run",
    }.get(family, "Run")
    if not written:
        return family(
            f"{path}: import stopped: {str(exc).splitlines()[0]}; nothing was imported. "
            f"{when} the same command again"
        )
    return family(
        f"{path}: import stopped: {str(exc).splitlines()[0]}; the file's first {written:,} "
        f"of {total:,} events are stored. {when} the same command again to resume: events "
        "stored already, with the same content, are skipped"
    )


async def _append_new(
    store: MongoEventStore, chunk: list[StoredEvent], outcome: ImportOutcome
) -> None:
    """Append the events of ``chunk`` not stored yet, 500 in a transaction, counting each
    transaction's events in ``outcome`` as it commits (a stop says what is stored)."""
    from .._mongo.unit_of_work import run_unit_of_work

    for start in range(0, len(chunk), 500):
        part = chunk[start : start + 500]
        ids = [e.event_id for e in part]
        present = {doc["_id"]: doc for doc in await find_in(store.events, "_id", ids)}
        other = [
            str(e.event_id)
            for e in part
            if e.event_id in present
            and not same_client_content(event_body(e), present[e.event_id], check_version=True)
        ]
        if other:
            raise ConflictError(f"event id(s) stored with other content: {_listed(other)}")
        new = [
            replace(e, position=None, recorded_at=None) for e in part if e.event_id not in present
        ]
        runs = [list(run) for _, run in groupby(new, key=lambda e: e.aggregate_id)]

        async def write(uow: Any, runs: list[list[StoredEvent]] = runs) -> None:
            for run in runs:
                await store.append(run[0].aggregate_id, run, run[0].version - 1, uow=uow)

        if runs:
            await run_unit_of_work(store.connection, write)
        outcome.written += len(new)
        outcome.skipped += len(part) - len(new)

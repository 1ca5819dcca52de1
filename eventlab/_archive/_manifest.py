"""An archive's manifest: what range of which store it holds, how many events, and each
file with its checksum. Manifests are immutable files (``_manifests/<name>.json``); the store
records which one is current and its SHA-256, so a manifest that changed is refused.
``_eventlab_archive.json`` at the top says whose archive the location is (a directory is
refused to any other store)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from .._core.errors import ArchiveError
from ._location import ArchiveLocation

FORMAT = 1
OWNER = "_eventlab_archive.json"
MANIFESTS = "_manifests"


@dataclass(frozen=True, slots=True)
class Segment:
    """One Parquet file of an archive."""

    path: str
    sha256: str
    events: int
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """What an archive holds (one version of it)."""

    store: str
    incarnation: str
    through: int
    """Every event at or below this position is in the archive or still live (each stream's
    last event stays live)."""
    segments: tuple[Segment, ...] = ()
    name: str = field(default_factory=lambda: f"manifest-{uuid.uuid4().hex}")
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def events(self) -> int:
        return sum(s.events for s in self.segments)

    def encoded(self) -> bytes:
        body = {"format": FORMAT, **asdict(self), "events": self.events}
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def decoded(cls, data: bytes, where: str) -> Manifest:
        try:
            body = json.loads(data)
            if body.get("format") != FORMAT:
                raise ValueError(f"format {body.get('format')!r}")
            segments = tuple(Segment(**s) for s in body["segments"])
            return cls(
                str(body["store"]),
                str(body["incarnation"]),
                int(body["through"]),
                segments,
                str(body["name"]),
                str(body["created_at"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(f"{where} is not an eventlab archive manifest: {exc}") from exc


def save(location: ArchiveLocation, manifest: Manifest) -> str:
    """Write the manifest, then the owner file naming it; the manifest's SHA-256."""
    data = manifest.encoded()
    location.write(f"{MANIFESTS}/{manifest.name}.json", data)
    owner = {
        "format": FORMAT,
        "store": manifest.store,
        "incarnation": manifest.incarnation,
        "manifest": manifest.name,
    }
    location.write(OWNER, json.dumps(owner, indent=1).encode())
    return hashlib.sha256(data).hexdigest()


def load(location: ArchiveLocation, name: str, sha256: str) -> Manifest:
    """The manifest ``name``, if it is the one the store recorded (its SHA-256)."""
    data = location.read(f"{MANIFESTS}/{name}.json")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ArchiveError(
            f"{location.url}: manifest {name} does not match the checksum the store recorded"
        )
    return Manifest.decoded(data, f"{location.url}/{MANIFESTS}/{name}.json")


def check_owner(location: ArchiveLocation, store: str, incarnation: str) -> None:
    """Refuse a location that holds another store's archive (or another incarnation's of
    this one), or files that are not an archive."""
    names = location.names()
    if OWNER not in names:
        if names:
            raise ArchiveError(
                f"{location.url} holds files that are not an eventlab archive: archive to a new "
                "or empty location (nothing was written)"
            )
        return
    try:
        owner = json.loads(location.read(OWNER))
        theirs = (owner["store"], owner["incarnation"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"{location.url}/{OWNER} is unreadable: {exc}") from exc
    if theirs != (store, incarnation):
        raise ArchiveError(
            f"{location.url} holds the archive of another store ({str(theirs[0])[:120]}, or of "
            "this one before it was dropped, replaced or restored): archive to another "
            "location (nothing was written)"
        )

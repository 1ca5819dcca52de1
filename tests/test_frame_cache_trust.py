"""The frame cache is never silently wrong: flipped bits, swapped or missing parts, an edited
manifest, a store restored under it, refreshers in two processes. Each case ends with the
cached frame equal to a fresh read of the store, and the cache's line naming what it rebuilt."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eventlab import (
    CacheError,
    ConfigurationError,
    MongoConnectionManager,
    MongoEventStore,
    StoredEvent,
)
from eventlab.workbench import read_frame
from eventlab.workbench._frame_cache import MANIFEST

START = datetime(2026, 3, 1, tzinfo=UTC)
CHILD = Path(__file__).with_name("_frame_cache_child.py")


def _events(first: int, count: int, *, edited: int | None = None) -> list[StoredEvent]:
    """Events whose ``payload.n`` is their position (``edited``: that one's price corrected)."""
    return [
        StoredEvent(
            event_id=uuid.UUID(int=position),
            event_type=("Placed", "Paid")[position % 2],
            aggregate_id=f"s-{position}",
            aggregate_type="Order",
            version=1,
            payload={
                "n": position,
                "price": Decimal("9.99") if position == edited else Decimal(f"{position}.50"),
                "tags": ["a"] * (position % 3),
            },
            metadata={},
            occurred_at=START + timedelta(minutes=position),
            recorded_at=START + timedelta(minutes=position, seconds=1),
            position=position,
        )
        for position in range(first, first + count)
    ]


def _same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        left.reset_index(drop=True), right.reset_index(drop=True), check_categorical=False
    )


async def _two_parts(connection: MongoConnectionManager, cache: Path) -> MongoEventStore:
    """A store of 150 events and a cache of two parts (positions 1-100 and 101-150)."""
    store = MongoEventStore(connection)
    await store.restore(_events(1, 100))
    await read_frame(store, cache=cache, progress=False)
    await store.restore(_events(101, 50))
    await read_frame(store, cache=cache, progress=False)
    return store


def _parts(cache: Path) -> list[Path]:
    names = [part["name"] for part in json.loads((cache / MANIFEST).read_text())["body"]["parts"]]
    return [cache / name for name in names]


def _flip(path: Path, fraction: float) -> None:
    data = bytearray(path.read_bytes())
    offset = min(len(data) - 1, int(len(data) * fraction))
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


FRACTIONS = [0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0]


@pytest.fixture
async def pristine(connection: MongoConnectionManager, tmp_path: Path) -> tuple[Any, Path]:
    """The two-part cache, made once per test, and its store."""
    cache = tmp_path / "pristine"
    return await _two_parts(connection, cache), cache


@pytest.mark.parametrize("part", [0, 1])
async def test_a_flipped_bit_in_a_part_is_rebuilt_from_that_part(
    pristine: tuple[MongoEventStore, Path],
    tmp_path: Path,
    part: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, original = pristine
    expected = await read_frame(store)
    for fraction in FRACTIONS:
        cache = tmp_path / f"flipped-{fraction}"
        shutil.copytree(original, cache)
        flipped = _parts(cache)[part]
        _flip(flipped, fraction)
        capsys.readouterr()
        _same(await read_frame(store, cache=cache), expected)
        said = capsys.readouterr().out
        assert f"part {flipped.name} failed its checksum" in said, (fraction, said)
        if part == 0:
            assert "rebuilt whole; read 150 new" in said
        else:
            assert "kept 100 events through position 100, rebuilt the rest" in said
            assert "read 50 new from the store (positions 101-150)" in said
        assert not flipped.exists()  # the bad part is gone; the next open trusts what is left
        _same(await read_frame(store, cache=cache), expected)
        assert "read 0 new" in capsys.readouterr().out


async def test_a_flipped_bit_in_the_manifest_rebuilds_the_whole_cache(
    pristine: tuple[MongoEventStore, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, original = pristine
    expected = await read_frame(store)
    size = (original / MANIFEST).stat().st_size
    for offset in range(0, size, max(1, size // 12)):
        cache = tmp_path / f"manifest-{offset}"
        shutil.copytree(original, cache)
        _flip(cache / MANIFEST, offset / size)
        capsys.readouterr()
        _same(await read_frame(store, cache=cache), expected)
        said = capsys.readouterr().out
        assert "its manifest" in said and "rebuilt whole" in said, (offset, said)


async def test_a_manifest_edited_to_agree_with_swapped_parts_is_refused(
    pristine: tuple[MongoEventStore, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid JSON, plausible values, no checksum to match: an edit by hand or by a tool."""
    store, original = pristine
    cache = tmp_path / "edited"
    shutil.copytree(original, cache)
    manifest = json.loads((cache / MANIFEST).read_text())
    manifest["body"]["through"] = 120
    (cache / MANIFEST).write_text(json.dumps(manifest))
    _same(await read_frame(store, cache=cache), await read_frame(store))
    assert "its manifest failed its checksum: rebuilt whole" in capsys.readouterr().out


async def test_swapped_and_missing_parts_are_found(
    pristine: tuple[MongoEventStore, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, original = pristine
    expected = await read_frame(store)
    swapped = tmp_path / "swapped"
    shutil.copytree(original, swapped)
    first, second = _parts(swapped)
    aside = swapped / "aside"
    first.rename(aside)
    second.rename(first)
    aside.rename(second)
    capsys.readouterr()
    _same(await read_frame(store, cache=swapped), expected)
    assert f"part {first.name} failed its checksum" in capsys.readouterr().out
    missing = tmp_path / "missing"
    shutil.copytree(original, missing)
    gone = _parts(missing)[1]
    gone.unlink()
    _same(await read_frame(store, cache=missing), expected)
    assert f"part {gone.name} is missing: kept 100 events" in capsys.readouterr().out


async def test_files_no_manifest_names_are_removed_and_never_read(
    pristine: tuple[MongoEventStore, Path], tmp_path: Path
) -> None:
    """A crashed refresher's part and temporary file: left out of the frame, then removed."""
    store, original = pristine
    cache = tmp_path / "orphans"
    shutil.copytree(original, cache)
    stray = cache / "part-000000000001-000000000150-deadbeef.parquet"
    shutil.copy(_parts(cache)[0], stray)  # rows the frame would show twice if it were read
    temporary = cache / ".manifest.json.0123.eventlab-tmp"
    temporary.write_text("{")
    _same(await read_frame(store, cache=cache, progress=False), await read_frame(store))
    assert not stray.exists() and not temporary.exists()


@pytest.mark.parametrize("how", ["drop-database", "delete-documents", "delete-position-counter"])
async def test_a_store_restored_from_an_edited_export_is_read_again(
    connection: MongoConnectionManager,
    tmp_path: Path,
    how: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Same event ids, same positions, one price corrected: the cache must not keep the old."""
    store = MongoEventStore(connection)
    await store.restore(_events(1, 60))
    cache = tmp_path / "cache"
    before = await read_frame(store, cache=cache, progress=False)
    assert before["payload.price"].iloc[29] == Decimal("30.50")
    if how == "drop-database":
        await connection.client.drop_database(connection.database_name)
    else:
        await store.events.delete_many({})
        counters = connection.database["counters"]
        if how == "delete-documents":
            await counters.delete_many({})
        else:  # the incarnation document stays: the restore into a store at 0 renews it
            await counters.delete_one({"_id": "domain_events.position"})
    restored = MongoEventStore(connection)
    await restored.restore(_events(1, 60, edited=30))
    capsys.readouterr()
    after = await read_frame(restored, cache=cache)
    assert "the store was dropped, replaced or restored since it was made" in (
        capsys.readouterr().out
    )
    assert after["payload.price"].iloc[29] == Decimal("9.99")
    _same(after, await read_frame(restored))


async def test_a_restore_above_the_head_keeps_the_cache(
    connection: MongoConnectionManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(1, 40))
    cache = tmp_path / "cache"
    await read_frame(store, cache=cache, progress=False)
    await store.restore(_events(41, 10))
    await read_frame(store, cache=cache)
    assert "40 events through position 40; read 10 new" in capsys.readouterr().out


async def test_two_refreshers_in_one_process_take_turns(
    connection: MongoConnectionManager, tmp_path: Path
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(1, 80))
    cache = tmp_path / "cache"
    frames = await asyncio.gather(
        *(read_frame(store, cache=cache, progress=False) for _ in range(4))
    )
    for frame in frames:
        _same(frame, await read_frame(store))


@pytest.mark.slow
async def test_refreshers_in_two_processes_never_see_a_wrong_frame(
    connection: MongoConnectionManager, tmp_path: Path, mongo_uri: str, database_name: str
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(1, 200))
    cache = tmp_path / "shared"
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), mongo_uri, database_name, str(cache), "25"],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    # Appends land between and during the children's refreshes, however they interleave.
    position = 200
    while any(child.poll() is None for child in children) and position < 2_000:
        await store.restore(_events(position + 1, 20))
        position += 20
    outcomes = [await asyncio.to_thread(child.communicate) for child in children]
    for child, (out, err) in zip(children, outcomes, strict=True):
        assert child.returncode == 0 and out.startswith("OK"), (out, err[-2000:])
    _same(await read_frame(store, cache=cache, progress=False), await read_frame(store))


async def test_a_cache_that_cannot_be_read_is_a_typed_error_naming_it(
    connection: MongoConnectionManager, tmp_path: Path
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(1, 5))
    cache = tmp_path / "cache"
    (cache / MANIFEST).mkdir(parents=True)  # the manifest's name taken by a directory
    with pytest.raises(CacheError, match="is unreadable: Is a directory"):
        await read_frame(store, cache=cache)


@pytest.mark.parametrize("hostile", [{"$gt": ""}, 12, -1, b"dir", ["a"], None.__class__])
async def test_a_cache_argument_that_is_not_a_path_is_refused_before_anything_is_written(
    connection: MongoConnectionManager, tmp_path: Path, hostile: Any
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(1, 5))
    before = set(Path.cwd().iterdir())
    with pytest.raises(ConfigurationError, match="cache must be a directory path"):
        await read_frame(store, cache=hostile)
    assert set(Path.cwd().iterdir()) == before


def _edit_manifest(cache: Path, edit: Any) -> None:
    """Edit the manifest's body, its checksum recomputed as the cache computes it."""
    import hashlib

    manifest = json.loads((cache / MANIFEST).read_text())
    edit(manifest["body"])
    body = manifest["body"]
    manifest["checksum"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    (cache / MANIFEST).write_text(json.dumps(manifest))


def _outside(body: dict[str, Any]) -> None:
    body["parts"][1]["name"] = "../other/" + body["parts"][1]["name"]


CONTRADICTIONS: dict[str, Any] = {
    "through-before-last-part": lambda body: body.update(through=120),
    "through-after-last-part": lambda body: body.update(through=149),
    "first-part-not-from-0": lambda body: body["parts"][0].update(after=10),
    "gap-between-parts": lambda body: body["parts"][1].update(after=110),
    "overlapping-parts": lambda body: body["parts"][1].update(after=90),
    "no-parts": lambda body: body.update(parts=[]),
    "more-rows-than-positions": lambda body: body["parts"][1].update(rows=51),
    "no-rows": lambda body: body["parts"][1].update(rows=0),
    "a-part-outside-the-directory": _outside,
    "a-path-as-name": lambda body: body["parts"][1].update(name="sub/" + body["parts"][1]["name"]),
    "an-absolute-name": lambda body: body["parts"][1].update(name="/etc/passwd"),
    "a-position-as-text": lambda body: body["parts"][1].update(through="150"),
    "the-same-part-twice": lambda body: body["parts"][1].update(name=body["parts"][0]["name"]),
}


@pytest.mark.parametrize("edit", list(CONTRADICTIONS), ids=list(CONTRADICTIONS))
async def test_a_manifest_that_contradicts_itself_is_never_served(
    pristine: tuple[MongoEventStore, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: str,
) -> None:
    """Its checksum recomputed, as a tool editing it would: the contents must still agree."""
    store, original = pristine
    cache = tmp_path / "edited"
    shutil.copytree(original, cache)
    other = tmp_path / "other"
    other.mkdir()
    for part in _parts(cache):  # what a name leading out of the directory would find
        shutil.copy(part, other / part.name)
    _edit_manifest(cache, CONTRADICTIONS[edit])
    capsys.readouterr()
    _same(await read_frame(store, cache=cache), await read_frame(store))
    said = capsys.readouterr().out
    assert "its manifest contradicts itself" in said and "rebuilt whole" in said, said
    assert len(list(other.iterdir())) == 2


async def test_a_part_replaced_by_a_directory_is_rebuilt(
    pristine: tuple[MongoEventStore, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, original = pristine
    cache = tmp_path / "directory"
    shutil.copytree(original, cache)
    second = _parts(cache)[1]
    second.unlink()
    second.mkdir()
    (second / "inside").write_text("kept")
    capsys.readouterr()
    _same(await read_frame(store, cache=cache), await read_frame(store))
    said = capsys.readouterr().out
    assert f"part {second.name} is a directory, not a file: kept 100 events" in said, said
    assert (second / "inside").read_text() == "kept"  # not the cache's to remove
    capsys.readouterr()
    _same(await read_frame(store, cache=cache), await read_frame(store))
    assert "rebuilt" not in capsys.readouterr().out


def test_a_refresh_that_reads_nothing_keeps_the_manifest_consistent(tmp_path: Path) -> None:
    """Positions with no event (holes, tombstones): the last part's range is extended; with
    no part, the cache stays at 0 (a manifest cannot say it holds positions it has no part
    for)."""
    import pyarrow as pa

    from eventlab.workbench._frame_cache import CacheManifest, FrameCache

    cache = FrameCache(tmp_path / "cache", "db.events")
    cache.locked()  # makes the directory
    nothing = pa.table({"position": pa.array([], pa.int64())})
    empty = cache.append(CacheManifest("db.events", "i", "0"), nothing, {}, 7)
    assert empty.through == 0 and empty.parts == []
    some = pa.table({"position": pa.array([2, 3, 5], pa.int64())})
    first = cache.append(empty, some, {}, 6)
    extended = cache.append(first, nothing, {}, 9)
    assert extended.through == extended.parts[0].through == 9
    assert extended.parts[0].after == 0 and extended.parts[0].rows == 3
    opened = cache.open("i", 9, "0")
    assert opened.rebuilt is None and opened.rows == 3 and opened.manifest.through == 9

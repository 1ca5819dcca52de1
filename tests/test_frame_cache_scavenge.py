"""A scavenge removes events below the head: the frame cache, which copies the log, must never
serve them afterwards (docs/frames.md, "A store that changed under it")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eventlab import ExpectedVersion, MongoConnectionManager, MongoEventStore
from eventlab.memory import MemoryBackend, MemoryEventStore
from eventlab.workbench import load_jsonl, read_frame

DATA = Path(__file__).parents[1] / "data"


def _same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    assert list(left.columns) == list(right.columns)
    pd.testing.assert_frame_equal(
        left.reset_index(drop=True), right.reset_index(drop=True), check_categorical=False
    )


@pytest.fixture(params=["mongo", "memory"])
async def orders(request: pytest.FixtureRequest, connection: MongoConnectionManager) -> Any:
    """data/orders.jsonl with its positions (``eventlab import --preserve-positions``)."""
    events = load_jsonl(DATA / "orders.jsonl")
    store: Any
    if request.param == "memory":  # appended one by one: the same positions
        store = MemoryEventStore(MemoryBackend())
        for event in events:
            await store.append(event.aggregate_id, [event], event.version - 1)
        return store
    store = MongoEventStore(connection)
    await store.restore(events)
    return store


async def test_a_scavenge_is_never_served_from_the_cache(
    orders: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    before = await read_frame(orders, cache=cache, progress=False)
    assert len(before) == 3358
    await orders.lifecycle().delete("order-00001", ExpectedVersion.ANY, permanent=True)
    assert (await orders.lifecycle().scavenge()).removed == 2
    capsys.readouterr()
    cached = await read_frame(orders, cache=cache)
    line = capsys.readouterr().out
    fresh = await read_frame(orders, progress=False)
    assert len(fresh) == 3357
    _same(cached, fresh)
    assert "a scavenge removed events since it was made: rebuilt whole" in line
    # Then the cache is trusted again, and refreshed from where it ends.
    _same(await read_frame(orders, cache=cache, progress=False), fresh)
    capsys.readouterr()
    await read_frame(orders, cache=cache)
    assert "rebuilt" not in capsys.readouterr().out


async def test_a_scavenge_that_removes_nothing_keeps_the_cache(
    orders: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    await read_frame(orders, cache=cache, progress=False)
    assert (await orders.lifecycle().scavenge()).removed == 0
    capsys.readouterr()
    await read_frame(orders, cache=cache)
    assert "rebuilt" not in capsys.readouterr().out


async def test_a_scavenge_killed_half_way_leaves_no_cache_trusting_what_it_removed(
    connection: MongoConnectionManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run killed after its mark and some of its replacements: every read rebuilds the
    copy, until a scavenge completes."""
    store = MongoEventStore(connection)
    await store.restore(load_jsonl(DATA / "orders.jsonl"))
    cache = tmp_path / "cache"
    await read_frame(store, cache=cache, progress=False)
    storage = store._lifecycle
    await storage.begin_rewrite()  # the killed run's mark: no end_rewrite follows
    doomed = await storage.documents("order-00001", 0, 1)
    assert await storage.replace(doomed) == 1
    for _ in range(2):
        capsys.readouterr()
        cached = await read_frame(store, cache=cache)
        assert "rebuilt whole" in capsys.readouterr().out
        _same(cached, await read_frame(store, progress=False))
    await store.lifecycle().delete("order-00002", ExpectedVersion.ANY, permanent=True)
    await store.lifecycle().scavenge()
    _same(await read_frame(store, cache=cache, progress=False), await read_frame(store))
    capsys.readouterr()
    await read_frame(store, cache=cache)
    assert "rebuilt" not in capsys.readouterr().out


async def test_a_scavenge_killed_after_its_last_replacement_is_cleared_by_the_next_run(
    connection: MongoConnectionManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing is left for the next run to remove: it clears the mark all the same."""
    store = MongoEventStore(connection)
    await store.restore(load_jsonl(DATA / "orders.jsonl"))
    await store.lifecycle().delete("order-00001", ExpectedVersion.ANY, permanent=True)
    storage = store._lifecycle
    await storage.begin_rewrite()  # the killed run's mark
    assert (await store.lifecycle().scavenge()).removed == 2  # its work, done in full
    await storage.begin_rewrite()  # a second run killed after that: nothing left to remove
    cache = tmp_path / "cache"
    await read_frame(store, cache=cache, progress=False)
    assert (await store.lifecycle().scavenge()).removed == 0
    _same(await read_frame(store, cache=cache, progress=False), await read_frame(store))
    capsys.readouterr()
    await read_frame(store, cache=cache)
    assert "rebuilt" not in capsys.readouterr().out

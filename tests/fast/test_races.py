from __future__ import annotations

import asyncio

import pytest

from eventlab import ConfigurationError
from eventlab._core import races as _races

TRIED = _races.point("test.races.tried")


async def guarded(log: list[str]) -> None:
    log.append("before")
    if TRIED.armed:
        await TRIED.reach()
    log.append("after")


async def test_an_unarmed_point_runs_nothing() -> None:
    log: list[str] = []
    await guarded(log)
    assert log == ["before", "after"]
    assert not TRIED.armed


async def test_an_action_runs_at_the_point_the_given_number_of_times() -> None:
    log: list[str] = []

    async def other_actor() -> None:
        log.append("other")

    async with _races.acting_at("test.races.tried", other_actor, times=2) as race:
        for _ in range(3):
            await guarded(log)
        assert race.reached_count >= 2
    assert log == ["before", "other", "after"] * 2 + ["before", "after"]
    assert not TRIED.armed


async def test_a_pause_holds_the_path_until_resumed() -> None:
    log: list[str] = []
    async with _races.paused_at("test.races.tried") as pause:
        task = asyncio.create_task(guarded(log))
        await pause.reached.wait()
        log.append("meanwhile")
        pause.resume()
        await task
    assert log == ["before", "meanwhile", "after"]


def test_sync_points_take_sync_actions() -> None:
    seen: list[int] = []
    with _races.acting_at_sync("test.races.tried", lambda: seen.append(1)):
        TRIED.reach_sync()
        TRIED.reach_sync()
    assert seen == [1]


@pytest.mark.parametrize("times", [0, -1, 1.5, True, "2"])
async def test_arming_refuses_a_bad_count(times: object) -> None:
    async def nothing() -> None:
        return None

    with pytest.raises(ConfigurationError, match="times"):
        async with _races.acting_at("test.races.tried", nothing, times=times):  # type: ignore[arg-type]
            pass
    assert not TRIED.armed


async def test_a_misspelt_name_is_refused_with_the_declared_ones() -> None:
    async def nothing() -> None:
        return None

    with pytest.raises(ConfigurationError, match=r"no race point named 'test\.races\.trie'"):
        async with _races.acting_at("test.races.trie", nothing):
            pass
    assert "test.races.tried" in _races.names()

"""Subscriber's and Projector's options are checked when they are made: a typed error that
names the problem, never a raw TypeError or OverflowError from deep inside a run."""

from __future__ import annotations

import math
from typing import Any

import pytest

from eventlab import ConfigurationError, Projector, Subscriber
from eventlab.memory import MemoryBackend, MemoryEventStore
from eventlab.samples import OrderTotals


async def handler(event: Any) -> None:
    return None


@pytest.mark.parametrize("lease", [1e308, math.inf, math.nan, -1, 0, True, "3", 86_400.5])
def test_a_lease_that_is_not_a_sensible_number_of_seconds_is_refused(lease: Any) -> None:
    store = MemoryEventStore(MemoryBackend())
    with pytest.raises(ConfigurationError, match="lease must be a positive number"):
        Subscriber(store, "s", handler, lease=lease)


def test_an_option_a_subscription_does_not_take_is_named() -> None:
    store = MemoryEventStore(MemoryBackend())
    with pytest.raises(ConfigurationError, match="'bogus'"):
        Subscriber(store, "s", handler, bogus=1)
    with pytest.raises(ConfigurationError, match="'bogus'"):
        Projector(store, OrderTotals(), bogus=1)
    assert Subscriber(store, "s", handler, lease=86_400).name == "s"

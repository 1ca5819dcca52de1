"""A pytest plugin: a MongoDB for tests, real-wire, started once per session.

Enable it with ``-p eventlab.testing`` (or ``pytest_plugins = ["eventlab.testing"]``). It provides:

* ``mongo_uri`` (session): ``$EVENTLAB_TEST_MONGODB_URI`` when set (e.g. a real replica set),
  else the URI of an :class:`~eventlab.embedded.EmbeddedMongo` started with fail points enabled.
* ``mongo_server`` (session): that embedded server, or ``None`` with an external URI.
* ``database_name`` (function): a fresh database name per test, dropped afterwards.

and :func:`eventually`, for a test to wait on a condition instead of sleeping.

The same suite therefore runs unchanged against the embedded server and a real deployment.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest

from .embedded import EmbeddedMongo

TEST_URI_ENV_VAR = "EVENTLAB_TEST_MONGODB_URI"


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[EmbeddedMongo | None]:
    """The embedded server for this test session (``None`` when an external URI is used)."""
    if os.environ.get(TEST_URI_ENV_VAR):
        yield None
        return
    server = EmbeddedMongo(enable_test_commands=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_uri(mongo_server: EmbeddedMongo | None) -> str:
    """URI of the deployment the tests run against."""
    external = os.environ.get(TEST_URI_ENV_VAR)
    if external:
        return external
    assert mongo_server is not None
    return mongo_server.uri


@pytest.fixture
def database_name(mongo_uri: str) -> Iterator[str]:
    """A database name unique to this test; the database is dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    from pymongo import MongoClient

    client: MongoClient[dict[str, object]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(name)
    except Exception:  # pragma: no cover - the server may have been killed by the test
        pass
    finally:
        client.close()


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], what: str, *, seconds: float = 60
) -> None:
    """Return as soon as ``condition()`` holds (a function or a coroutine function, checked
    every 10 ms); after ``seconds`` fail with ``stalled: <what>``.

    ``seconds`` bounds a stall, not a latency: the test does not depend on how fast the
    machine is, only on the condition becoming true at all.
    """
    deadline = time.monotonic() + seconds
    while True:
        outcome = condition()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"stalled: {what} (not true after {seconds:g} s)")
        await asyncio.sleep(0.01)

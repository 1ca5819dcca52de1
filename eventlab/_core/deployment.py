"""Which deployment a process uses when it is given no URI: ``$EVENTLAB_MONGODB_URI``, else the
``eventlab serve`` running in the working directory. The CLI,
:meth:`MongoConnectionManager.from_env <eventlab.MongoConnectionManager.from_env>` and the
``eventsourcing`` module find it the same way, with this module.

``eventlab serve`` claims the directory with an exclusive lock on ``.eventlab/serve.lock``,
held while it runs and released by the kernel however it ends (a crash or SIGKILL leaves no
false claim behind), and writes ``.eventlab/serve.json`` (its URI) once its server answers.
A reader trusts the record only while the lock is held. Standard library only: the CLI reads
it before anything heavy is imported.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

URI_ENV_VAR = "EVENTLAB_MONGODB_URI"
"""Environment variable naming the deployment to use instead of the embedded server."""

DEFAULT_STORAGE = Path(".eventlab/data")
"""Where ``eventlab serve`` and the data commands keep the embedded server's data."""

SERVE_FILE = Path(".eventlab/serve.json")
"""Written by ``eventlab serve`` while it runs: its URI, process ids and storage."""

SERVE_LOCK = Path(".eventlab/serve.lock")
"""Locked by ``eventlab serve`` while it runs: one serve per directory."""


def running_serve(storage: Path = DEFAULT_STORAGE) -> str | None:
    """The URI of an ``eventlab serve`` running here on ``storage``, if one is."""
    record = serve_record()
    if record is None or Path(str(record.get("storage"))) != storage.resolve():
        return None
    uri = record.get("uri")
    return uri if isinstance(uri, str) else None


def serve_record() -> dict[str, Any] | None:
    """What the ``eventlab serve`` running in this directory wrote (``None``: none runs, or it
    has not answered yet)."""
    if not claimed():
        return None
    try:
        record = json.loads(SERVE_FILE.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def claimed() -> bool:
    """Whether a process holds this directory's serve lock."""
    try:
        fd = os.open(SERVE_LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases a shared lock taken just now
    return False


class ServeClaim:
    """This directory's claim by one ``eventlab serve``: the lock, then the record.

    :meth:`take` fails (returns ``False``) while another process holds the claim, and then
    nothing is touched. The record is written by :meth:`publish` and removed by
    :meth:`release`, only by the holder of the lock.
    """

    def __init__(self) -> None:
        self._fd: int | None = None

    def take(self) -> bool:
        SERVE_LOCK.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(SERVE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        # A record left by a serve that was killed describes a server that is gone.
        with contextlib.suppress(FileNotFoundError):
            SERVE_FILE.unlink()
        return True

    def publish(self, record: dict[str, Any]) -> None:
        """Write the record whole (a reader never sees half of it)."""
        assert self._fd is not None, "publish() before take()"
        partial = SERVE_FILE.with_suffix(".json.partial")
        partial.write_text(json.dumps(record))
        os.replace(partial, SERVE_FILE)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            SERVE_FILE.unlink()
        os.close(fd)

"""``eventlab serve``: the embedded server in the foreground, as this directory's server.

A second serve in a directory, or a port something already listens on, is refused before
anything is created; then it claims the directory (one serve per directory, a lock the kernel
releases however it ends), starts the server, and only once its own server answers tells the
directory its URI. Whatever happens to it, it leaves the directory as it found it; a server
that dies under it is an error (exit code 1), Ctrl-C and SIGTERM a clean stop (0).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from .._core.deployment import (
    DEFAULT_STORAGE,
    SERVE_FILE,
    URI_ENV_VAR,
    ServeClaim,
    claimed,
    serve_record,
)
from .._core.errors import EventlabError
from ._app import CommandLineError
from ._support import fail

if TYPE_CHECKING:
    from ..embedded import EmbeddedMongo

_CHECK_EVERY = 0.2
"""Seconds between looks at the server while serving (how soon a crash is reported)."""


class _Stop(Exception):
    """SIGTERM: stop as Ctrl-C does."""


def serve_command(
    storage: Annotated[
        Path, typer.Option(metavar="DIR", help="Where the data lives (kept across restarts).")
    ] = DEFAULT_STORAGE,
    port: Annotated[
        int,
        typer.Option(
            metavar="PORT",
            show_default=False,
            help="Port on 127.0.0.1 (default: a free one; 27017 is mongod's).",
        ),
    ] = 0,
    test_commands: Annotated[
        bool, typer.Option("--test-commands", help="Enable fail points (configureFailPoint).")
    ] = False,
) -> None:
    """Run the embedded server in the foreground until Ctrl-C."""
    if not 0 <= port <= 65535:
        raise CommandLineError(
            f"--port must be a TCP port from 1 to 65535 (0: a free one), got {port}"
        )
    if storage.exists() and not storage.is_dir():
        raise CommandLineError(f"--storage {storage} is a file, not a directory")
    try:
        claim = _claim_directory(storage, port)
    except OSError as exc:
        fail(f"--storage {storage}: {exc.strerror or exc}")
    try:
        _serve(storage, port, test_commands, claim)
    finally:
        if claim is not None:
            claim.release()


def _claim_directory(storage: Path, port: int) -> ServeClaim | None:
    """This directory's claim, for a serve on its default storage (``None``: another storage,
    which the directory's commands do not use). Refused before anything is created here:
    another serve in this directory, or a port already taken."""
    from ..embedded import port_is_free

    here = storage.resolve() == DEFAULT_STORAGE.resolve()
    if here and claimed():
        _already_serving()
    if port and not port_is_free(port):
        fail(
            f"port {port} on 127.0.0.1 is in use by another process (another server?): "
            "choose another --port, or none for a free one"
        )
    if not here:
        return None
    claim = ServeClaim()
    if not claim.take():  # another serve claimed it a moment ago
        _already_serving()
    return claim


def _already_serving() -> NoReturn:
    running = serve_record() or {}
    where = f" on {running['uri']}, pid {running.get('pid')}" if "uri" in running else ""
    fail(
        f"`eventlab serve` already runs in this directory{where}: the commands here use it; "
        "stop it first to start another (or pass --storage for a second server)"
    )


def _serve(storage: Path, port: int, test_commands: bool, claim: ServeClaim | None) -> None:
    from ..embedded import EmbeddedMongo

    server = EmbeddedMongo(
        storage_path=storage, port=port or None, enable_test_commands=test_commands
    )
    try:
        server.start()
    except EventlabError as exc:
        fail(str(exc).splitlines()[0])
    except OSError as exc:  # a storage directory that cannot be made or written
        fail(f"--storage {storage}: {exc.strerror or exc}")
    # Read once while the server is known to run: it may die the moment the record is
    # published, and the banner must still print what was published.
    try:
        uri = server.uri
    except EventlabError:
        code = server.exit_code
        server.stop()
        fail(f"the embedded server stopped by itself as it started (exit code {code})")
    try:
        if claim is not None:
            claim.publish(
                {
                    "uri": uri,
                    "pid": os.getpid(),
                    "server_pid": server.pid,
                    "storage": str(storage.resolve()),
                }
            )
        typer.echo(f"eventlab embedded server on {uri}")
        typer.echo(f"data in {server.storage_path} (durable commits); Ctrl-C to stop")
        if claim is not None:
            typer.echo(f"the eventlab commands run here use it ({SERVE_FILE}); elsewhere:")
        else:
            typer.echo("to use it:")
        typer.echo(f"  export {URI_ENV_VAR}='{uri}'")
        code = _wait_for_stop(server)
    finally:
        server.stop()
    if code is not None:
        fail(
            f"the embedded server stopped by itself (exit code {code}); its log: "
            f"{Path(server.storage_path or storage).parent / 'secantusd.log'}"
        )
    typer.echo("stopped")


def _wait_for_stop(server: EmbeddedMongo) -> int | None:
    """Serve until Ctrl-C or SIGTERM (``None``), or until the server exits (its exit code)."""

    def stop(*_: Any) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while server.running:
            time.sleep(_CHECK_EVERY)
    except (KeyboardInterrupt, _Stop):
        return None
    finally:
        signal.signal(signal.SIGTERM, previous)
    return server.exit_code

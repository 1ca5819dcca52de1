"""The server a working directory uses: a running ``eventlab serve``, found the same way by the
CLI, the ``eventsourcing`` module and anything else that opens a store without a URI."""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_STORAGE = Path(".eventlab/data")
"""Where ``eventlab serve`` and the data commands keep the embedded server's data."""

SERVE_FILE = Path(".eventlab/serve.json")
"""Written by ``eventlab serve`` while it runs: its URI, process id and storage."""


def running_serve(storage: Path = DEFAULT_STORAGE) -> str | None:
    """The URI of an ``eventlab serve`` running here on ``storage``, if one is."""
    try:
        record = json.loads(SERVE_FILE.read_text())
        pid, uri = int(record["pid"]), str(record["uri"])
        same_storage = Path(record["storage"]) == storage.resolve()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None  # a serve that died without cleaning up
    return uri if same_storage else None

"""The ``eventlab`` command line (the console script ``eventlab``, ``python -m eventlab.cli``).

What it holds: the application and its parsing (``_app``), the options commands share
(``_options``), one module per group of commands (``_tour``, ``_serve``, ``_files``: import
and export, ``_store``: migrate, stats and gaps, ``_lifecycle``: delete, truncate, retention and
scavenge, ``_forget``: a subject forgotten, ``_replay``, ``_projections``: projections and
rebuild, ``_check``: a deployment verified, ``_archive``: archive and restore), and what they
share (``_support``: running a command, its connection, plots; ``_targets``: the database and
collection a command reads exist; ``_user_code``: ``--registry`` and ``--projection``
references to your code).

What it may import: at import time the standard library, typer and eventlab's light modules
(errors, the deployment record); the driver, pandas, pyarrow, matplotlib and the embedded
server only inside the command that uses them, so that ``eventlab --help`` and a usage error
start at once (``tests/test_cli_help.py`` checks it). Commands are registered below, in the
order ``eventlab --help`` lists them.
"""

from __future__ import annotations

from ._app import Command, app, main
from ._archive import archive_app
from ._check import check_command
from ._files import export_command, import_command
from ._forget import forget_command
from ._lifecycle import delete_command, retention_command, scavenge_command, truncate_command
from ._projections import projections_command, rebuild_command
from ._replay import replay_command
from ._serve import serve_command
from ._store import gaps_command, migrate_command, stats_command
from ._tour import tour_command

for _name, _command in (
    ("tour", tour_command),
    ("serve", serve_command),
    ("migrate", migrate_command),
    ("import", import_command),
    ("export", export_command),
    ("forget", forget_command),
    ("stats", stats_command),
    ("gaps", gaps_command),
    ("delete", delete_command),
    ("truncate", truncate_command),
    ("retention", retention_command),
    ("scavenge", scavenge_command),
    ("replay", replay_command),
    ("projections", projections_command),
    ("rebuild", rebuild_command),
    ("check", check_command),
):
    app.command(_name, cls=Command)(_command)
app.add_typer(archive_app, name="archive")

__all__ = ["app", "main"]

"""``eventlab projections`` and ``eventlab rebuild``: read models, the samples' or yours
(``--projection module:attr``)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from .._core.errors import EventlabError
from ._keys import CheckedKeys
from ._options import (
    CollectionOption,
    DatabaseOption,
    KeysCollectionOption,
    ProjectionOption,
    UriOption,
)
from ._support import UserCodeError, connection, run_command
from ._targets import check_store_exists
from ._user_code import load_projection


def projections_command(
    context: typer.Context,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
    projection: ProjectionOption = None,
) -> None:
    """Read models: generation, checkpoint, lag, rows."""
    from .._follow.projector import Projector
    from .._mongo.event_store import MongoEventStore

    async def run() -> None:
        known = _projections(projection)
        async with connection(uri, database, announce=False, persistent=True) as conn:
            await check_store_exists(conn, events_collection)
            store = MongoEventStore(conn, events_collection=events_collection)
            typer.echo(
                f"{'projection':<14} {'version':>7} {'gen':>4} {'position':>9} {'behind':>7} "
                f"{'seconds':>8} {'rows':>7}"
            )
            lagging = []
            read_models = store.backend.read_models()
            made = [p for p in known.values() if await read_models.exists(type(p).name)]
            if not projection:  # the samples: only those built in this database
                known = {type(p).name: p for p in made}
            for found in known.values():
                if found not in made:  # status would make it: a status command writes nothing
                    typer.echo(f"{type(found).name:<14} not built: `eventlab rebuild` builds it")
                    continue
                s = await Projector(store, found).status()
                stale = "  (stale: rebuild)" if s.stale else ""
                typer.echo(
                    f"{s.name:<14} {s.version:>7} {s.generation:>4} {s.position:>9,} "
                    f"{s.behind:>7,} {s.seconds_behind:>8.1f} {s.rows:>7,}{stale}"
                )
                if s.behind or s.stale:
                    lagging.append(s.name)
            if not known:
                typer.echo(
                    "no read models of the sample projections in this database: pass yours "
                    "with --projection module:attr"
                )
            if lagging:
                typer.echo(
                    f"\n{', '.join(lagging)} not caught up: a Projector running in your service "
                    "catches up by itself (Projector(store, ...).start()); here, "
                    f"`eventlab rebuild {lagging[0]}` builds it afresh from the whole log"
                )

    run_command(context, run)


def rebuild_command(
    context: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME",
            help="The projection's name: a sample's (order_totals, open_tasks) or one of "
            "--projection.",
        ),
    ],
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
    projection: ProjectionOption = None,
    keys_collection: KeysCollectionOption = "personal_keys",
) -> None:
    """Rebuild a read model beside the live one, then swap it in."""
    from .._follow.projector import Projector
    from .._mongo.event_store import MongoEventStore
    from .._mongo.keys import MongoKeyStore

    async def run() -> None:
        known = _projections(projection)
        if name not in known:
            raise EventlabError(f"no projection named {name!r}; known: {', '.join(sorted(known))}")
        async with connection(uri, database, announce=False, persistent=True) as conn:
            await check_store_exists(conn, events_collection)
            # With the key store: the handlers see personal values opened, or redacted.
            store = MongoEventStore(
                conn,
                events_collection=events_collection,
                keys=CheckedKeys(MongoKeyStore(conn, keys_collection)),
            )
            started = time.perf_counter()
            try:
                status = await Projector(store, known[name]).rebuild()
            except EventlabError:
                raise
            except Exception as exc:
                raise UserCodeError(
                    f"projection {name} raised {type(exc).__name__}: {exc} (in your code; "
                    "rerun with --debug for the traceback)"
                ) from exc
            typer.echo(
                f"rebuilt {status.name}: generation {status.generation}, {status.rows:,} rows "
                f"at position {status.position:,} in {time.perf_counter() - started:.1f}s"
            )

    run_command(context, run)


def _projections(references: list[str] | None) -> dict[str, Any]:
    """The projections named by ``--projection`` (default: the samples'), by name."""
    if not references:
        from ..samples import SAMPLE_PROJECTIONS

        return {name: made() for name, made in SAMPLE_PROJECTIONS.items()}
    found: dict[str, Any] = {}
    for reference in references:
        projection = load_projection(reference)
        name = type(projection).name
        if name in found:
            raise EventlabError(f"--projection: two projections are named {name!r}")
        found[name] = projection
    return found

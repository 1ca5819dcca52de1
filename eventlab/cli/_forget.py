"""``eventlab forget``: a subject's data key destroyed (crypto-shredding, docs/forgetting.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from ._keys import refuse_unknown_subject
from ._options import CollectionOption, DatabaseOption, KeysCollectionOption, UriOption
from ._support import connection, run_command
from ._targets import check_store_exists


def forget_command(
    context: typer.Context,
    subject: Annotated[
        str, typer.Argument(metavar="SUBJECT", help="The subject id whose data to forget.")
    ],
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
    keys_collection: KeysCollectionOption = "personal_keys",
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Say what would become unreadable; change nothing."),
    ] = False,
) -> None:
    """Forget SUBJECT: destroy its data key, so that its personal fields read as <redacted>
    everywhere from now on, and delete the snapshots of its streams.

    Cannot be undone. Copies made outside eventlab (backups holding the key collection,
    files of plaintext) are not reached: docs/forgetting.md.
    """
    from .._core.personal import check_subject
    from .._mongo.event_store import MongoEventStore
    from .._mongo.keys import MongoKeyStore

    async def run() -> None:
        checked = check_subject(subject)
        async with connection(uri, database, announce=False, persistent=True) as conn:
            await check_store_exists(conn, events_collection)
            keys = MongoKeyStore(conn, keys_collection)
            store = MongoEventStore(conn, events_collection=events_collection, keys=keys)
            await refuse_unknown_subject(store, keys, checked)
            result = await store.forget(checked, dry_run=dry_run)
            typer.echo(("dry run: " if dry_run else "") + result.summary())
            if result.streams and dry_run:
                shown = ", ".join(result.streams[:20])
                more = f" and {len(result.streams) - 20:,} more" if len(result.streams) > 20 else ""
                typer.echo(f"streams: {shown}{more}")

    run_command(context, run)

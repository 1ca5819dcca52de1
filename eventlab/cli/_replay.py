"""``eventlab replay``: one aggregate rebuilt step by step, from the sample domains or yours
(``--registry``, ``--aggregate``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .._core.errors import EventlabError
from ._app import CommandLineError
from ._keys import CheckedKeys
from ._options import (
    AggregateOption,
    CollectionOption,
    DatabaseOption,
    KeysCollectionOption,
    RegistryOption,
    UriOption,
)
from ._support import changes_line, connection, run_command
from ._targets import check_store_exists
from ._user_code import aggregate_class_beside, load_aggregate_class, load_registry


def replay_command(
    context: typer.Context,
    aggregate_id: Annotated[
        str, typer.Argument(metavar="AGGREGATE_ID", help="The stream to rebuild.")
    ],
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
    registry: RegistryOption = None,
    aggregate: AggregateOption = None,
    keys_collection: KeysCollectionOption = "personal_keys",
) -> None:
    """Rebuild one aggregate step by step: what each event changed."""
    from .._mongo.event_store import MongoEventStore
    from .._mongo.keys import MongoKeyStore
    from ..workbench import replay

    async def run() -> None:
        if aggregate is not None and registry is None:
            raise CommandLineError("--aggregate needs --registry (the registry of its events)")
        events_registry = load_registry(registry) if registry is not None else None
        named_class = load_aggregate_class(aggregate) if aggregate is not None else None
        async with connection(uri, database, announce=False, persistent=True) as conn:
            await check_store_exists(conn, events_collection)
            store = MongoEventStore(
                conn,
                events_collection=events_collection,
                keys=CheckedKeys(MongoKeyStore(conn, keys_collection)),
            )
            events = await store.read_stream(aggregate_id)
        if not events:
            raise EventlabError(f"no events stored for {aggregate_id!r}")
        kind = events[0].aggregate_type
        if registry is None:
            aggregate_class, events_registry = _sample_domain(kind)
        else:
            aggregate_class = named_class or aggregate_class_beside(registry, kind)
        trace = replay(aggregate_class, events, registry=events_registry)
        for step in trace.steps:
            marker = f"  ERROR {step.error}" if step.error else ""
            typer.echo(
                f"v{step.version:<3} {step.event_type:<20} {changes_line(step.changes)}{marker}"
            )

    run_command(context, run)


def _sample_domain(aggregate_type: str) -> tuple[type[Any], Any]:
    from ..samples import Chat, Order, chat_registry, order_registry

    classes: dict[str, type[Any]] = {"Order": Order, "Chat": Chat}
    if aggregate_type not in classes:
        raise EventlabError(
            f"the stream's aggregate type is {aggregate_type!r}, not one of the sample domains' "
            "(Order, Chat): pass your --registry module:attr (and --aggregate module:Class)"
        )
    return classes[aggregate_type], chat_registry(order_registry())

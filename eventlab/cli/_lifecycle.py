"""``eventlab delete``, ``truncate``, ``retention`` and ``scavenge``: a stream's lifecycle,
each with ``--dry-run`` (docs/lifecycle.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._options import (
    BatchSizeOption,
    BeforeVersionOption,
    CollectionOption,
    DatabaseOption,
    DryRunOption,
    ExpectedVersionOption,
    MaxAgeOption,
    MaxCountOption,
    ReasonOption,
    StreamArgument,
    UriOption,
    duration_seconds,
)
from ._support import connection, count_of, run_command
from ._targets import check_store_exists

if TYPE_CHECKING:
    from .._core.lifecycle import StreamMetadata
    from .._mongo.event_store import MongoEventStore


def _expected(value: str) -> Any:
    from .._core.records import ExpectedVersion

    named = {"any": ExpectedVersion.ANY, "exists": ExpectedVersion.STREAM_EXISTS}
    return named[value] if value in named else int(value)


async def _store(conn: Any, events_collection: str) -> MongoEventStore:
    from .._mongo.event_store import MongoEventStore

    await check_store_exists(conn, events_collection)
    return MongoEventStore(conn, events_collection=events_collection)


async def _as_the_run_reads(store: MongoEventStore, stream: str) -> tuple[StreamMetadata, int]:
    """A dry run's reads: the stream's metadata and version, a permanently deleted stream
    refused by the rule and with the error the operation itself raises (exit code 1)."""
    from .._core.lifecycle import unless_permanent

    metadata = unless_permanent(stream, await store.lifecycle().metadata(stream))
    return metadata, await store.get_current_version(stream)


def delete_command(
    context: typer.Context,
    stream: StreamArgument,
    expected_version: ExpectedVersionOption,
    permanent: Annotated[
        bool,
        typer.Option(
            "--permanent", help="For good: the stream can never be read or appended to again."
        ),
    ] = False,
    reason: ReasonOption = None,
    dry_run: DryRunOption = False,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
) -> None:
    """Delete a stream at an expected version (soft, or --permanent).

    A soft-deleted stream reads as empty, and appending at its new version continues it.
    """
    how = "permanently" if permanent else "soft"

    async def run() -> None:
        async with connection(uri, database, announce=False, persistent=True) as conn:
            store = await _store(conn, events_collection)
            lifecycle = store.lifecycle()
            if dry_run:
                from .._core.appends import conflict
                from .._core.records import ExpectedVersion

                _, current = await _as_the_run_reads(store, stream)
                expected = _expected(expected_version)
                if (isinstance(expected, int) and expected != current) or (
                    expected is ExpectedVersion.STREAM_EXISTS and current == 0
                ):
                    raise conflict(stream, expected, current)  # the append's own refusal
                typer.echo(
                    f"would delete stream {stream!r} ({how}) at version {current}: its marker "
                    f"at version {current + 1}; nothing written (dry run)"
                )
                return
            marker = await lifecycle.delete(
                stream, _expected(expected_version), permanent=permanent, reason=reason
            )
            typer.echo(
                f"deleted stream {stream!r} ({how}): marker at version {marker.version}, "
                f"position {marker.position}"
            )

    run_command(context, run)


def truncate_command(
    context: typer.Context,
    stream: StreamArgument,
    before: BeforeVersionOption,
    dry_run: DryRunOption = False,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
) -> None:
    """Truncate a stream: reads start at --before; `scavenge` removes the versions below."""

    async def run() -> None:
        async with connection(uri, database, announce=False, persistent=True) as conn:
            store = await _store(conn, events_collection)
            lifecycle = store.lifecycle()
            if dry_run:
                from .._core.lifecycle import check_truncation

                metadata, current = await _as_the_run_reads(store, stream)
                check_truncation(stream, before, current)
                hidden = max(0, before - max(1, metadata.truncate_before))
                typer.echo(
                    f"would truncate stream {stream!r} before version {before}: "
                    f"{count_of(hidden, 'more version')} hidden; nothing written (dry run)"
                )
                return
            metadata = await lifecycle.truncate(stream, before)
            typer.echo(f"stream {stream!r}: reads start at version {metadata.truncate_before}")

    run_command(context, run)


def retention_command(
    context: typer.Context,
    stream: StreamArgument,
    max_count: MaxCountOption = None,
    max_age: MaxAgeOption = None,
    dry_run: DryRunOption = False,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
) -> None:
    """Cap a stream by count or age (neither option: uncapped); `scavenge` removes the rest."""
    age = None if max_age is None else duration_seconds(max_age)
    rules = f"max count {max_count or 'none'}, max age {max_age or 'none'}"

    async def run() -> None:
        async with connection(uri, database, announce=False, persistent=True) as conn:
            store = await _store(conn, events_collection)
            if dry_run:
                _, current = await _as_the_run_reads(store, stream)
                hidden = count_of(
                    0 if max_count is None else max(0, current - max_count), "version"
                )
                typer.echo(
                    f"would set the retention of stream {stream!r}: {rules} ({hidden} hidden by "
                    "count); nothing written (dry run)"
                )
                return
            await store.lifecycle().set_retention(stream, max_count=max_count, max_age=age)
            typer.echo(f"stream {stream!r}: {rules}")

    run_command(context, run)


def scavenge_command(
    context: typer.Context,
    dry_run: DryRunOption = False,
    batch_size: BatchSizeOption = 1000,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
) -> None:
    """Remove what deletion, truncation and retention allow, leaving tombstones.

    Each removed event becomes a tombstone at its position (followers report a gap there).
    Safe to interrupt: a rerun completes it.
    """

    async def run() -> None:
        async with connection(uri, database, announce=False, persistent=True) as conn:
            store = await _store(conn, events_collection)
            report = await store.lifecycle().scavenge(dry_run=dry_run, batch_size=batch_size)
            verb = "would remove" if dry_run else "removed"
            for stream, removed in sorted(report.by_stream.items()):
                typer.echo(f"  {stream:<40} {removed:>10,}")
            typer.echo(
                f"{verb} {count_of(report.removed, 'event')} from "
                f"{count_of(len(report.by_stream), 'stream')} ({report.streams:,} with a policy); "
                f"{verb} {count_of(report.snapshots_deleted, 'stale snapshot')}"
                + ("; nothing written (dry run)" if dry_run else "")
            )

    run_command(context, run)

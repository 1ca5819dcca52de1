"""What a frame selects: filters checked once, then pushed to the server or applied locally."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._core.checks import check_int, check_name, check_positive, check_types
from .._core.errors import ConfigurationError
from ..ports import LogSelection

_MAX_SELECTED_NAMES = 10_000


@dataclass(frozen=True, slots=True)
class FrameQuery(LogSelection):
    """The filters of :func:`~eventlab.workbench.read_frame`, checked (an operator dict, a naive
    datetime or a negative count is refused here, before anything is read)."""

    through: int | None = None

    @classmethod
    def of(
        cls,
        *,
        streams: str | Iterable[str] | None = None,
        event_types: Iterable[str] | None = None,
        aggregate_types: Iterable[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        time: str = "recorded_at",
        after: int | None = None,
        through: int | None = None,
        last: int | None = None,
    ) -> FrameQuery:
        if time not in ("recorded_at", "occurred_at"):
            raise ConfigurationError(f"time must be 'recorded_at' or 'occurred_at', got {time!r}")
        query = cls(
            streams=_names(streams, "stream"),
            event_types=None if event_types is None else _checked_types(event_types, "event type"),
            aggregate_types=(
                None
                if aggregate_types is None
                else _checked_types(aggregate_types, "aggregate type")
            ),
            since=_instant(since, "since"),
            until=_instant(until, "until"),
            time=time,  # type: ignore[arg-type]
            after=0 if after is None else check_int(after, "after"),
            through=None if through is None else check_int(through, "through"),
            last=None if last is None else check_positive(last, "last"),
        )
        for argument, names, every in (
            ("streams", query.streams, "stream"),
            ("event_types", query.event_types, "event type"),
            ("aggregate_types", query.aggregate_types, "aggregate type"),
        ):
            _not_empty(argument, names, every)
        if query.since and query.until and query.until <= query.since:
            raise ConfigurationError(f"until ({query.until}) must be after since ({query.since})")
        # Stored times are whole milliseconds (BSON's): a bound finer than that is rounded up
        # to the next one, which selects exactly the times the bound itself selects.
        return replace(
            query, since=_to_millisecond(query.since), until=_to_millisecond(query.until)
        )

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The same selection made on a frame of the whole log (a cached one)."""
        keep = frame["position"] > self.after
        if self.through is not None:
            keep &= frame["position"] <= self.through
        if self.streams is not None:
            keep &= frame["aggregate_id"].isin(self.streams)
        if self.event_types is not None:
            keep &= frame["event_type"].isin(self.event_types)
        if self.aggregate_types is not None:
            keep &= frame["aggregate_type"].isin(self.aggregate_types)
        if self.since is not None:
            keep &= frame[self.time] >= self.since
        if self.until is not None:
            keep &= frame[self.time] < self.until
        selected = frame[keep.fillna(False).astype(bool)]
        if self.last is not None:
            selected = selected.iloc[-self.last :]
        return selected.reset_index(drop=True)


def apply_arrow(query: FrameQuery, table: pa.Table) -> pa.Table:
    """:meth:`FrameQuery.apply` on an Arrow table of the whole log (Polars, the flat export)."""
    keep = pc.greater(table["position"], query.after)
    if query.through is not None:
        keep = pc.and_(keep, pc.less_equal(table["position"], query.through))
    for column, names in (
        ("aggregate_id", query.streams),
        ("event_type", query.event_types),
        ("aggregate_type", query.aggregate_types),
    ):
        if names is not None:
            keep = pc.and_(keep, pc.is_in(table[column], pa.array(names, pa.string())))
    if query.since is not None:
        keep = pc.and_(keep, pc.greater_equal(table[query.time], pa.scalar(query.since, _TIME)))
    if query.until is not None:
        keep = pc.and_(keep, pc.less(table[query.time], pa.scalar(query.until, _TIME)))
    selected = table.filter(pc.fill_null(keep, False))
    if query.last is not None:
        selected = selected.slice(max(0, selected.num_rows - query.last))
    return selected


_TIME = pa.timestamp("us", tz="UTC")


def _not_empty(argument: str, names: tuple[str, ...] | None, every: str) -> None:
    """An empty selection of names is refused: "none of them" and "no filter" are easily
    confused, and a read must never mean one where the caller meant the other."""
    if names is not None and not names:
        raise ConfigurationError(f"{argument} is empty: pass None for every {every}")


def _names(value: str | Iterable[str] | None, kind: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if isinstance(value, bytes | dict) or not isinstance(value, Iterable):
        raise ConfigurationError(f"{kind}s must be a name or names, got {type(value).__name__}")
    names = tuple(check_name(v, f"a {kind} id") for v in value)
    return _bounded(names, kind)


def _checked_types(value: Iterable[str], kind: str) -> tuple[str, ...]:
    if isinstance(value, bytes):
        raise ConfigurationError(f"{kind} names must be strings, got bytes")
    return _bounded(tuple(check_types(value, kind)), kind)


def _bounded(names: tuple[str, ...], kind: str) -> tuple[str, ...]:
    if len(names) > _MAX_SELECTED_NAMES:
        raise ConfigurationError(
            f"at most {_MAX_SELECTED_NAMES:,} {kind}s in one selection, got {len(names):,}"
        )
    return names


def _to_millisecond(value: datetime | None) -> datetime | None:
    """``value`` rounded up to a whole millisecond."""
    if value is None or not value.microsecond % 1000:
        return value
    try:
        return value.replace(microsecond=value.microsecond // 1000 * 1000) + timedelta(
            milliseconds=1
        )
    except OverflowError as exc:
        raise ConfigurationError(f"{value.isoformat()} is past the last date") from exc


def _instant(value: Any, name: str) -> datetime | None:
    """A tz-aware datetime, or ISO text: without an offset, text means UTC (the log records
    UTC). A naive ``datetime`` object is refused: in Python it often means local time. Finer
    than a microsecond (text or a pandas ``Timestamp``): rounded up to the next microsecond
    (and then to a millisecond by :meth:`FrameQuery.of`)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            stamp = pd.Timestamp(value)
        except ValueError as exc:
            raise ConfigurationError(f"{name} is not a date and time: {value[:60]!r}") from exc
        if pd.isna(stamp):
            raise ConfigurationError(f"{name} is not a date and time: {value[:60]!r}")
        value = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    if isinstance(value, pd.Timestamp):
        if value.nanosecond:
            value = value.ceil("us")
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise ConfigurationError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise ConfigurationError(
            f"{name} must be timezone-aware (the log records UTC; ISO text without an offset "
            f"is read as UTC), got the naive datetime {value.isoformat()}"
        )
    return value

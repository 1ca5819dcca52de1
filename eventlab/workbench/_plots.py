"""The workbench's plots: events over time, and a gap report's picture. Each title says what
the figure shows; dates read as dates."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from .._core.errors import ConfigurationError


class GapTables(Protocol):
    """What the gap plot reads of a :class:`~eventlab.workbench.GapReport`."""

    @property
    def position_gaps(self) -> pd.DataFrame: ...

    @property
    def version_gaps(self) -> pd.DataFrame: ...

    @property
    def duplicate_versions(self) -> pd.DataFrame: ...

    @property
    def streams_not_starting_at_1(self) -> pd.DataFrame: ...

    @property
    def out_of_order(self) -> pd.DataFrame: ...

    @property
    def clean(self) -> bool: ...

    def summary(self) -> pd.Series: ...


def readable_dates(axis: Any) -> None:
    """Date ticks a reader understands at a glance (``Jan 05 09:00``, with the year or day
    written once in the corner), not offsets like ``55:44.400000``."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    axis.set_major_locator(locator)
    axis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def plot_timeline(
    frame: pd.DataFrame,
    *,
    by: str | None = "aggregate_type",
    freq: str = "1h",
    time: Literal["recorded_at", "occurred_at"] = "recorded_at",
) -> Any:
    """A matplotlib figure: events per ``freq`` (a pandas offset: ``"1h"``, ``"1D"``) over
    ``time``, one line per value of the column ``by`` (``None``: one line for all)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if time not in ("recorded_at", "occurred_at"):
        raise ConfigurationError(f"time must be 'recorded_at' or 'occurred_at', not {time!r}")
    if by is not None and not isinstance(by, str):
        raise ConfigurationError(f"by must be a column name or None, not {by!r}")
    if not isinstance(freq, str):
        raise ConfigurationError(f"freq must be a pandas frequency like '1h', not {freq!r}")
    needed = {time} | ({by} if by else set())
    if missing := needed - set(frame.columns):
        raise ConfigurationError(f"the frame lacks columns {sorted(missing)}")
    try:
        step = pd.tseries.frequencies.to_offset(freq)
    except ValueError as exc:
        raise ConfigurationError(f"freq {freq!r} is not a pandas frequency like '1h'") from exc
    fig, ax = plt.subplots(figsize=(11, 4))
    timed = frame.dropna(subset=[time]).set_index(time)
    # Resampled per group: each line covers its own group's span (zero within it where a
    # period had no event), and stops where its data stops instead of running on as zeros.
    counts = (
        timed.groupby(by, observed=True).resample(step).size().unstack(0)
        if by
        else timed.resample(step).size().to_frame("events")
    )
    for name in counts.columns:
        ax.plot(counts.index, counts[name], label=str(name), drawstyle="steps-post")
    readable_dates(ax.xaxis)
    per = f"per {_period(step)}"
    ax.set_title(f"Events {per}" + (f", by {by.replace('_', ' ')}" if by else ""))
    ax.set_xlabel(f"{time.replace('_', ' ')} (UTC)")
    ax.set_ylabel(f"events {per}")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 2.5 events
    if len(counts.columns):
        # Beside the plot, not on it: a busy period must not hide under the legend.
        ax.legend(
            title=by.replace("_", " ") if by else None,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
        )
    else:
        ax.text(0.5, 0.5, "no events", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


_UNITS = {"h": "hour", "min": "minute", "s": "second", "D": "day", "W": "week", "ME": "month"}


def _period(step: Any) -> str:
    """``per hour``, ``per 6 hours``, ``per day``: a period as a reader says it."""
    code = step.rule_code.split("-")[0]
    unit = _UNITS.get(code)
    if unit is None:
        return str(step.freqstr)
    return unit if step.n == 1 else f"{step.n} {unit}s"


def plot_gap_report(report: GapTables, frame: pd.DataFrame | None, *, max_lanes: int) -> Any:
    """The figure of :meth:`GapReport.plot`."""
    import matplotlib.pyplot as plt

    flagged = pd.concat(
        [
            report.version_gaps["aggregate_id"],
            report.duplicate_versions["aggregate_id"],
            report.streams_not_starting_at_1["aggregate_id"],
        ]
    ).drop_duplicates()
    lanes = list(flagged.iloc[:max_lanes]) if frame is not None else []
    if lanes:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), height_ratios=[1, 2])
    else:  # no stream anomaly: no empty panel, the caption says so
        fig, top = plt.subplots(1, 1, figsize=(11, 3.6))
    _position_panel(top, report, frame, stream_lanes=bool(lanes))
    if lanes:
        assert frame is not None
        _version_lanes(bottom, report, frame, lanes)
        bottom.set_title(
            f"{len(flagged)} stream(s) with version anomalies"
            + (f" (first {max_lanes} shown)" if len(flagged) > max_lanes else "")
        )
    fig.tight_layout()
    return fig


def _position_panel(
    ax: Any, report: GapTables, frame: pd.DataFrame | None, *, stream_lanes: bool
) -> None:
    """Recorded time against position: gaps shaded, events recorded out of order marked."""
    has_events = frame is not None and len(frame) > 0
    if frame is not None and has_events:
        ordered = frame.dropna(subset=["position"]).sort_values("position")
        sample = ordered.iloc[:: max(1, len(ordered) // 20_000)]  # a million events: 20k points
        ax.plot(
            sample["position"].astype("int64"), sample["recorded_at"], ".",
            ms=2, color="tab:blue", label="stored event",
        )  # fmt: skip
        late = report.out_of_order
        if len(late):
            ax.plot(
                late["position"], late["recorded_at"], "^",
                color="tab:orange", ms=8, label="recorded before a lower position",
            )  # fmt: skip
        readable_dates(ax.yaxis)
    for n, gap in enumerate(_records(report.position_gaps)):
        ax.axvspan(
            gap["start"] - 0.5, gap["end"] + 0.5, color="tab:red", alpha=0.3,
            label="missing positions" if n == 0 else None,
        )  # fmt: skip
    ax.set_title(_position_title(report, has_events=has_events, stream_lanes=stream_lanes))
    ax.set_xlabel("global position")
    ax.set_ylabel("recorded at (UTC)")
    if has_events:  # beside the axes: a legend inside would hide a gap
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    else:
        ax.text(0.5, 0.5, "no events", ha="center", va="center", transform=ax.transAxes)
    if report.clean and has_events:
        ax.text(
            0.99, 0.04, "no anomalies", ha="right", va="bottom", transform=ax.transAxes,
            color="tab:green", fontsize=11, weight="bold",
        )  # fmt: skip


def _position_title(report: GapTables, *, has_events: bool, stream_lanes: bool) -> str:
    counts = report.summary()
    if counts["position_gaps"]:
        title = (
            f"Global positions: {counts['position_gaps']} gap(s), "
            f"{counts['missing_positions']:,} missing position(s) (shaded red)"
        )
    else:
        title = "Global positions: no gaps"
    if counts["out_of_order"]:
        title += f"; {counts['out_of_order']} recorded out of order (▲)"
    if not stream_lanes and has_events:
        title += "; every stream's versions are 1..n"
    return title


def _version_lanes(ax: Any, report: GapTables, frame: pd.DataFrame, lanes: list[str]) -> None:
    """One lane per flagged stream: stored versions, missing ones (x), duplicated ones (□)."""
    subset = frame[frame["aggregate_id"].isin(lanes)]
    for lane, stream in enumerate(lanes):
        versions = subset.loc[subset["aggregate_id"] == stream, "version"].astype("int64")
        ax.plot(
            versions, np.full(len(versions), lane), "o", color="tab:blue", ms=4,
            label="stored version" if lane == 0 else None,
        )  # fmt: skip
    # The report's own words: a version gap (a hole inside a stream) and a stream not starting
    # at 1 (the versions before its first one) are told apart, as its tables tell them.
    gaps = report.version_gaps[report.version_gaps["aggregate_id"].isin(lanes)]
    late = report.streams_not_starting_at_1
    marks = [
        ([(r["aggregate_id"], r["missing_from"], r["missing_to"]) for r in _records(gaps)],
         "x", "tab:red", "version gap (missing inside the stream)"),
        ([(r["aggregate_id"], 1, r["first_version"] - 1)
          for r in _records(late[late["aggregate_id"].isin(lanes)])],
         "|", "tab:orange", "stream not starting at 1 (versions before its first)"),
    ]  # fmt: skip
    for spans, marker, color, label in marks:
        for n, (stream, low, high) in enumerate(spans):
            ax.plot(
                range(low, high + 1), [lanes.index(stream)] * (high - low + 1), marker,
                color=color, ms=10, mew=2, label=label if n == 0 else None,
            )  # fmt: skip
    duplicates = report.duplicate_versions
    for n, row in enumerate(_records(duplicates[duplicates["aggregate_id"].isin(lanes)])):
        ax.plot(
            [row["version"]], [lanes.index(row["aggregate_id"])], "s", mfc="none",
            color="tab:purple", ms=11, label="duplicated version" if n == 0 else None,
        )  # fmt: skip
    ax.set_yticks(range(len(lanes)), lanes, fontsize=8)
    ax.set_ylabel("stream")
    ax.set_ylim(-0.7, max(len(lanes), 3) - 0.3)
    ax.set_xlabel("version in the stream")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a report table as plain dicts (ints stay ints), for plotting loops."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]

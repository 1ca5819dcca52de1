"""Gap and anomaly diagnostics over an events DataFrame, vectorized (no Python loop per row)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._errors import ConfigurationError


@dataclass(frozen=True)
class GapReport:
    """What :func:`find_gaps` found. Each attribute is a DataFrame (empty when all is well)."""

    position_gaps: pd.DataFrame
    """Missing global positions: start, end, size."""
    duplicate_positions: pd.DataFrame
    """position, count (> 1)."""
    version_gaps: pd.DataFrame
    """Holes inside a stream: aggregate_id, missing_from, missing_to, size."""
    duplicate_versions: pd.DataFrame
    """aggregate_id, version, count (> 1)."""
    streams_not_starting_at_1: pd.DataFrame
    """aggregate_id, first_version."""
    out_of_order: pd.DataFrame
    """Events recorded *before* an event with a lower position: position, recorded_at,
    latest_earlier_recorded_at (what a position-following reader can skip)."""
    events: int
    streams: int
    first_position: int | None
    last_position: int | None

    def summary(self) -> pd.Series:
        """Counts of each anomaly (and the size of what was examined), as a Series."""
        return pd.Series(self._counts(), name="count", dtype="int64")

    def _counts(self) -> dict[str, int]:
        return {
            "events": self.events,
            "streams": self.streams,
            "position_gaps": len(self.position_gaps),
            "missing_positions": int(self.position_gaps["size"].sum())
            if len(self.position_gaps)
            else 0,
            "duplicate_positions": len(self.duplicate_positions),
            "version_gaps": len(self.version_gaps),
            "duplicate_versions": len(self.duplicate_versions),
            "streams_not_starting_at_1": len(self.streams_not_starting_at_1),
            "out_of_order": len(self.out_of_order),
        }

    @property
    def clean(self) -> bool:
        """True when no anomaly of any kind was found."""
        counts = self._counts()
        return all(v == 0 for k, v in counts.items() if k not in ("events", "streams"))

    def verdict(self) -> str:
        """One sentence: what is wrong, or that nothing is."""
        counts = self._counts()
        span = (
            f"positions {self.first_position:,}..{self.last_position:,}"
            if self.first_position is not None and self.last_position is not None
            else "no positions"
        )
        head = f"{counts['events']:,} events in {counts['streams']:,} streams ({span})"
        if self.clean:
            return f"{head}: no anomalies"
        found = [
            f"{counts[key]:,} {label}"
            for key, label in (
                ("position_gaps", "position gap(s)"),
                ("missing_positions", "missing position(s)"),
                ("duplicate_positions", "duplicated position(s)"),
                ("version_gaps", "version gap(s)"),
                ("duplicate_versions", "duplicated version(s)"),
                ("streams_not_starting_at_1", "stream(s) not starting at version 1"),
                ("out_of_order", "event(s) recorded out of position order"),
            )
            if counts[key]
        ]
        return f"{head}: " + ", ".join(found)

    def __repr__(self) -> str:
        return f"<GapReport {self.verdict()}>"

    def _repr_html_(self) -> str:
        counts = self.summary().to_frame().to_html()
        tables = "".join(
            f"<h4>{name.replace('_', ' ')}</h4>{table.head(10).to_html(index=False)}"
            for name, table in (
                ("position_gaps", self.position_gaps),
                ("version_gaps", self.version_gaps),
                ("duplicate_positions", self.duplicate_positions),
                ("duplicate_versions", self.duplicate_versions),
                ("streams_not_starting_at_1", self.streams_not_starting_at_1),
                ("out_of_order", self.out_of_order),
            )
            if len(table)
        )
        return f"<p><b>GapReport</b>: {self.verdict()}</p>{counts}{tables}"

    def plot(self, frame: pd.DataFrame | None = None, *, max_lanes: int = 20) -> Any:
        """A matplotlib figure: the position timeline with gaps shaded, and (when there are
        any) version lanes of the streams with anomalies. The titles say what is wrong and
        what is fine."""
        import matplotlib.pyplot as plt

        flagged = pd.concat(
            [
                self.version_gaps["aggregate_id"],
                self.duplicate_versions["aggregate_id"],
                self.streams_not_starting_at_1["aggregate_id"],
            ]
        ).drop_duplicates()
        lanes = list(flagged.iloc[:max_lanes]) if frame is not None else []
        if lanes:
            fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), height_ratios=[1, 2])
        else:  # no stream anomaly: no empty panel, the caption says so
            fig, top = plt.subplots(1, 1, figsize=(11, 3.6))
            bottom = None
        counts = self._counts()
        has_events = frame is not None and len(frame) > 0
        if has_events:
            assert frame is not None
            ordered = frame.dropna(subset=["position"]).sort_values("position")
            step = max(1, len(ordered) // 20_000)  # a million events plot as 20k points
            sample = ordered.iloc[::step]
            top.plot(
                sample["position"].astype("int64"),
                sample["recorded_at"],
                ".",
                ms=2,
                color="tab:blue",
                label="stored event",
            )
            if len(self.out_of_order):
                top.plot(
                    self.out_of_order["position"],
                    self.out_of_order["recorded_at"],
                    "^",
                    color="tab:orange",
                    ms=8,
                    label="recorded before a lower position",
                )
            readable_dates(top.yaxis)
        for n, gap in enumerate(_records(self.position_gaps)):
            top.axvspan(
                gap["start"] - 0.5,
                gap["end"] + 0.5,
                color="tab:red",
                alpha=0.3,
                label="missing positions" if n == 0 else None,
            )
        if counts["position_gaps"]:
            title = (
                f"Global positions: {counts['position_gaps']} gap(s), "
                f"{counts['missing_positions']:,} missing position(s) (shaded red)"
            )
        else:
            title = "Global positions: no gaps"
        if counts["out_of_order"]:
            title += f"; {counts['out_of_order']} recorded out of order (▲)"
        if not lanes:
            title += "; every stream's versions are 1..n" if has_events else ""
        top.set_title(title)
        top.set_xlabel("global position")
        top.set_ylabel("recorded at (UTC)")
        if has_events:
            top.legend(loc="upper left", fontsize=8)
        else:
            top.text(0.5, 0.5, "no events", ha="center", va="center", transform=top.transAxes)
        if self.clean and has_events:
            top.text(
                0.99, 0.04, "no anomalies", ha="right", va="bottom", transform=top.transAxes,
                color="tab:green", fontsize=11, weight="bold",
            )  # fmt: skip

        if bottom is not None and frame is not None:
            subset = frame[frame["aggregate_id"].isin(lanes)]
            for lane, stream in enumerate(lanes):
                versions = subset.loc[subset["aggregate_id"] == stream, "version"].astype("int64")
                bottom.plot(
                    versions,
                    np.full(len(versions), lane),
                    "o",
                    color="tab:blue",
                    ms=4,
                    label="stored version" if lane == 0 else None,
                )
            first_missing = True
            missing = self.version_gaps[self.version_gaps["aggregate_id"].isin(lanes)]
            late = self.streams_not_starting_at_1
            spans = [
                (r["aggregate_id"], r["missing_from"], r["missing_to"]) for r in _records(missing)
            ] + [
                (r["aggregate_id"], 1, r["first_version"] - 1)
                for r in _records(late[late["aggregate_id"].isin(lanes)])
            ]
            for stream, low, high in spans:
                lane = lanes.index(stream)
                bottom.plot(
                    range(low, high + 1),
                    [lane] * (high - low + 1),
                    "x",
                    color="tab:red",
                    ms=8,
                    label="missing version" if first_missing else None,
                )
                first_missing = False
            duplicates = self.duplicate_versions
            for n, row in enumerate(_records(duplicates[duplicates["aggregate_id"].isin(lanes)])):
                lane = lanes.index(row["aggregate_id"])
                bottom.plot(
                    [row["version"]],
                    [lane],
                    "s",
                    mfc="none",
                    color="tab:purple",
                    ms=11,
                    label="duplicated version" if n == 0 else None,
                )
            bottom.set_yticks(range(len(lanes)), lanes, fontsize=8)
            bottom.set_ylim(-0.7, max(len(lanes), 3) - 0.3)
            bottom.set_title(
                f"{len(flagged)} stream(s) with version anomalies"
                + (f" (first {max_lanes} shown)" if len(flagged) > max_lanes else "")
            )
            bottom.set_xlabel("version in the stream")
            bottom.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        return fig


def find_gaps(frame: pd.DataFrame, *, first_position: int | None = 1) -> GapReport:
    """Examine an events frame (from :func:`events_frame`) for every kind of hole.

    :param first_position: where the log starts: a log's positions start at 1, so a hole before
        the first stored event is a gap too. ``None`` for a frame that holds only part of a log
        (events after a checkpoint): then only holes between its events count.

    Works on millions of rows: all checks are sorted-array operations.
    """
    missing = {"position", "aggregate_id", "version"} - set(frame.columns)
    if missing:
        raise ConfigurationError(f"the frame lacks columns {sorted(missing)}")

    positions = np.sort(frame["position"].dropna().astype("int64").to_numpy())
    unique, counts = np.unique(positions, return_counts=True)
    # A virtual position just before the start of the log makes a leading hole one more gap.
    start = first_position - 1 if first_position is not None else None
    leading = start is not None and len(unique) > 0 and unique[0] > start + 1
    bounded = np.concatenate([[start], unique]) if leading else unique
    if len(bounded) > 1:
        steps = np.diff(bounded)
        at = np.nonzero(steps > 1)[0]
        position_gaps = pd.DataFrame(
            {"start": bounded[at] + 1, "end": bounded[at + 1] - 1, "size": steps[at] - 1}
        ).astype("int64")
    else:
        position_gaps = pd.DataFrame({"start": [], "end": [], "size": []}, dtype="int64")
    duplicate_positions = pd.DataFrame(
        {"position": unique[counts > 1], "count": counts[counts > 1]}
    )

    streams = pd.DataFrame(
        {
            "aggregate_id": frame["aggregate_id"].astype(str).to_numpy(),
            "version": frame["version"].astype("int64").to_numpy(),
        }
    ).sort_values(["aggregate_id", "version"], kind="stable")
    aggregate_ids = streams["aggregate_id"].to_numpy()
    versions = streams["version"].to_numpy()
    same_stream = np.zeros(len(streams), dtype=bool)
    same_stream[1:] = aggregate_ids[1:] == aggregate_ids[:-1]
    previous = np.empty_like(versions)
    if len(versions):
        previous[1:] = versions[:-1]
        previous[0] = 0
    jump = versions - previous
    hole = same_stream & (jump > 1)
    version_gaps = pd.DataFrame(
        {
            "aggregate_id": aggregate_ids[hole],
            "missing_from": previous[hole] + 1,
            "missing_to": versions[hole] - 1,
            "size": jump[hole] - 1,
        }
    )
    repeated = same_stream & (jump == 0)
    dup = streams[repeated].groupby(["aggregate_id", "version"], sort=True).size() + 1
    duplicate_versions = dup.rename("count").reset_index()
    starts = ~same_stream
    first = pd.DataFrame({"aggregate_id": aggregate_ids[starts], "first_version": versions[starts]})
    not_at_1 = first[first["first_version"] != 1].reset_index(drop=True)

    if "recorded_at" in frame.columns and len(frame):
        timeline = frame.loc[
            frame["position"].notna() & frame["recorded_at"].notna(), ["position", "recorded_at"]
        ].sort_values("position", kind="stable")
        latest_before = timeline["recorded_at"].cummax().shift(1)
        late = timeline["recorded_at"] < latest_before
        out_of_order = pd.DataFrame(
            {
                "position": timeline.loc[late, "position"].astype("int64").to_numpy(),
                "recorded_at": timeline.loc[late, "recorded_at"].to_numpy(),
                "latest_earlier_recorded_at": latest_before[late].to_numpy(),
            }
        )
    else:
        out_of_order = pd.DataFrame(
            {"position": [], "recorded_at": [], "latest_earlier_recorded_at": []}
        )

    return GapReport(
        position_gaps=position_gaps.reset_index(drop=True),
        duplicate_positions=duplicate_positions,
        version_gaps=version_gaps.reset_index(drop=True),
        duplicate_versions=duplicate_versions,
        streams_not_starting_at_1=not_at_1,
        out_of_order=out_of_order,
        events=len(frame),
        streams=len(first),
        first_position=int(unique[0]) if len(unique) else None,
        last_position=int(unique[-1]) if len(unique) else None,
    )


def readable_dates(axis: Any) -> None:
    """Date ticks a reader understands at a glance (``Jan 05 09:00``, with the year or day
    written once in the corner), not offsets like ``55:44.400000``."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    axis.set_major_locator(locator)
    axis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a report table as plain dicts (ints stay ints), for plotting loops."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]

"""Gap and anomaly diagnostics over an events DataFrame, vectorized (no Python loop per row)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._core.errors import ConfigurationError


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
            + (f"<p>… and {len(table) - 10:,} more</p>" if len(table) > 10 else "")
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
        from ._plots import plot_gap_report

        return plot_gap_report(self, frame, max_lanes=max_lanes)


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
    positions = np.unique(frame["position"].dropna().astype("int64").to_numpy())
    streams = _StreamAnomalies.of(frame)
    return GapReport(
        position_gaps=_position_gaps(positions, first_position),
        duplicate_positions=_duplicate_positions(frame),
        version_gaps=streams.version_gaps,
        duplicate_versions=streams.duplicate_versions,
        streams_not_starting_at_1=streams.not_starting_at_1,
        out_of_order=_out_of_order(frame),
        events=len(frame),
        streams=streams.streams,
        first_position=int(positions[0]) if len(positions) else None,
        last_position=int(positions[-1]) if len(positions) else None,
    )


def _position_gaps(unique: np.ndarray[Any, Any], first_position: int | None) -> pd.DataFrame:
    """The runs of positions missing between the sorted distinct ``unique`` positions."""
    # A virtual position just before the start of the log makes a leading hole one more gap.
    start = first_position - 1 if first_position is not None else None
    leading = start is not None and len(unique) > 0 and unique[0] > start + 1
    bounded = np.concatenate([[start], unique]) if leading else unique
    if len(bounded) < 2:
        return pd.DataFrame({"start": [], "end": [], "size": []}, dtype="int64")
    steps = np.diff(bounded)
    at = np.nonzero(steps > 1)[0]
    return pd.DataFrame(
        {"start": bounded[at] + 1, "end": bounded[at + 1] - 1, "size": steps[at] - 1}
    ).astype("int64")


def _duplicate_positions(frame: pd.DataFrame) -> pd.DataFrame:
    unique, counts = np.unique(frame["position"].dropna().astype("int64"), return_counts=True)
    return pd.DataFrame({"position": unique[counts > 1], "count": counts[counts > 1]})


@dataclass(frozen=True)
class _StreamAnomalies:
    version_gaps: pd.DataFrame
    duplicate_versions: pd.DataFrame
    not_starting_at_1: pd.DataFrame
    streams: int

    @classmethod
    def of(cls, frame: pd.DataFrame) -> _StreamAnomalies:
        """Each stream's versions against 1..n, from one stable sort by (stream, version)."""
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
        previous = np.zeros_like(versions)
        previous[1:] = versions[:-1]
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
        starts = ~same_stream
        first = pd.DataFrame(
            {"aggregate_id": aggregate_ids[starts], "first_version": versions[starts]}
        )
        return cls(
            version_gaps=version_gaps.reset_index(drop=True),
            duplicate_versions=dup.rename("count").reset_index(),
            not_starting_at_1=first[first["first_version"] != 1].reset_index(drop=True),
            streams=len(first),
        )


def _out_of_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Events recorded before an event of a lower position."""
    if "recorded_at" not in frame.columns or not len(frame):
        return pd.DataFrame({"position": [], "recorded_at": [], "latest_earlier_recorded_at": []})
    timeline = frame.loc[
        frame["position"].notna() & frame["recorded_at"].notna(), ["position", "recorded_at"]
    ].sort_values("position", kind="stable")
    latest_before = timeline["recorded_at"].cummax().shift(1)
    late = timeline["recorded_at"] < latest_before
    return pd.DataFrame(
        {
            "position": timeline.loc[late, "position"].astype("int64").to_numpy(),
            "recorded_at": timeline.loc[late, "recorded_at"].to_numpy(),
            "latest_earlier_recorded_at": latest_before[late].to_numpy(),
        }
    )

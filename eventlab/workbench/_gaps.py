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

    def summary(self) -> dict[str, int]:
        """Counts of each anomaly (and the size of what was examined)."""
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
        counts = self.summary()
        return all(v == 0 for k, v in counts.items() if k not in ("events", "streams"))

    def plot(self, frame: pd.DataFrame | None = None, *, max_lanes: int = 20) -> Any:
        """A matplotlib figure: the position timeline with gaps shaded, and version lanes of
        the streams with anomalies (holes marked)."""
        import matplotlib.pyplot as plt

        fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), height_ratios=[1, 2])
        if frame is not None and len(frame):
            ordered = frame.dropna(subset=["position"]).sort_values("position")
            step = max(1, len(ordered) // 20_000)  # a million events plot as 20k points
            sample = ordered.iloc[::step]
            top.plot(
                sample["position"].astype("int64"),
                sample["recorded_at"],
                ".",
                ms=2,
                color="tab:blue",
                label="event",
            )
            if len(self.out_of_order):
                top.plot(
                    self.out_of_order["position"],
                    self.out_of_order["recorded_at"],
                    "x",
                    color="tab:orange",
                    ms=7,
                    label="recorded out of order",
                )
        for gap in _records(self.position_gaps):
            top.axvspan(gap["start"] - 0.5, gap["end"] + 0.5, color="tab:red", alpha=0.3)
        top.set_title(
            f"Global positions: {len(self.position_gaps)} gaps "
            f"({self.summary()['missing_positions']} missing) shaded red"
        )
        top.set_xlabel("position")
        top.set_ylabel("recorded_at")
        if frame is not None and len(frame):
            top.legend(loc="upper left", fontsize=8)

        flagged = pd.concat(
            [
                self.version_gaps["aggregate_id"],
                self.duplicate_versions["aggregate_id"],
                self.streams_not_starting_at_1["aggregate_id"],
            ]
        ).drop_duplicates()
        lanes = list(flagged.iloc[:max_lanes])
        if frame is not None and lanes:
            subset = frame[frame["aggregate_id"].isin(lanes)]
            for lane, stream in enumerate(lanes):
                versions = subset.loc[subset["aggregate_id"] == stream, "version"].astype("int64")
                bottom.plot(versions, np.full(len(versions), lane), "o", color="tab:blue", ms=4)
            for row in _records(self.version_gaps[self.version_gaps["aggregate_id"].isin(lanes)]):
                lane = lanes.index(row["aggregate_id"])
                bottom.plot(
                    range(row["missing_from"], row["missing_to"] + 1),
                    [lane] * row["size"],
                    "x",
                    color="tab:red",
                    ms=8,
                )
            duplicates = self.duplicate_versions
            for row in _records(duplicates[duplicates["aggregate_id"].isin(lanes)]):
                lane = lanes.index(row["aggregate_id"])
                bottom.plot([row["version"]], [lane], "s", mfc="none", color="tab:purple", ms=11)
            late = self.streams_not_starting_at_1
            for row in _records(late[late["aggregate_id"].isin(lanes)]):
                lane = lanes.index(row["aggregate_id"])
                bottom.plot(
                    range(1, row["first_version"]),
                    [lane] * (row["first_version"] - 1),
                    "x",
                    color="tab:orange",
                    ms=8,
                )
            bottom.set_yticks(range(len(lanes)), lanes, fontsize=8)
            bottom.set_ylim(-0.7, max(len(lanes), 3) - 0.3)
        bottom.set_title("Streams with anomalies: x = missing version, □ = duplicated version")
        bottom.set_xlabel("version")
        fig.tight_layout()
        return fig


def find_gaps(frame: pd.DataFrame) -> GapReport:
    """Examine an events frame (from :func:`events_frame`) for every kind of hole.

    Works on millions of rows: all checks are sorted-array operations.
    """
    missing = {"position", "aggregate_id", "version"} - set(frame.columns)
    if missing:
        raise ConfigurationError(f"the frame lacks columns {sorted(missing)}")

    positions = np.sort(frame["position"].dropna().astype("int64").to_numpy())
    unique, counts = np.unique(positions, return_counts=True)
    if len(unique) > 1:
        steps = np.diff(unique)
        at = np.nonzero(steps > 1)[0]
        position_gaps = pd.DataFrame(
            {"start": unique[at] + 1, "end": unique[at + 1] - 1, "size": steps[at] - 1}
        )
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


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a report table as plain dicts (ints stay ints), for plotting loops."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]

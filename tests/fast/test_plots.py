"""plot_timeline: one line per group, readable titles, typed errors for bad arguments."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from eventlab import ConfigurationError
from eventlab.workbench import events_frame, load_jsonl, plot_timeline

DATA = Path(__file__).resolve().parents[2] / "data"


def test_one_line_per_group_counting_every_event() -> None:
    frame = events_frame(load_jsonl(DATA / "chat.jsonl"))
    figure = plot_timeline(frame, by="event_type", freq="6h")
    (ax,) = figure.axes
    labels = sorted(line.get_label() for line in ax.get_lines())
    assert labels == sorted(frame["event_type"].astype(str).unique())
    # A group's line is NaN outside its own span: not zero, no line there.
    assert sum(np.nansum(line.get_ydata()) for line in ax.get_lines()) == len(frame)
    assert ax.get_title() == "Events per 6 hours, by event type"
    assert ax.get_ylabel() == "events per 6 hours"
    plt.close(figure)


def test_one_line_for_all_and_the_time_of_occurrence() -> None:
    frame = events_frame(load_jsonl(DATA / "orders.jsonl"))
    figure = plot_timeline(frame, by=None, freq="1D", time="occurred_at")
    (ax,) = figure.axes
    (line,) = ax.get_lines()
    assert line.get_ydata().sum() == len(frame)
    assert (ax.get_title(), ax.get_xlabel()) == ("Events per day", "occurred at (UTC)")
    plt.close(figure)


def test_an_empty_frame_says_so() -> None:
    frame = events_frame([])
    figure = plot_timeline(frame)
    assert "no events" in [t.get_text() for t in figure.axes[0].texts]
    plt.close(figure)


@pytest.mark.parametrize(
    "options",
    [
        {"freq": "fortnightly"},
        {"freq": {"$gt": 1}},
        {"by": "no_such_column"},
        {"time": "published_at"},
        {"by": {"$ne": None}},
    ],
)
def test_bad_arguments_are_typed_errors(options: dict[str, object]) -> None:
    frame = events_frame(load_jsonl(DATA / "orders.jsonl"))
    with pytest.raises(ConfigurationError):
        plot_timeline(frame, **options)  # type: ignore[arg-type]

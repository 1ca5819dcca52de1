from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eventlab import ConfigurationError
from eventlab.samples import Order, generate_orders, order_registry
from eventlab.samples.datasets import anomalies_dataset, write_datasets
from eventlab.workbench import events_frame, find_gaps, load_jsonl, replay

DATA = Path(__file__).resolve().parents[2] / "data"


def test_planted_anomalies_are_found_exactly() -> None:
    report = find_gaps(events_frame(load_jsonl(DATA / "anomalies.jsonl")))
    assert report.position_gaps.to_dict("records") == [
        {"start": 51, "end": 53, "size": 3},
        {"start": 124, "end": 124, "size": 1},
    ]
    assert report.duplicate_versions.to_dict("records") == [
        {"aggregate_id": "order-00001", "version": 2, "count": 2}
    ]
    assert report.streams_not_starting_at_1.to_dict("records") == [
        {"aggregate_id": "order-00002", "first_version": 3}
    ]
    assert list(report.out_of_order["position"]) == [205]
    assert report.version_gaps.empty and report.duplicate_positions.empty
    assert report.summary().to_dict() == {
        "events": 255,
        "streams": 60,
        "position_gaps": 2,
        "missing_positions": 4,
        "duplicate_positions": 0,
        "version_gaps": 0,
        "duplicate_versions": 1,
        "streams_not_starting_at_1": 1,
        "out_of_order": 1,
    }
    assert not report.clean
    _, planted = anomalies_dataset()
    assert planted["position_gaps"] == [(51, 53, 3), (124, 124, 1)]
    readme = (DATA / "README.md").read_text()
    for fact in ("**51\u201353**", "**124**", "**order-00001**", "**order-00002**", "**205**"):
        assert fact in readme


def test_shipped_files_are_what_the_generators_make(tmp_path: Path) -> None:
    counts = write_datasets(tmp_path)
    assert counts == {"orders.jsonl": 3358, "chat.jsonl": 4683, "anomalies.jsonl": 255}
    for name in counts:
        assert filecmp.cmp(tmp_path / name, DATA / name, shallow=False), f"{name} differs"
    for name in ("orders.jsonl", "chat.jsonl"):
        assert find_gaps(events_frame(load_jsonl(DATA / name))).clean


def test_version_gaps_and_duplicate_positions() -> None:
    frame = pd.DataFrame(
        {
            "position": pd.array([1, 2, 2, 5, 6, 7], dtype="Int64"),
            "aggregate_id": ["a", "a", "a", "b", "b", "b"],
            "version": pd.array([1, 2, 6, 1, 2, 3], dtype="Int64"),
        }
    )
    report = find_gaps(frame)
    assert report.version_gaps.to_dict("records") == [
        {"aggregate_id": "a", "missing_from": 3, "missing_to": 5, "size": 3}
    ]
    assert report.duplicate_positions.to_dict("records") == [{"position": 2, "count": 2}]
    assert report.position_gaps.to_dict("records") == [{"start": 3, "end": 4, "size": 2}]
    assert report.out_of_order.empty  # no recorded_at column
    with pytest.raises(ConfigurationError):
        find_gaps(pd.DataFrame({"x": [1]}))
    assert find_gaps(frame.iloc[:0]).summary()["events"] == 0


def test_find_gaps_scales_without_row_loops() -> None:
    n = 1_000_000
    rng = np.random.default_rng(1)
    positions = np.arange(1, n + 1)
    positions = positions[rng.random(n) > 0.001]  # ~1,000 holes
    frame = pd.DataFrame(
        {
            "position": positions,
            "aggregate_id": (positions % 50_000).astype(str),
            "version": positions // 50_000 + 1,
            "recorded_at": pd.to_datetime(positions, unit="s", utc=True),
        }
    )
    import time

    started = time.perf_counter()
    report = find_gaps(frame)
    elapsed = time.perf_counter() - started
    assert report.summary()["missing_positions"] == n - len(positions)
    assert elapsed < 20, f"find_gaps took {elapsed:.1f}s on a million rows"


def test_gap_plot(tmp_path: Path) -> None:
    frame = events_frame(load_jsonl(DATA / "anomalies.jsonl"))
    figure = find_gaps(frame).plot(frame)
    out = tmp_path / "gaps.png"
    figure.savefig(out)
    assert out.stat().st_size > 10_000
    top, bottom = figure.axes
    assert "2 gap(s), 4 missing position(s)" in top.get_title()
    assert "recorded out of order (▲)" in top.get_title()
    # One glyph per meaning, named in the report's own words (its tables' names).
    assert {line.get_marker() for line in top.lines} == {".", "^"}
    assert {line.get_marker() for line in bottom.lines} == {"o", "|", "s"}
    assert [t.get_text() for t in top.get_legend().get_texts()] == [
        "stored event", "recorded before a lower position", "missing positions"
    ]  # fmt: skip
    assert [t.get_text() for t in bottom.get_legend().get_texts()] == [
        "stored version", "stream not starting at 1 (versions before its first)",
        "duplicated version",
    ]  # fmt: skip
    report = find_gaps(frame)
    assert len(report.version_gaps) == 0, "no version gap, so none is drawn"
    for ax in (top, bottom):  # the legend sits beside the data, never over a gap
        assert ax.get_legend().get_bbox_to_anchor().x0 >= ax.get_window_extent().x1 - 1
    assert bottom.get_title() == "2 stream(s) with version anomalies"
    assert type(top.yaxis.get_major_formatter()).__name__ == "ConciseDateFormatter"
    assert (
        top.get_ylabel() == "recorded at (UTC)" and bottom.get_xlabel() == "version in the stream"
    )


def test_a_healthy_store_plots_one_panel_that_says_so() -> None:
    frame = events_frame(load_jsonl(DATA / "orders.jsonl"))
    report = find_gaps(frame)
    figure = report.plot(frame)
    assert len(figure.axes) == 1, "no empty panel for streams without anomalies"
    (top,) = figure.axes
    assert top.get_title().startswith("Global positions: no gaps")
    assert "no anomalies" in [t.get_text() for t in top.texts]
    assert "3,358 events in 800 streams (positions 1..3,358): no anomalies" in repr(report)


def test_a_hole_before_the_first_event_is_a_gap() -> None:
    frame = pd.DataFrame(
        {
            "position": pd.array([61, 62, 63], dtype="Int64"),
            "aggregate_id": ["a", "b", "c"],
            "version": pd.array([1, 1, 1], dtype="Int64"),
        }
    )
    report = find_gaps(frame)
    assert report.position_gaps.to_dict("records") == [{"start": 1, "end": 60, "size": 60}]
    assert report.summary()["missing_positions"] == 60 and not report.clean
    assert "60 missing position(s)" in repr(report)
    html = report._repr_html_()
    assert "<b>GapReport</b>" in html and "position gaps" in html
    # A frame of part of a log (events after a checkpoint) says where it starts, or None.
    assert find_gaps(frame, first_position=None).clean
    assert find_gaps(frame, first_position=61).clean


def test_replay_trace_diffs_and_failures() -> None:
    registry = order_registry()
    order = next(generate_orders(3, seed=5))
    stored = [
        registry.to_stored(e, aggregate_id=order.id, aggregate_type="Order", version=v)
        for v, e in enumerate(order.pending_events, start=1)
    ]
    trace = replay(Order, stored, registry=registry)
    assert len(trace) == len(stored) and not trace.failed
    frame = trace.frame
    assert list(frame["version"]) == list(range(1, len(stored) + 1))
    assert frame.loc[0, "state.status"] == "placed"
    assert "status: new → placed" in frame.loc[0, "changed"]
    assert "city: '' → " in frame.loc[0, "changed"]  # an empty string is shown, not blank
    lines = frame.loc[1, "changed"]
    assert "Decimal" not in lines and "total: 0 → " in lines  # values as a person reads them
    assert (
        repr(trace)
        == f"<ReplayTrace Order {order.id}: {len(stored)} events to v{len(stored)}, 0 failed>"
    )
    assert "ReplayTrace Order" in trace._repr_html_()
    last = len(stored)
    final = trace.at_version(last)
    assert final.total == order.total and final.status == order.status and final.version == last
    assert trace.at_version(0).status == "new"
    diff = trace.diff(1, 2)
    assert set(diff["field"]) >= {"lines", "total"}
    assert diff.set_index("field").loc["lines", "after"] == 1
    with pytest.raises(ConfigurationError):
        trace.at_version(99)
    with pytest.raises(ConfigurationError):
        trace.state_at(99)


def test_replay_shows_a_failing_event_and_goes_on() -> None:
    from eventlab.samples.orders import OrderCancelled

    registry = order_registry()
    order = next(generate_orders(1, seed=3))
    events = list(order.pending_events[:2])
    events.insert(1, OrderCancelled(reason="too early"))
    trace = replay(Order, events)
    assert list(trace.frame["state.status"])[:2] == ["placed", "cancelled"]
    # unknown type in a stored stream: shown as an error row, replay continues
    stored = [
        registry.to_stored(e, aggregate_id="o", aggregate_type="Order", version=v)
        for v, e in enumerate(order.pending_events, start=1)
    ]
    from dataclasses import replace

    broken = [stored[0], replace(stored[1], event_type="Mystery"), *stored[2:]]
    trace = replay(Order, broken, registry=registry)
    assert [s.step for s in trace.failed] == [2]
    assert "Mystery" in (trace.failed[0].error or "")
    assert trace.frame["error"].notna().sum() == 1
    assert len(trace) == len(broken)
    with pytest.raises(ConfigurationError, match="registry"):
        replay(Order, stored)


def test_replay_handler_error_keeps_previous_state() -> None:
    import uuid

    from eventlab.samples.chat import Chat, ChatCreated, StatusChanged

    events = [
        ChatCreated(
            workspace_id=uuid.uuid4(), type="Discussion", title="t", created_by=uuid.uuid4()
        ),
        StatusChanged(status="Done"),  # a chat that is not a task cannot change status
    ]
    trace = replay(Chat, events, aggregate_id="chat-x")
    assert trace.failed[0].step == 2 and "not a task" in (trace.failed[0].error or "")
    assert trace.steps[1].state["title"] == "t" and trace.steps[1].changes == {}
    assert trace.at_version(2).title == "t"

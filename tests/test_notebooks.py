"""Every notebook runs top to bottom against the test deployment, with the tooling the README
names (``jupyter nbconvert --execute``); none is committed with outputs; ``jupyter lab`` opens."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_nine_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "00_your_domain.ipynb",
        "01_explore_streams.ipynb",
        "02_rebuild_aggregates.ipynb",
        "03_gaps.ipynb",
        "04_benchmarks.ipynb",
        "05_projections.ipynb",
        "06_a_million_events.ipynb",
        "07_dcb.ipynb",
        "08_analytics.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, mongo_uri: str, tmp_path: Path) -> None:
    # The README's way: `uv run jupyter nbconvert --to notebook --execute notebooks/NAME.ipynb`
    # (here into a temporary directory, against the test deployment with its fail points). An
    # IPython startup file records every plot's words (titles, labels, legends) as it is shown.
    plots_log = tmp_path / "plots.json"
    results = _benchmark_results(tmp_path / "results")
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-eventlab-plots.py").write_text(PLOT_RECORDER)
    result = subprocess.run(
        [
            *_jupyter(),
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=180",
            "--output-dir",
            str(tmp_path),
            str(path),
        ],
        cwd=path.parent,
        env={
            # As a user's shell would have it: not this test worker's pytest-xdist settings
            # (notebook 04 runs the benchmarks, which refuse to time inside a parallel run).
            **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")},
            "EVENTLAB_MONGODB_URI": mongo_uri,
            "IPYTHONDIR": str(tmp_path / "ipython"),
            "EVENTLAB_PLOT_LOG": str(plots_log),
            "EVENTLAB_NOTEBOOK_EVENTS": "10000",  # notebook 06's million, made small
            "EVENTLAB_BENCH_RESULTS": str(results),  # notebook 04: a full run of this machine
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    book = nbformat.read(tmp_path / path.name, as_version=4)
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    rich = {kind for o in outputs for kind in o.get("data", {})}
    assert "text/html" in rich, f"{path.name} showed no table"
    if path.stem != "02_rebuild_aggregates":  # the replay notebook shows tables only
        assert "image/png" in rich, f"{path.name} drew no plot"
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "IProgress not found" not in printed and "TqdmWarning" not in printed
    assert "\x1b[" not in printed, "terminal colour codes in a notebook"
    for said in NOTEBOOK_SAYS.get(path.stem, []):
        assert re.search(said, printed), f"{path.name} did not say {said!r}"
    _check_plots(path, json.loads(plots_log.read_text()) if plots_log.exists() else [])


def _check_plots(path: Path, plots: list[dict[str, Any]]) -> None:
    titles = [p["title"] for p in plots]
    assert len(titles) == len(PLOT_TITLES[path.stem]), titles
    for title, expected in zip(titles, PLOT_TITLES[path.stem], strict=True):
        assert re.fullmatch(expected, title) or title == expected, (title, expected)
    for plot in plots:  # words a reader understands, not column names or empty axes
        assert plot["xlabel"] and plot["ylabel"], plot
        for text in [plot["xlabel"], plot["ylabel"], *plot["legend"]]:
            assert not re.search(r"\w_\w", text), f"a column name in a plot: {text!r}"
        assert plot["under_legend"] == 0, f"the legend hides data: {plot['title']!r}"
        for pattern, axes in INTEGER_AXES.items():  # counts: ticks at whole numbers only
            if re.fullmatch(pattern, plot["title"]):
                for axis in axes:
                    assert plot["integer_ticks"][axis], f"{plot['title']!r}: {axis} ticks"


PLOT_RECORDER = """
import json, os, sys

import numpy as np

_eventlab_plots = []


def _eventlab_under_legend(ax, legend):
    \"\"\"How many points of the drawn data (lines as drawn, steps included; bars) lie under
    the legend, in display coordinates.\"\"\"
    from matplotlib.cbook import STEP_LOOKUP_MAP

    box = legend.get_window_extent(ax.figure.canvas.get_renderer())
    inside = lambda x, y: (x >= box.x0) & (x <= box.x1) & (y >= box.y0) & (y <= box.y1)
    under = 0
    for line in ax.lines:
        xy = ax.transData.transform(np.asarray(line.get_xydata(), dtype=float))
        if len(xy) == 0 or not line.get_visible():
            continue
        x, y = STEP_LOOKUP_MAP[line.get_drawstyle()](xy[:, 0], xy[:, 1])
        for a, b in zip(zip(x[:-1], y[:-1]), zip(x[1:], y[1:])):  # along each segment
            t = np.linspace(0, 1, 25)
            under += int(inside(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t).any())
        under += int(inside(x, y).sum()) if len(x) == 1 else 0
    for patch in ax.patches:
        if patch.get_window_extent().overlaps(box):
            under += 1
    return under


def _eventlab_integer_ticks(axis):
    locator = axis.get_major_locator()
    return bool(getattr(locator, "_integer", False))


def _eventlab_record_plots():
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    for number in pyplot.get_fignums():  # before the inline backend shows and closes them
        figure = pyplot.figure(number)
        figure.canvas.draw()  # the layout as shown
        suptitle = figure.get_suptitle()
        for ax in figure.axes:
            if ax.get_label() == "<colorbar>" or not (ax.lines or ax.patches or ax.collections):
                continue
            legend = ax.get_legend()
            _eventlab_plots.append({
                "title": f"{suptitle}: {ax.get_title()}" if suptitle else ax.get_title(),
                "xlabel": ax.get_xlabel(),
                "ylabel": ax.get_ylabel(),
                "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
                "under_legend": _eventlab_under_legend(ax, legend) if legend else 0,
                "integer_ticks": {
                    "x": _eventlab_integer_ticks(ax.xaxis),
                    "y": _eventlab_integer_ticks(ax.yaxis),
                },
            })
    with open(os.environ["EVENTLAB_PLOT_LOG"], "w") as log:
        json.dump(_eventlab_plots, log)


get_ipython().events.register("post_execute", _eventlab_record_plots)
"""

PLOT_TITLES: dict[str, list[str]] = {
    "00_your_domain": ["Loans per member"],
    "01_explore_streams": ["Events per type", "Events per 6 hours, by event type"],
    "02_rebuild_aggregates": [],
    "03_gaps": [
        "Global positions: 2 gap(s), 4 missing position(s) (shaded red); 1 recorded out of "
        "order (▲)",
        "2 stream(s) with version anomalies",
        r"Global positions: \d+ gap\(s\), 60 missing position\(s\) \(shaded red\); \d+ "
        r"recorded out of order \(▲\); every stream's versions are 1\.\.n",
    ],
    "04_benchmarks": [
        "This run: eventlab against the raw driver, same work",
        "This run: Cost of eventlab: a ratio to the raw driver",
        r"Latest full run on this machine \(latest\.json\): eventlab against the raw driver, "
        "same work",
        r"Latest full run on this machine \(latest\.json\): Cost of eventlab: a ratio to the "
        "raw driver",
        r"Cost against store size \(Latest full run on this machine \(latest\.json\)\)",
    ],
    "05_projections": ["Projection lag while orders arrive", "Read model size"],
    "06_a_million_events": ["Events per day, by event type"],
    "07_dcb": ["Students per course, against its places"],
    "08_analytics": ["Revenue per day, by currency"],
}
"""Every plot each notebook shows, by its title (a regular expression), in order."""

INTEGER_AXES: dict[str, str] = {
    "Loans per member": "x",
    r"Events per (\d+ )?(second|minute|hour|day|week|month)s?(, by .*)?": "y",  # timelines
    "Projection lag while orders arrive": "y",
    "Read model size": "y",
}
"""Plots whose axes count things (a regular expression of the title: the axes)."""

NOTEBOOK_SAYS: dict[str, list[str]] = {
    "00_your_domain": ["Middlemarch is on loan to ada at version 2", "live: 5 book-2 BookLent"],
    "03_gaps": [r"preallocated: 60 positions missing, 30 aborted appends of 2 events",
                r"transactional: 0 position gaps after 30 aborted appends"],
    "04_benchmarks": [r"append of 100 events: (holds|is MISSED|is server-bound) \(",
                      r"typed load of 1,000 events: (holds|is MISSED|is server-bound) \(",
                      r"Latest full run on this machine \(latest\.json\): 20 benchmarks",
                      r"skipped partial\.json: not a pytest-benchmark run"],
    "05_projections": ["caught up: True"],
    "06_a_million_events": [r"cache \S+: 0 events through position 0; read 10,000 new",
                            r"10,000 events through position 10,000; read 0 new",
                            r"shipped: [1-9][\d,]* events; on \d{4}-\d\d-\d\d: [1-9][\d,]* events"],
    "07_dcb": [r"registered twice\? course:dcb is registered already",
               r"refused: append condition failed",
               "alan joined on the second decision", "every course within its places: True",
               "every student within two courses: True", "nobody twice on a course: True"],
    "08_analytics": [r"[1-9]\d* groups; DuckDB and pandas agree to the cent: True",
                     r"cache \S+: 0 events through position 0; read 3,358 new"],
}  # fmt: skip
"""What a notebook prints that the reader relies on (regular expressions; its checks are here,
not in its cells)."""


def _benchmark_results(directory: Path) -> Path:
    """A results directory as a machine that ran the whole suite has it: a full run
    (``latest.json``, the committed numbers as if run now) and a file that is not one."""
    directory.mkdir()
    run = json.loads((ROOT / "benchmarks" / "results" / "baseline.json").read_text())
    run["datetime"] = "2999-01-01T00:00:00+00:00"
    (directory / "latest.json").write_text(json.dumps(run))
    (directory / "partial.json").write_text("{not json")
    return directory


def test_a_progress_bar_in_a_notebook_is_a_widget() -> None:
    """tqdm.auto, which eventlab's long operations use, draws a widget in Jupyter: no
    TqdmWarning about IProgress (ipywidgets is installed with the notebooks)."""
    import nbclient

    book = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "from eventlab._core.progress import progress_bar\n"
                "with progress_bar(3, True, 'events') as bar:\n"
                "    bar.update(3)\n"
            )
        ]
    )
    nbclient.NotebookClient(book, timeout=120, kernel_name="python3").execute()
    outputs = book.cells[0].outputs
    said = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "IProgress" not in said and "TqdmWarning" not in said, said
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def _jupyter() -> list[str]:
    """The ``jupyter`` command of this environment (the one ``uv run jupyter`` runs)."""
    beside = Path(sys.executable).parent / "jupyter"
    return [str(beside)] if beside.exists() else [shutil.which("jupyter") or "jupyter"]


@pytest.mark.slow
def test_the_readme_command_opens_jupyterlab(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "uv run jupyter lab notebooks/" in readme
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lab = subprocess.Popen(
        [
            *_jupyter(),
            "lab",
            "notebooks/",
            "--no-browser",
            f"--ServerApp.port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--IdentityProvider.token=",
            "--allow-root",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(tmp_path),
            "JUPYTER_CONFIG_DIR": str(tmp_path),
        },
    )
    try:
        deadline = time.monotonic() + 60
        page = ""
        while time.monotonic() < deadline and not page:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=2) as reply:
                    page = reply.read().decode()
            except OSError:
                time.sleep(0.3)
        assert "JupyterLab" in page
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/", timeout=5) as reply:
            listing = reply.read().decode()
        assert "05_projections.ipynb" in listing
    finally:
        lab.terminate()
        lab.wait(30)

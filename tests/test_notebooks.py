"""Every notebook runs top to bottom against the test deployment; none is committed with outputs."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_five_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_explore_streams.ipynb",
        "02_rebuild_aggregates.ipynb",
        "03_gaps.ipynb",
        "04_benchmarks.ipynb",
        "05_projections.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, mongo_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLAB_MONGODB_URI", mongo_uri)  # the test deployment, fail points on
    book = nbformat.read(path, as_version=4)
    started = time.monotonic()
    NotebookClient(
        book, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    elapsed = time.monotonic() - started
    errors = [
        o
        for c in book.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors
    rich = {
        kind
        for c in book.cells
        if c.cell_type == "code"
        for o in c.outputs
        for kind in o.get("data", {})
    }
    assert "text/html" in rich, f"{path.name} showed no table"
    if path.stem != "02_rebuild_aggregates":  # the replay notebook shows tables only
        assert "image/png" in rich, f"{path.name} drew no plot"
    assert elapsed < 120, f"{path.name} took {elapsed:.0f}s"

"""Every notebook runs top to bottom against the test deployment, with the tooling the README
names (``jupyter nbconvert --execute``); none is committed with outputs; ``jupyter lab`` opens."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

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
def test_notebook_runs(path: Path, mongo_uri: str, tmp_path: Path) -> None:
    # The README's way: `uv run jupyter nbconvert --to notebook --execute notebooks/NAME.ipynb`
    # (here into a temporary directory, against the test deployment with its fail points).
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
        env={**os.environ, "EVENTLAB_MONGODB_URI": mongo_uri},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    book = nbformat.read(tmp_path / path.name, as_version=4)
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

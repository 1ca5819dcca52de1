"""The workbench: see event streams as DataFrames, rebuild aggregates step by step, find gaps.

Everything here is importable and tested like the rest of eventlab; the notebooks and the CLI
are thin layers over it.

May import: ``_core``, ``ports`` and ``_follow``; never an adapter or the driver (import-linter
holds it).
"""

from ._display import register_html_tables
from ._flat import FlatExport, export_flat
from ._frames import events_frame, read_frame
from ._gaps import GapReport, find_gaps
from ._jsonl import DataFormatError, dump_jsonl, iter_jsonl, load_jsonl
from ._plots import plot_timeline
from ._projection_replay import (
    ProjectionStep,
    ProjectionTrace,
    diff_projections,
    events_from_frame,
    replay_projection,
)
from ._replay import ReplayStep, ReplayTrace, replay

register_html_tables()

__all__ = [
    "DataFormatError",
    "FlatExport",
    "GapReport",
    "ProjectionStep",
    "ProjectionTrace",
    "ReplayStep",
    "ReplayTrace",
    "diff_projections",
    "dump_jsonl",
    "events_frame",
    "events_from_frame",
    "export_flat",
    "find_gaps",
    "iter_jsonl",
    "load_jsonl",
    "plot_timeline",
    "read_frame",
    "replay",
    "replay_projection",
]

"""Suite 4: 1,000 events → a flattened DataFrame, vs pandas building one from the documents."""

from __future__ import annotations

from typing import Any

import pandas as pd

from eventlab._core.event_codec import stored_document
from eventlab.samples.datasets import orders_dataset
from eventlab.workbench import events_frame

from ._paired import assert_ratio, paired

EVENTS = orders_dataset(250)[:1000]
DOCS = [stored_document(e) for e in EVENTS]


def test_frame_vs_dataframe(benchmark: Any) -> None:
    """``events_frame`` (flattened, typed) vs ``pd.DataFrame(docs)`` (nested dicts, untyped)."""
    frame = paired(
        benchmark,
        name="frame",
        server="in-process",
        target=lambda: events_frame(EVENTS),
        baseline=lambda: pd.DataFrame(DOCS),
        rounds=60,
        warmup_rounds=5,
    )
    assert len(frame) == 1000 and "payload.shipping_address.city" in frame.columns


def test_frame_vs_json_normalize(benchmark: Any) -> None:
    """The same flattening as ``pd.json_normalize(docs)``, which it must beat."""
    paired(
        benchmark,
        name="frame-vs-json_normalize",
        server="in-process",
        target=lambda: events_frame(EVENTS),
        baseline=lambda: pd.json_normalize(DOCS),
        rounds=60,
        warmup_rounds=5,
    )
    assert_ratio(benchmark)

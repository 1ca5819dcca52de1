"""Progress bars for long operations: tqdm.auto (a widget in Jupyter, text in a terminal)."""

from __future__ import annotations

import contextlib
from typing import Any

PROGRESS_THRESHOLD = 50_000
"""Operations over more items than this show a bar unless asked not to."""


class _NoBar:
    def update(self, n: int = 1) -> None:
        return None


def progress_bar(total: int, progress: bool | None, what: str, unit: str = "event") -> Any:
    """A context manager giving a bar with ``update(n)``: shown when ``progress`` is True, or
    when it is None and ``total`` is large; otherwise one that does nothing."""
    show = progress if progress is not None else total > PROGRESS_THRESHOLD
    if not show:
        return contextlib.nullcontext(_NoBar())
    from tqdm.auto import tqdm

    return tqdm(total=total or None, desc=what, unit=unit, leave=False)

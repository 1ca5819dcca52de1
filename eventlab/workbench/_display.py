"""How eventlab's objects show themselves: short text, and HTML tables in Jupyter."""

from __future__ import annotations

import dataclasses
import html
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any


def show_value(value: Any) -> str:
    """A value as a person reads it in a diff: ``0 → 12.50``, ``'' → Lisbon``, ``∅`` for None
    (never ``Decimal('0')`` or a cut-off repr)."""
    if value is None:
        return "∅"
    if isinstance(value, str):
        return repr(value) if value == "" or value != value.strip() else value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def show_duration(seconds: float) -> str:
    """Seconds as a person reads them: ``0.4 s``, ``4 min 12 s``, ``3 h 20 min``, ``330 days``
    (never ``2.8578e+07``)."""
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds % 1 else f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours / 24:,.0f} days"


def _shown(name: str, value: Any) -> str:
    if "seconds" in name and isinstance(value, int | float) and not isinstance(value, bool):
        return show_duration(float(value))
    return show_value(value)


def html_table(obj: Any, title: str | None = None) -> str:
    """A dataclass (or a mapping) as a two-column HTML table."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items = [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
        title = title or type(obj).__name__
    else:
        items = list(dict(obj).items())
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
        f"<td style='text-align:left'>{html.escape(_shown(str(k), v))}</td></tr>"
        for k, v in items
    )
    caption = (
        f"<caption style='text-align:left'><b>{html.escape(title)}</b></caption>" if title else ""
    )
    return f"<table>{caption}{rows}</table>"


RECORDS_SHOWN_AS_TABLES = (
    "eventlab._mongo.connection:DeploymentInfo",
    "eventlab.ports:Checkpoint",
    "eventlab.ports:OutboxLag",
    "eventlab.ports:LogHead",
    "eventlab._outbox.relay:RelayHealth",
    "eventlab._follow.projections:ProjectionStatus",
)
"""Records the workbench shows as HTML tables in Jupyter (the core records know nothing of
display: the workbench registers them with IPython when it is imported)."""


def register_html_tables() -> None:
    """Show eventlab's status records as tables in the running IPython kernel, if any."""
    try:
        from IPython import get_ipython
    except ImportError:  # no IPython: nothing shows HTML anyway
        return
    shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["text/html"]
    for path in RECORDS_SHOWN_AS_TABLES:
        module, _, name = path.partition(":")
        formatter.for_type_by_name(module, name, html_table)

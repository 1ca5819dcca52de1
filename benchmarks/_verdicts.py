"""Verdicts: each budget or ratio target a benchmark checks, decided once, recorded in the
benchmark's JSON and shown at the end of ``uv run pytest benchmarks`` as one table.

A verdict is *met*, *MISSED* (the run fails, unless it only records numbers), or
*server-bound*: the raw driver alone, on the same server in the same run, took more than the
budget leaves room for, so no client library could have met it here; the same benchmark's
ratio to the raw driver then carries the verdict.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

RECORD_ONLY_ENV = "EVENTLAB_BENCH_RECORD_ONLY"

Outcome = Literal["met", "MISSED", "server-bound"]


@dataclass(frozen=True)
class Verdict:
    check: str
    """What is promised, in words: ``append of 100 events``."""
    limit: float
    measured: float
    unit: str
    """``ms``, ``s`` or ``x`` (a ratio to the raw driver)."""
    outcome: Outcome
    raw: float | None = None
    """The raw driver's median for the same work, same run, in ``unit`` (``x``: in ms)."""
    why: str = ""

    @property
    def margin(self) -> float:
        """Headroom in percent of the limit (negative: over it)."""
        return (self.limit - self.measured) / self.limit * 100


VERDICTS: list[Verdict] = []
"""Every verdict of this run, in order (for the terminal summary)."""


def decide(
    benchmark: Any,
    check: str,
    *,
    limit: float,
    measured: float,
    unit: str,
    raw: float | None = None,
    server_bound: str = "",
) -> Verdict:
    """Record a verdict on ``benchmark`` and fail on a miss (unless the run only records).

    ``server_bound``: why the server alone leaves no room for the limit (then not asserted).
    """
    outcome: Outcome = "server-bound" if server_bound else "met"
    if not server_bound and measured > limit:
        outcome = "MISSED"
    verdict = Verdict(check, limit, measured, unit, outcome, raw, server_bound)
    VERDICTS.append(verdict)
    benchmark.extra_info.setdefault("verdicts", []).append(asdict(verdict))
    if outcome == "MISSED" and os.environ.get(RECORD_ONLY_ENV) != "1":
        raise AssertionError(
            f"{check}: {_amount(measured, unit)} against a limit of {_amount(limit, unit)}"
        )
    return verdict


def _amount(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"


_HEADER = ("check", "limit", "measured", "margin", "baseline", "verdict")


def _rows(verdicts: list[Verdict]) -> list[tuple[str, ...]]:
    return [
        (
            v.check,
            ("≤ " if v.unit == "x" else "< ") + _amount(v.limit, v.unit),
            _amount(v.measured, v.unit),
            f"{v.margin:+.0f} %",
            "" if v.raw is None else _amount(v.raw, "ms" if v.unit == "x" else v.unit),
            v.outcome,
        )
        for v in verdicts
    ]


def _footer(verdicts: list[Verdict]) -> list[str]:
    lines = [f"* {v.check}: {v.why}" for v in verdicts if v.why]
    met = sum(v.outcome == "met" for v in verdicts)
    missed = sum(v.outcome == "MISSED" for v in verdicts)
    bound = len(verdicts) - met - missed
    lines.append(
        f"{met} met, {missed} missed, {bound} server-bound. measured: a time's median, or a "
        "ratio of lower quartiles (benchmarks/_paired.py); margin: the headroom left; "
        "baseline: the raw driver doing the same work, or what a ratio compares with"
    )
    return lines


def table(verdicts: list[Verdict]) -> list[str]:
    """The verdicts as aligned text lines, server-bound ones explained below the table."""
    header, rows = _HEADER, _rows(verdicts)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(0, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    return lines + _footer(verdicts)


def markdown(verdicts: list[Verdict]) -> list[str]:
    """The same table in Markdown (benchmarks/README.md)."""
    lines = ["| " + " | ".join(_HEADER) + " |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(verdicts)]
    return [*lines, "", *_footer(verdicts)]


def from_json(benchmarks: list[dict[str, Any]]) -> list[Verdict]:
    """The verdicts recorded in a pytest-benchmark JSON file's benchmarks."""
    return [
        Verdict(**verdict)
        for bench in benchmarks
        for verdict in bench.get("extra_info", {}).get("verdicts", [])
    ]

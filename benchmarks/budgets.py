"""Budgets and ratio targets: the one place the benchmark suites read them from."""

from __future__ import annotations

BUDGETS_SECONDS = {
    # the seed's success criteria, on the median
    "append-100": 0.050,
    "load-1000": 0.100,
}

RATIO_TARGETS = {
    # eventlab's median over the raw driver's median on the same server, same run
    "append-100": 1.25,
    "load-1000": 1.25,
    "codec-decode": 3.0,
    "frame": 2.0,
}

"""Paired benchmarks: eventlab and its raw-driver baseline measured in alternation.

Medians of the same raw query drift by ±40% over a minute on the embedded server (a Python
process sharing two cores with the client, with periodic checkpoints). Measuring eventlab in one
test and the baseline in another compares two different minutes. Here every round first times
the baseline operation (in pytest-benchmark's untimed ``setup``), then pytest-benchmark times
eventlab's operation: both see the same server state, and the ratio of their medians is stable.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from .budgets import BUDGETS_SECONDS, RATIO_TARGETS

# How to measure a benchmark again, by the id of its pytest-benchmark fixture: a missed target
# is re-measured once, with more rounds, before it fails (see ``_confirmed``).
_REMEASURE: dict[int, Callable[[int], tuple[float, float]]] = {}
REMEASURE_ROUNDS = 30


def paired(
    benchmark: Any,
    *,
    name: str,
    server: str,
    target: Callable[..., Any],
    baseline: Callable[..., Any],
    prepare: Callable[[], tuple[Any, ...]] = tuple,
    prepare_baseline: Callable[[], tuple[Any, ...]] = tuple,
    rounds: int = 15,
    warmup_rounds: int = 2,
    settle: float = 0.0,
) -> Any:
    """Benchmark ``target(*prepare())`` against ``baseline(*prepare_baseline())``, alternating.

    Only the two calls are timed, never the preparation of their inputs. ``settle`` seconds of
    idle time precede each of the two calls, so that neither starts while the server is still
    cleaning up after the other (the embedded server is a Python process sharing the CPUs).

    Records median, baseline median, ratio, budget and target in ``extra_info`` and returns the
    target's last result.
    """
    baseline_times: list[float] = []

    def timed_baseline_then_prepare(times: list[float]) -> tuple[Any, ...]:
        """One round's untimed part: time the baseline into ``times``, prepare the target."""
        baseline_args = prepare_baseline()
        if settle:
            time.sleep(settle)
        started = time.perf_counter()
        baseline(*baseline_args)
        times.append(time.perf_counter() - started)
        target_args = prepare()
        if settle:
            time.sleep(settle)
        return target_args

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return timed_baseline_then_prepare(baseline_times), {}

    def remeasure(rounds: int) -> tuple[float, float]:
        """Medians (eventlab, baseline) of ``rounds`` more paired rounds, timed the same way."""
        target_times: list[float] = []
        base_times: list[float] = []
        for _ in range(rounds):
            target_args = timed_baseline_then_prepare(base_times)
            started = time.perf_counter()
            target(*target_args)
            target_times.append(time.perf_counter() - started)
        return statistics.median(target_times), statistics.median(base_times)

    _REMEASURE[id(benchmark)] = remeasure
    result = benchmark.pedantic(target, setup=setup, rounds=rounds, warmup_rounds=warmup_rounds)
    measured = baseline_times[warmup_rounds:] or baseline_times
    median = benchmark.stats.stats.median
    base = statistics.median(measured)
    info: dict[str, Any] = {
        "suite": name,
        "server": server,
        "median_ms": round(median * 1e3, 3),
        "baseline_median_ms": round(base * 1e3, 3),
        "baseline_max_ms": round(max(measured) * 1e3, 3),
        "ratio": round(median / base, 3),
    }
    if name in BUDGETS_SECONDS:
        info["budget_ms"] = BUDGETS_SECONDS[name] * 1e3
    if name in RATIO_TARGETS:
        info["ratio_target"] = RATIO_TARGETS[name]
    benchmark.extra_info.update(info)
    return result


RECORD_ONLY_ENV = "EVENTLAB_BENCH_RECORD_ONLY"


def _verdict(met: bool, message: str) -> None:
    """Fail the benchmark on a missed target, unless the run only records numbers.

    Record-only runs (``EVENTLAB_BENCH_RECORD_ONLY=1``) are for showing numbers, as notebook 04
    does: whether a budget holds on this machine is then reported, not raised, so that a
    notebook (and the test that executes it) never fails on the speed of the machine.
    """
    if not met and os.environ.get(RECORD_ONLY_ENV) != "1":
        raise AssertionError(message)


def _confirmed(benchmark: Any, holds: Callable[[float, float], bool]) -> bool:
    """Whether a target holds, measured again before it is declared missed.

    One unlucky minute on a shared machine (a checkpoint of the embedded server, another
    process) must not decide a verdict: a miss is re-measured with ``REMEASURE_ROUNDS`` more
    paired rounds, and the verdict is that of the larger sample. Both are recorded.
    """
    info = benchmark.extra_info
    if holds(info["median_ms"], info["baseline_median_ms"]):
        return True
    remeasure = _REMEASURE.get(id(benchmark))
    if remeasure is None:
        return False
    median, base = remeasure(REMEASURE_ROUNDS)
    info["remeasured_median_ms"] = round(median * 1e3, 3)
    info["remeasured_baseline_median_ms"] = round(base * 1e3, 3)
    info["remeasured_ratio"] = round(median / base, 3)
    return holds(info["remeasured_median_ms"], info["remeasured_baseline_median_ms"])


def assert_ratio(benchmark: Any) -> None:
    """Assert the suite's ratio target (recorded as met / missed either way)."""
    info = benchmark.extra_info
    met = _confirmed(benchmark, lambda median, base: median / base <= info["ratio_target"])
    info["ratio_status"] = "met" if met else "missed"
    _verdict(
        met, f"{info['suite']}: {info['ratio']}x the raw driver, target {info['ratio_target']}x"
    )


def assert_budget(benchmark: Any) -> None:
    """Assert the seed budget where the server leaves eventlab room to meet it.

    A budget is a claim about eventlab's cost, and eventlab's cost is the raw driver's plus the
    overhead its ratio target allows. Where the raw driver alone needs more than
    ``budget / ratio_target`` (the embedded server is a Python process whose speed swings
    +-30 % with the machine), no client could promise the budget: the result is recorded as
    server-bound and the ratio target, asserted in the same run, carries the verdict. Elsewhere
    (a quiet machine, a real MongoDB) the budget is asserted, re-measured once before it fails.
    """
    info = benchmark.extra_info
    budget_ms = info["budget_ms"]
    floor_ms = budget_ms / info.get("ratio_target", 1.0)

    def server_bound(base: float) -> bool:
        return base >= floor_ms

    if server_bound(info["baseline_median_ms"]):
        info["budget_status"] = f"server-bound: raw driver {info['baseline_median_ms']:.0f} ms"
        return
    met = _confirmed(benchmark, lambda median, base: median < budget_ms or server_bound(base))
    info["budget_status"] = "met" if met else "MISSED"
    _verdict(met, f"{info['suite']}: median {info['median_ms']} ms over budget {budget_ms} ms")

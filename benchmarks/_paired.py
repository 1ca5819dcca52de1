"""Paired benchmarks: eventlab and its raw-driver baseline measured in alternation.

Medians of the same raw query drift by ±40% over a minute on the embedded server (a Python
process sharing two cores with the client, with periodic checkpoints). Measuring eventlab in one
test and the baseline in another compares two different minutes. Here every round first times
the baseline operation (in pytest-benchmark's untimed ``setup``), then pytest-benchmark times
eventlab's operation: both see the same server state.

A ratio is decided on the lower quartiles of the two samples, not their medians. Interference
on a shared machine (the server's own garbage collection, another process) only ever adds
time, to a third or more of the rounds, at random: the median of 20 paired rounds then moves
the ratio by +-15 % between runs for an identical cost, while the lower quartile, the least
disturbed half of each sample, moves it by a few percent. The ratio of the medians is recorded
beside it (``ratio_of_medians``). Budgets, claims about absolute time, stay on the median.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from ._verdicts import decide
from .budgets import BUDGETS_SECONDS, CHECKS, RATIO_TARGETS

QUICK_ENV = "EVENTLAB_BENCH_QUICK"
"""Set to 1 for a quick look: at most 5 paired rounds per benchmark."""

# How to measure a benchmark again, by the id of its pytest-benchmark fixture: a missed target
# is re-measured once, with more rounds, before it fails (see ``_confirmed``).
_REMEASURE: dict[int, Callable[[int], None]] = {}
REMEASURE_ROUNDS = 30


def lower_quartile(times: list[float]) -> float:
    """The sample's first quartile (its least disturbed half's upper end)."""
    if len(times) < 2:
        return times[0]
    return statistics.quantiles(times, n=4, method="inclusive")[0]


def _summary(info: dict[str, Any], target: list[float], base: list[float], prefix: str) -> None:
    """Medians, lower quartiles and the ratio of the quartiles, in ms, into ``info``."""
    info[f"{prefix}median_ms"] = round(statistics.median(target) * 1e3, 3)
    info[f"{prefix}baseline_median_ms"] = round(statistics.median(base) * 1e3, 3)
    info[f"{prefix}quartile_ms"] = round(lower_quartile(target) * 1e3, 3)
    info[f"{prefix}baseline_quartile_ms"] = round(lower_quartile(base) * 1e3, 3)
    info[f"{prefix}ratio"] = round(lower_quartile(target) / lower_quartile(base), 3)
    medians = statistics.median(target) / statistics.median(base)
    info[f"{prefix}ratio_of_medians"] = round(medians, 3)


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

    Records medians, lower quartiles, the ratio, budget and target in ``extra_info`` and
    returns the target's last result.
    """
    baseline_times: list[float] = []
    if os.environ.get(QUICK_ENV) == "1":  # a quick look (notebook 04): fewer rounds, same pairing
        rounds, warmup_rounds = min(rounds, 5), min(warmup_rounds, 1)

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

    def remeasure(rounds: int) -> None:
        """``rounds`` more paired rounds, timed the same way, pooled with the first sample."""
        target_times: list[float] = list(benchmark.stats.stats.data)
        base_times = list(baseline_times[warmup_rounds:] or baseline_times)
        for _ in range(rounds):
            target_args = timed_baseline_then_prepare(base_times)
            started = time.perf_counter()
            target(*target_args)
            target_times.append(time.perf_counter() - started)
        _summary(benchmark.extra_info, target_times, base_times, "remeasured_")
        benchmark.extra_info["remeasured_rounds"] = len(target_times)

    # A miss is measured again with three times the first sample's rounds, at most
    # REMEASURE_ROUNDS: a suite of a few long rounds (a scavenge: 7 s a pair) stays a few.
    _REMEASURE[id(benchmark)] = lambda more: remeasure(min(more, 3 * rounds))
    result = benchmark.pedantic(target, setup=setup, rounds=rounds, warmup_rounds=warmup_rounds)
    measured = baseline_times[warmup_rounds:] or baseline_times
    info: dict[str, Any] = {"suite": name, "server": server}
    _summary(info, list(benchmark.stats.stats.data), measured, "")
    info["baseline_max_ms"] = round(max(measured) * 1e3, 3)
    if name in BUDGETS_SECONDS:
        info["budget_ms"] = BUDGETS_SECONDS[name] * 1e3
    if name in RATIO_TARGETS:
        info["ratio_target"] = RATIO_TARGETS[name]
    benchmark.extra_info.update(info)
    return result


def _confirmed(benchmark: Any, holds: Callable[[str], bool]) -> bool:
    """Whether a target holds, measured again before it is declared missed.

    ``holds(prefix)`` decides on the figures in ``extra_info`` under ``prefix`` (``""``: the
    first sample). One unlucky minute on a shared machine (a checkpoint of the embedded server,
    another process) must not decide a verdict: a miss is re-measured with
    ``REMEASURE_ROUNDS`` more paired rounds (at most three times the first sample's), pooled
    with the first, and the verdict is that of the larger sample. Both are recorded.
    """
    if holds(""):
        return True
    remeasure = _REMEASURE.get(id(benchmark))
    if remeasure is None:
        return False
    if "remeasured_ratio" not in benchmark.extra_info:
        remeasure(REMEASURE_ROUNDS)
    return holds("remeasured_")


def _check(info: dict[str, Any], what: str = "") -> str:
    words = CHECKS.get(info["suite"], info["suite"])
    size = info.get("store_size")
    return f"{words}{f' ({size:,} events)' if size else ''}{what}"


def assert_ratio(benchmark: Any) -> None:
    """Decide the suite's ratio target (eventlab's lower quartile over the raw driver's)."""
    info = benchmark.extra_info
    _confirmed(benchmark, lambda at: info[f"{at}ratio"] <= info["ratio_target"])
    at = "remeasured_" if "remeasured_ratio" in info else ""
    verdict = decide(
        benchmark,
        _check(info, ", ratio" if info["suite"] in BUDGETS_SECONDS else ""),
        limit=info["ratio_target"],
        measured=info[f"{at}ratio"],
        unit="x",
        raw=info[f"{at}baseline_quartile_ms"],
    )
    info["ratio_status"] = verdict.outcome


def assert_budget(benchmark: Any) -> None:
    """Decide the budget where the server leaves eventlab room to meet it.

    A budget is a claim about eventlab's cost, and eventlab's cost is the raw driver's plus the
    overhead its ratio target allows. Where the raw driver alone needs more than
    ``budget / ratio_target`` (the embedded server is a Python process whose speed swings
    +-30 % with the machine), no client could promise the budget: the result is recorded as
    server-bound and the ratio target, decided in the same run, carries the verdict. Elsewhere
    (a quiet machine, a real MongoDB) the budget is asserted, re-measured once before it fails.
    """
    info = benchmark.extra_info
    budget_ms = info["budget_ms"]
    target = info.get("ratio_target", 1.0)
    room_ms = budget_ms / target
    base = info["baseline_median_ms"]
    if base < room_ms and not _confirmed(benchmark, lambda at: info[f"{at}median_ms"] < budget_ms):
        base = info["remeasured_baseline_median_ms"]  # the verdict is the larger sample's
    why = ""
    if base >= room_ms:
        why = (
            f"the raw driver alone took {base:.1f} ms, more than the "
            f"{room_ms:.1f} ms a client within {target}x of it can be given under a "
            f"{budget_ms:.0f} ms budget: the server is the limit on this machine, and the "
            "ratio decides"
        )
    verdict = decide(
        benchmark,
        _check(info),
        limit=budget_ms,
        measured=info.get("remeasured_median_ms", info["median_ms"]),
        unit="ms",
        raw=info.get("remeasured_baseline_median_ms", info["baseline_median_ms"]),
        server_bound=why,
    )
    info["budget_status"] = verdict.outcome

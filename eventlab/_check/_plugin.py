"""The pytest plugin of ``eventlab check``: the URI and scratch database as fixtures, and each
test's outcome collected for the verdict table (pytest's own output is not shown)."""

from __future__ import annotations

import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import Phase, settings

from .._core.uris import scrub
from ..statemachines._profiles import BOUNDED
from ._verdicts import Verdict

MACHINE_SCALE = {
    "test_model_streams": 1.0,
    "test_model_decisions": 2.0,
    "test_model_followers": 0.5,
}
"""Examples of each machine per example asked for (the cheaper machines run more)."""

GROUPS = {
    "TestContractsTransactional": "contract suites, transactional positions",
    "TestContractsPreallocated": "contract suites, preallocated positions",
    "test_model_streams": "model-based run: streams, aggregates, snapshots",
    "test_model_decisions": "model-based run: DCB decisions",
    "test_model_followers": "model-based run: consumers and projectors",
}


def machine_run_settings(examples: int) -> settings:
    """Bounded and derandomised; no shrinking (a failing example is reported as found, at
    once: the test suite's runs shrink it)."""
    return settings(
        BOUNDED,
        max_examples=examples,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )


@dataclass
class CheckPlugin:
    uri: str
    database: str
    examples: int
    passed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    deselected: set[str] = field(default_factory=set)
    """Groups whose tests a ``-k`` selection (``run_check(only=...)``) left out."""

    @pytest.fixture
    def check_uri(self) -> str:
        return self.uri

    @pytest.fixture
    def check_database(self) -> str:
        return self.database

    @pytest.fixture
    def check_examples(self) -> int:
        return self.examples

    def pytest_deselected(self, items: list[Any]) -> None:
        self.deselected.update(_group(item.nodeid) for item in items)

    def pytest_runtest_logreport(self, report: Any) -> None:
        group = _group(report.nodeid)
        if report.when == "call" and report.passed:
            self.passed[group] += 1
        elif report.failed:
            name = report.nodeid.rsplit("::", 1)[-1]
            self.failures[group].append((name, scrub(report.longreprtext, self.uri)))

    def verdicts(self) -> list[Verdict]:
        found = []
        for group, what in GROUPS.items():
            failures = self.failures.get(group, [])
            held = self.passed.get(group, 0)
            if failures:
                names = ", ".join(name for name, _ in failures[:3])
                more = f" and {len(failures) - 3} more" if len(failures) > 3 else ""
                details = "\n\n".join(f"{name}:\n{_excerpt(text)}" for name, text in failures)
                found.append(
                    Verdict(what, "failed", f"{len(failures)} failed: {names}{more}", details)
                )
            elif held and group in MACHINE_SCALE:
                examples = machine_examples(group, self.examples)
                plural = "s" if examples != 1 else ""
                why = f"{examples} example{plural}, the lanes agree with the model"
                found.append(Verdict(what, "held", why))
            elif held:
                found.append(Verdict(what, "held", f"{held} test{'s' if held > 1 else ''}"))
            elif group not in self.deselected:  # left out by a selection: not in the table
                found.append(Verdict(what, "failed", "did not run"))
        return found


def machine_examples(test: str, examples: int) -> int:
    return max(1, int(examples * MACHINE_SCALE[test]))


def _group(nodeid: str) -> str:
    parts = nodeid.split("::")
    return parts[1].split("[")[0] if len(parts) > 1 else nodeid


def _excerpt(text: str) -> str:
    """The error lines of a pytest report (the assertion, a machine's failing steps), not its
    whole traceback."""
    lines = text.splitlines()
    errors = [line[1:] for line in lines if line.startswith("E")]
    kept = [line for line in errors if "reproduce_failure" not in line]
    return textwrap.dedent("\n".join(kept or lines[-20:]))

"""What ``eventlab check`` found, one verdict per line: held, what the deployment cannot do,
failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["held", "cannot", "failed"]


@dataclass(frozen=True)
class Verdict:
    """One check: what was checked, how it came out, and a short why."""

    what: str
    outcome: Outcome
    why: str = ""
    details: str = ""
    """What to read after the table (a failing example's steps)."""


@dataclass
class Report:
    """The verdicts of one run, printed as a table."""

    header: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)

    def add(self, verdict: Verdict) -> None:
        self.verdicts.append(verdict)

    @property
    def failed(self) -> bool:
        return any(v.outcome == "failed" for v in self.verdicts)

    def summary(self) -> str:
        counts = {
            o: sum(v.outcome == o for v in self.verdicts) for o in ("held", "cannot", "failed")
        }
        if counts["held"] == len(self.verdicts):
            return f"all held ({counts['held']} checks)"
        return (
            f"{counts['held']} held, {counts['cannot']} the deployment cannot do, "
            f"{counts['failed']} failed"
        )

    def lines(self) -> list[str]:
        width = max((len(v.what) for v in self.verdicts), default=0)
        table = [f"  {v.outcome:<7} {v.what:<{width}}  {v.why}".rstrip() for v in self.verdicts]
        details = [f"\n{v.what} failed:\n{v.details.rstrip()}" for v in self.verdicts if v.details]
        return [*self.header, "", *table, "", self.summary(), *details]

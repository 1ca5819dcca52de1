"""The error taxonomy is what README's "Errors: what to catch" table says: the checks are read
from that table (one source), one test per branch; private control flow stays off it; the
transaction runners never run a unit again on an unknown commit outcome."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import time
from pathlib import Path

import pytest
from pymongo.errors import OperationFailure

import eventlab
from eventlab._core import errors as _errors
from eventlab._mongo.transaction_policy import map_error, transient

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(\w+)` \|(.*)\|(.*)\|(.*)\|$")
NAME = re.compile(r"`(\w+Error)`")


def _section(text: str, title: str) -> str:
    start = text.index(title)
    return text[start : text.index("\n## ", start + 1)]


def readme_table() -> dict[str, list[str]]:
    """Each branch of README's table and the errors it names as examples."""
    section = _section((ROOT / "README.md").read_text(), "## Errors: what to catch")
    table: dict[str, list[str]] = {}
    for line in section.splitlines():
        found = ROW.match(line)
        if found and found.group(1) != "catch":
            table[found.group(1)] = NAME.findall(found.group(4))
    return table


def readme_states() -> list[str]:
    """The errors README lists as naming a state, not a retry policy."""
    section = _section((ROOT / "README.md").read_text(), "## Errors: what to catch")
    paragraph = section[section.index("The others name a state") :].split("\n\n")[0]
    return NAME.findall(paragraph)


TABLE = readme_table()
BRANCHES = {name: getattr(eventlab, name) for name in TABLE}


def every_eventlab_error() -> set[type[eventlab.EventlabError]]:
    for module in pkgutil.walk_packages(eventlab.__path__, "eventlab."):
        parts = module.name.split(".")
        if {"cli", "embedded", "samples", "__main__"} & set(parts):
            continue  # entry points and sample domains: their imports start servers or need extras
        importlib.import_module(module.name)
    found: set[type[eventlab.EventlabError]] = set()
    todo = [eventlab.EventlabError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_the_table_has_the_branches_of_the_errors_module() -> None:
    docstring = _errors.__doc__ or ""
    in_docstring = re.findall(r"^:class:`(\w+)`", docstring, re.M)
    assert list(TABLE) == in_docstring, "README's table and _errors' docstring list the branches"
    assert len(TABLE) == 6


@pytest.mark.parametrize("branch", list(TABLE))
def test_a_branch_holds_what_the_table_says(branch: str) -> None:
    base = BRANCHES[branch]
    assert base.__bases__[0] is eventlab.EventlabError, f"{branch} is a branch of EventlabError"
    others = [b for name, b in BRANCHES.items() if name != branch]
    assert not any(issubclass(base, other) for other in others)
    for name in TABLE[branch]:
        error = getattr(eventlab, name)
        assert issubclass(error, base), f"{name} is a {branch}"
        assert not any(issubclass(error, other) for other in others), f"{name}: one branch only"
        assert error.retryable is (branch == "TransientError"), f"{name}.retryable"


def test_only_a_transient_error_is_retryable() -> None:
    for error in every_eventlab_error():
        assert error.retryable is issubclass(error, eventlab.TransientError), error
    assert not eventlab.CommitOutcomeUnknownError.retryable
    assert not issubclass(eventlab.CommitOutcomeUnknownError, eventlab.TransientError)


def test_every_error_is_public_and_in_one_place_of_the_table() -> None:
    listed = {name for names in TABLE.values() for name in names} | set(TABLE)
    states = set(readme_states())
    assert states, "README names the errors that name a state"
    public = {
        getattr(module, name)
        for module in (eventlab, importlib.import_module("eventlab.workbench"))
        for name in getattr(module, "__all__", ())
        if inspect.isclass(getattr(module, name))
    }
    for error in every_eventlab_error():
        assert error in public, f"{error.__module__}.{error.__name__} is an EventlabError only a "
        "caller can see: make it public, or an InternalSignal if it is control flow"
    for name in eventlab.__all__:
        error = getattr(eventlab, name)
        if not (inspect.isclass(error) and issubclass(error, eventlab.EventlabError)):
            continue
        if name in listed or name in states or error is eventlab.EventlabError:
            continue
        kinds = [*BRANCHES.values(), *(getattr(eventlab, state) for state in states)]
        assert any(issubclass(error, kind) for kind in kinds), f"{name} belongs nowhere"


def test_private_control_flow_is_off_the_public_hierarchy() -> None:
    from eventlab._follow.projector import _Superseded
    from eventlab._follow.subscriber import _LeaseLost
    from eventlab._mongo.positions import StrategyChanged

    for signal in (StrategyChanged, _Superseded, _LeaseLost):
        assert issubclass(signal, _errors.InternalSignal)
        assert not issubclass(signal, eventlab.EventlabError), signal


def test_the_runners_never_run_a_unit_again_on_an_unknown_commit() -> None:
    later = time.monotonic() + 60
    unknown = OperationFailure(
        "x", code=50, details={"errorLabels": ["UnknownTransactionCommitResult"]}
    )
    assert isinstance(map_error(unknown), eventlab.CommitOutcomeUnknownError)
    assert not transient(unknown, later, typed=True)
    assert not transient(map_error(unknown), later, typed=True)
    for retried in (
        eventlab.WriteConflictError("x"),
        eventlab.PositionsAbandonedError("x"),
        eventlab.TransactionAbortedError("x"),
    ):
        assert transient(retried, later, typed=True), retried
    for final in (eventlab.DeploymentError("x"), eventlab.ConcurrencyError("s", 1, 2)):
        assert not transient(final, later, typed=True), final


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (13, eventlab.NotAuthorizedError),
        (2, eventlab.DeploymentError),
        (112, eventlab.WriteConflictError),
        (251, eventlab.TransactionAbortedError),
        (11602, eventlab.ConnectionFailedError),
        (189, eventlab.ConnectionFailedError),
    ],
)
def test_server_errors_map_by_what_the_caller_does(code: int, expected: type) -> None:
    mapped = map_error(OperationFailure("the server said no", code=code))
    assert type(mapped) is expected
    assert "transaction" not in str(mapped).lower() or code in (112, 251)

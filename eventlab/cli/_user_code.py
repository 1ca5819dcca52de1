"""Your own code on the command line: ``--registry myapp.domain:registry``,
``--projection myapp.views:OnLoan``.

A reference is ``module:attribute``, each a dotted path of Python identifiers; it is refused
before anything is imported when it is not one (a file path, ``../x``, an empty part). The
module is imported from the working directory first, then the installed packages, as
``python -m`` would. Every failure is an :class:`~eventlab.EventlabError` naming the
reference and what went wrong.
"""

from __future__ import annotations

import difflib
import importlib
import keyword
import os
import sys
from typing import Any

from .._core.errors import EventlabError
from ._app import CommandLineError

_MAX_REFERENCE = 300


def load(reference: str, option: str) -> Any:
    """The object ``module:attribute`` names (``option``: the flag, for messages)."""
    module_name, attribute = _parse(reference, option)
    module = _import(module_name, option)
    found: Any = module
    walked = module_name
    for part in attribute.split("."):
        if not hasattr(found, part):
            near = difflib.get_close_matches(part, [n for n in dir(found) if not n.startswith("_")])
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise EventlabError(f"{option} {reference}: {walked} has no attribute {part!r}{hint}")
        found = getattr(found, part)
        walked = f"{walked}.{part}"
    return found


def load_registry(reference: str) -> Any:
    """The :class:`~eventlab.EventRegistry` ``--registry`` names."""
    from .._core.registry import EventRegistry

    found = load(reference, "--registry")
    if not isinstance(found, EventRegistry):
        raise EventlabError(
            f"--registry {reference} is {_describe(found)}, not an EventRegistry "
            "(e.g. registry = EventRegistry(); registry.register_all(...))"
        )
    return found


def load_aggregate_class(reference: str) -> type[Any]:
    """The :class:`~eventlab.AggregateRoot` subclass ``--aggregate`` names."""
    from .._core.domain import AggregateRoot

    found = load(reference, "--aggregate")
    if not (isinstance(found, type) and issubclass(found, AggregateRoot)):
        raise EventlabError(
            f"--aggregate {reference} is {_describe(found)}, not a subclass of AggregateRoot"
        )
    return found


def aggregate_class_beside(registry_reference: str, aggregate_type: str) -> type[Any]:
    """The aggregate class named ``aggregate_type`` in the module of ``--registry``."""
    from .._core.domain import AggregateRoot

    module_name, _ = _parse(registry_reference, "--registry")
    found = getattr(_import(module_name, "--registry"), aggregate_type, None)
    if not (isinstance(found, type) and issubclass(found, AggregateRoot)):
        raise EventlabError(
            f"no aggregate class {aggregate_type!r} in {module_name} (the stream's aggregate "
            "type): pass --aggregate module:Class"
        )
    return found


def load_projection(reference: str) -> Any:
    """A :class:`~eventlab.Projection` instance from ``--projection`` (a class is made with
    no arguments)."""
    from .._follow.projections import Projection

    found = load(reference, "--projection")
    if isinstance(found, type) and issubclass(found, Projection):
        try:
            found = found()
        except Exception as exc:
            raise EventlabError(
                f"--projection {reference}: {found.__name__}() failed: {_first_line(exc)}"
            ) from exc
    if not isinstance(found, Projection):
        raise EventlabError(
            f"--projection {reference} is {_describe(found)}, not a Projection (a subclass of "
            "eventlab.Projection, or an instance of one)"
        )
    return found


def _parse(reference: str, option: str) -> tuple[str, str]:
    shown = reference if len(reference) <= 60 else f"{reference[:57]}..."
    module_name, colon, attribute = reference.partition(":")
    if (
        not colon
        or len(reference) > _MAX_REFERENCE
        or not all(_identifier(p) for p in module_name.split("."))
        or not all(_identifier(p) for p in attribute.split("."))
    ):
        raise CommandLineError(
            f"{option} takes module:attribute, a dotted module path and a name in it (e.g. "
            f"myapp.domain:registry), not {shown!r}"
        )
    return module_name, attribute


def _identifier(part: str) -> bool:
    return part.isidentifier() and not keyword.iskeyword(part)


def _import(module_name: str, option: str) -> Any:
    here = os.getcwd()
    if here not in sys.path:  # the console script's path is its own bin/, not here
        sys.path.insert(0, here)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise EventlabError(
                f"{option}: no module named {exc.name!r} in this directory or the installed "
                "packages"
            ) from exc
        raise EventlabError(f"{option}: importing {module_name} failed: {exc}") from exc
    except (Exception, SystemExit) as exc:
        raise EventlabError(
            f"{option}: importing {module_name} failed: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _describe(found: Any) -> str:
    if isinstance(found, type):
        return f"the class {found.__name__}"
    name = type(found).__name__
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""The public names of ``eventlab``: imported when first used, each from the module the
imports for type checkers name, and the three lists (those imports, the lazy table,
``__all__``) in step."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import eventlab

INIT = Path(eventlab.__file__)


def type_checking_imports() -> dict[str, str]:
    """name -> module of the imports under ``if TYPE_CHECKING:``."""
    tree = ast.parse(INIT.read_text())
    (guard,) = [
        n
        for n in tree.body
        if isinstance(n, ast.If) and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"
    ]
    found: dict[str, str] = {}
    for node in guard.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names:
            found[alias.name] = f".{node.module}" if node.module else f".{alias.name}"
    return found


def test_the_imports_the_lazy_table_and_all_agree() -> None:
    declared = type_checking_imports()
    lazy = {name: module for module, names in eventlab._LAZY.items() for name in names}
    lazy |= {module[1:]: module for module, names in eventlab._LAZY.items() if not names}
    assert lazy == declared
    assert sorted(eventlab.__all__) == sorted(declared)


@pytest.mark.parametrize("name", eventlab.__all__)
def test_every_public_name_is_the_object_its_module_defines(name: str) -> None:
    module = importlib.import_module(type_checking_imports()[name], "eventlab")
    expected = module if module.__name__ == f"eventlab.{name}" else getattr(module, name)
    assert getattr(eventlab, name) is expected
    assert name in dir(eventlab)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'MongoEventStor'"):
        eventlab.MongoEventStor  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(ImportError):
        exec("from eventlab import MongoEventStor", {})


def test_importing_eventlab_loads_neither_the_driver_nor_pydantic() -> None:
    code = (
        "import sys, eventlab, eventlab.embedded\n"
        "heavy = {'pymongo', 'pydantic', 'pandas', 'opentelemetry'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "from eventlab import MongoEventStore\n"
        "assert 'pymongo' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_public_name_has_its_place_in_the_api_reference() -> None:
    """The documentation site renders each name of ``eventlab.__all__``: by itself
    (``::: eventlab.Name``) or as a member of a module page (``::: eventlab.ports``)."""
    reference = INIT.parent.parent / "docs" / "reference"
    rendered = {
        line.removeprefix("::: ").strip()
        for page in reference.glob("*.md")
        for line in page.read_text().splitlines()
        if line.startswith("::: ")
    }
    module_pages = [importlib.import_module(page) for page in rendered if _is_module(page)]
    missing = [
        name
        for name in eventlab.__all__
        if f"eventlab.{name}" not in rendered
        and not any(getattr(page, name, None) is getattr(eventlab, name) for page in module_pages)
    ]
    assert not missing, f"add them to a page of docs/reference/: {missing}"


def _is_module(path: str) -> bool:
    try:
        return importlib.util.find_spec(path) is not None
    except ModuleNotFoundError:  # a name in a module, not a module
        return False

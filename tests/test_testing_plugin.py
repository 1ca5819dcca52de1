"""The pytest plugin as a user meets it: a project made from the tutorial (its domain, its
test, its conftest.py with one plugin line), run by pytest in a subprocess on both backends,
with no asyncio settings of the user's own; a setting the user chose kept; a backend that is
not one refused."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
SECTION = "## 9. "


def tutorial_blocks() -> tuple[list[str], str]:
    """The page's python blocks before section 9, and section 9's text."""
    page = TUTORIAL.read_text()
    before, _, section = page.partition(SECTION)
    section = section.partition("When you are done")[0]
    return re.findall(r"^```python\n(.*?)^```", before, re.S | re.M), section


def parsed(source: str) -> ast.Module:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    module: ast.Module = compile(source, "tutorial", "exec", flags=flags)
    return module


def library_module() -> str:
    """``library.py``: the definitions of the tutorial's blocks (imports, classes, functions,
    the registry), without what the page runs in a notebook."""
    blocks, _ = tutorial_blocks()
    kept: list[str] = []
    for source in blocks:
        for node in parsed(source).body:
            definition = isinstance(
                node,
                ast.Import | ast.ImportFrom | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef,
            )
            if definition or _makes_the_registry(node):
                kept.append(ast.unparse(node))
    return "\n\n".join(kept) + "\n"


def _makes_the_registry(node: ast.stmt) -> bool:
    """``registry = EventRegistry()`` or ``registry.register_all(...)``."""
    if isinstance(node, ast.Assign):
        return [ast.unparse(target) for target in node.targets] == ["registry"]
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and ast.unparse(node.value.func).startswith("registry.")
    )


def library_test_source() -> str:
    """``test_library.py`` as section 9 says: its imports, then its test."""
    _, section = tutorial_blocks()
    (source,) = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    (test,) = [n for n in parsed(source).body if isinstance(n, ast.AsyncFunctionDef)]
    from_library = re.search(r"`(from library import [^`]+)`", section)
    from_eventlab = re.search(r"`(from eventlab import [^`]+)`", section)
    assert from_library and from_eventlab, "section 9 names the test module's imports"
    return "\n".join(
        ["import pytest", from_eventlab.group(1), from_library.group(1), "", ast.unparse(test)]
    )


def conftest_module() -> str:
    _, section = tutorial_blocks()
    (source,) = re.findall(r'^```python title="conftest.py"\n(.*?)^```', section, re.S | re.M)
    return str(source)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("EVENTLAB_TEST_MONGODB_URI", raising=False)
    pytester.makepyfile(
        library=library_module(), test_library=library_test_source(), conftest=conftest_module()
    )
    return pytester


@pytest.mark.parametrize(
    ("args", "where"),
    [((), "the in-memory backend"), (("--eventlab-backend=mongo",), "the embedded server")],
    ids=["memory", "mongo"],
)
def test_the_tutorials_tests_pass_on_both_backends_with_no_asyncio_settings(
    project: pytest.Pytester, args: tuple[str, ...], where: str
) -> None:
    assert not (project.path / "pytest.ini").exists() and not list(project.path.glob("*.toml"))
    result = project.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"eventlab: event_store on {where}*; asyncio mode auto (set by eventlab.testing: "
            "no asyncio_mode configured)"
        ]
    )
    output = result.stdout.str() + result.stderr.str()
    assert "Warning" not in output, output  # a first run as clean as a second


def test_an_asyncio_mode_the_user_chose_is_kept(project: pytest.Pytester) -> None:
    project.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    project.makepyfile(
        test_marked=(
            "import pytest\n\n\n@pytest.mark.asyncio\n"
            "async def test_marked(event_store):\n"
            "    assert await event_store.get_current_version('x') == 0\n"
        )
    )
    result = project.runpytest_subprocess("test_marked.py")
    result.assert_outcomes(passed=1)
    assert "set by eventlab.testing" not in result.stdout.str()
    unmarked = project.runpytest_subprocess("test_library.py")  # strict: the user's choice
    assert "passed" not in unmarked.stdout.str().splitlines()[-1]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        (("--eventlab-backend=postgres",), "invalid choice: 'postgres'"),
        ("[pytest]\neventlab_backend = sqlite\n", "eventlab_backend must be memory or mongo"),
    ],
    ids=["option", "setting"],
)
def test_a_backend_that_is_not_one_is_a_usage_error(
    project: pytest.Pytester, how: tuple[str, ...] | str, expected: str
) -> None:
    if isinstance(how, str):
        project.makeini(how)
        how = ()
    result = project.runpytest_subprocess(*how)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in result.stderr.str(), result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_one_line_on_the_command_line_is_enough(project: pytest.Pytester) -> None:
    (project.path / "conftest.py").write_text(
        conftest_module().replace('pytest_plugins = ["eventlab.testing"]\n', "")
    )
    result = project.runpytest_subprocess("-p", "eventlab.testing")
    result.assert_outcomes(passed=1)

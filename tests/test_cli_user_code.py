"""The CLI on a domain of your own: ``replay --registry``, ``projections --projection``,
``rebuild --projection``, with modules found in the working directory; and references that
are not what they claim (a missing module, the wrong kind of object, a path, a module that
fails to import) refused in one line, with nothing written."""

from __future__ import annotations

import asyncio
import importlib
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventlab import AggregateStore, MongoConnectionManager, MongoEventStore
from eventlab.cli import app

runner = CliRunner()

LIBRARY = """
from eventlab import AggregateRoot, DomainEvent, EventRegistry, Projection, applies, on


class BookAdded(DomainEvent):
    aggregate_type = "Book"
    title: str


class BookLent(DomainEvent):
    aggregate_type = "Book"
    member: str


class Book(AggregateRoot):
    def __init__(self, id):
        super().__init__(id)
        self.title = ""
        self.on_loan_to = None

    def add(self, title):
        self.record(BookAdded(title=title))

    def lend(self, member):
        self.record(BookLent(member=member))

    @applies(BookAdded)
    def _added(self, event):
        self.title = event.title

    @applies(BookLent)
    def _lent(self, event):
        self.on_loan_to = event.member


registry = EventRegistry()
registry.register_all(BookAdded, BookLent)


class OnLoan(Projection):
    name = "on_loan"
    version = 1

    @on("BookAdded")
    async def added(self, rows, event):
        rows.put(event.aggregate_id, {"title": event.payload["title"], "member": None})

    @on("BookLent")
    async def lent(self, rows, event):
        row = await rows.get(event.aggregate_id) or {}
        rows.put(event.aggregate_id, {**row, "member": event.payload["member"]})


class Faulty(Projection):
    name = "faulty"
    version = 1

    @on("BookLent")
    async def lent(self, rows, event):
        rows.put(event.aggregate_id, {"quantity": event.payload["quantity_missing"]})
"""


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of your own in the working directory; its name."""
    name = f"library_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(LIBRARY))
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI adds the working directory
    monkeypatch.delenv("EVENTLAB_MONGODB_URI", raising=False)
    yield name
    sys.modules.pop(name, None)
    sys.modules.pop("broken", None)


def seed(uri: str, database: str, module_name: str) -> None:
    sys.path.insert(0, str(Path.cwd()))
    domain = importlib.import_module(module_name)

    async def run() -> None:
        async with MongoConnectionManager(uri, database=database) as conn:
            books = AggregateStore(MongoEventStore(conn, registry=domain.registry))
            for book_id, title in (("book-1", "Middlemarch"), ("book-2", "Dubliners")):
                book = domain.Book(book_id)
                book.add(title)
                await books.save(book)
            book = await books.load(domain.Book, "book-1")
            book.lend("ada")
            await books.save(book)

    asyncio.run(run())


def test_replay_projections_and_rebuild_on_your_own_domain(
    mongo_uri: str, database_name: str, library: str
) -> None:
    seed(mongo_uri, database_name, library)
    target = ["--uri", mongo_uri, "--database", database_name]
    replayed = runner.invoke(
        app, ["replay", "book-1", *target, "--registry", f"{library}:registry"]
    )
    assert replayed.exit_code == 0, replayed.output
    assert replayed.output.splitlines() == [
        "v1   BookAdded            title: '' → Middlemarch",
        "v2   BookLent             on_loan_to: ∅ → ada",
    ]
    named = runner.invoke(
        app,
        ["replay", "book-2", *target, "--registry", f"{library}:registry",
         "--aggregate", f"{library}:Book"],
    )  # fmt: skip
    assert named.exit_code == 0 and "→ Dubliners" in named.output, named.output
    projection = ["--projection", f"{library}:OnLoan"]
    before = runner.invoke(app, ["projections", *target, *projection])
    assert before.exit_code == 0, before.output
    line = next(ln for ln in before.output.splitlines() if ln.startswith("on_loan"))
    assert "not built" in line, line  # status makes nothing; rebuild builds it
    rebuilt = runner.invoke(app, ["rebuild", "on_loan", *target, *projection])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt on_loan: generation 2, 2 rows at position 3" in rebuilt.output
    after = runner.invoke(app, ["projections", *target, *projection])
    line = next(ln for ln in after.output.splitlines() if ln.startswith("on_loan"))
    assert line.split()[1:5] == ["1", "2", "3", "0"], line  # version, generation, at 3, caught up
    samples = runner.invoke(app, ["rebuild", "order_totals", *target, *projection])
    assert samples.exit_code == 1 and "known: on_loan" in samples.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--registry", "no_such_module:registry"], "no module named 'no_such_module'"),
        (["--registry", "{lib}:regsitry"], "no attribute 'regsitry' (did you mean 'registry'?)"),
        (["--registry", "{lib}:Book"], "is the class Book, not an EventRegistry"),
        (["--registry", "{lib}:OnLoan.name"], "is a str, not an EventRegistry"),
        (["--registry", "../../etc/passwd:x"], "--registry takes module:attribute"),
        (["--registry", "/etc/passwd"], "--registry takes module:attribute"),
        (["--registry", "os:system;rm"], "--registry takes module:attribute"),
        (["--registry", "a" * 5000 + ":x"], "--registry takes module:attribute"),
        (["--registry", "class:x"], "--registry takes module:attribute"),
        (["--registry", "broken:x"], "importing broken failed: RuntimeError: boom at import"),
        (["--aggregate", "{lib}:Book"], "--aggregate needs --registry"),
        (["--registry", "{lib}:registry", "--aggregate", "{lib}:registry"],
         "is an EventRegistry, not a subclass of AggregateRoot"),
    ],
    ids=["missing module", "typo", "a class", "a str", "a path", "a file", "a command",
         "huge", "a keyword", "fails at import", "aggregate alone", "not an aggregate"],
)  # fmt: skip
def test_replay_refuses_a_reference_that_is_not_what_it_claims(
    mongo_uri: str, database_name: str, library: str, args: list[str], expected: str
) -> None:
    seed(mongo_uri, database_name, library)
    args = [a.replace("{lib}", library) for a in args]
    result = runner.invoke(
        app, ["replay", "book-1", "--uri", mongo_uri, "--database", database_name, *args]
    )
    # A malformed reference is a usage error (2); one that names the wrong thing fails (1).
    usage = "takes module:attribute" in expected or "needs --registry" in expected
    assert result.exit_code == (2 if usage else 1), result.output
    assert expected in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("{lib}:registry", "is an EventRegistry, not a Projection"),
        ("{lib}:Book", "is the class Book, not a Projection"),
        ("no_such_module:OnLoan", "no module named 'no_such_module'"),
        ("{lib}:OnLoan:x", "--projection takes module:attribute"),
    ],
)
def test_rebuild_refuses_what_is_not_a_projection_and_writes_nothing(
    mongo_uri: str, database_name: str, library: str, reference: str, expected: str
) -> None:
    seed(mongo_uri, database_name, library)
    target = ["--uri", mongo_uri, "--database", database_name]
    args = ["--projection", reference.replace("{lib}", library)]
    for command in (["projections"], ["rebuild", "on_loan"]):
        result = runner.invoke(app, [*command, *target, *args])
        usage = "takes module:attribute" in expected  # a malformed reference: exit code 2
        assert result.exit_code == (2 if usage else 1), result.output
        assert expected in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    from pymongo import MongoClient

    with MongoClient(mongo_uri) as client:
        written = client[database_name].list_collection_names()
    assert not [c for c in written if c.startswith("rm_")], written


def test_an_error_in_your_projection_is_reported_as_yours(
    mongo_uri: str, database_name: str, library: str
) -> None:
    seed(mongo_uri, database_name, library)
    target = ["--uri", mongo_uri, "--database", database_name]
    result = runner.invoke(app, ["rebuild", "faulty", *target, "--projection", f"{library}:Faulty"])
    assert result.exit_code == 1, result.output
    assert "projection faulty raised KeyError: 'quantity_missing' (in your code" in result.output
    assert "a bug" not in result.output and "Traceback" not in result.output

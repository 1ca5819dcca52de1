"""``eventlab check URI`` against the embedded server: an all-held verdict, nothing written
outside its scratch database (which is dropped after); and the hostile cases: a database that
exists, a read-only user (a server started with authentication), an unreachable host, a
malformed URI, a missing extra. Secrets are never printed."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from typer.testing import CliRunner

from eventlab._check import CHECK_EXTRA, run_check
from eventlab._check import _run as check_run
from eventlab.cli import app
from eventlab.embedded import EmbeddedMongo, find_server_executable

PASSWORD = "s3cret-Pw-never-shown"


def checked(uri: str, **options: Any) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = run_check(uri, echo=lines.append, **options)
    return code, lines


def scratch_databases(client: MongoClient[Any]) -> list[str]:
    return [name for name in client.list_database_names() if name.startswith("eventlab_check")]


def with_database(uri: str, database: str) -> str:
    base, _, query = uri.partition("/?")
    return f"{base}/{database}?{query}"


def test_the_embedded_server_holds_and_only_the_scratch_database_is_written(
    mongo_uri: str, database_name: str
) -> None:
    """A URI naming a database that holds data: the check writes nothing there, drops its
    scratch database, and every verdict holds."""
    client: MongoClient[Any] = MongoClient(mongo_uri)
    try:
        client[database_name]["precious"].insert_many([{"_id": n, "n": n} for n in range(5)])
        before = list(client[database_name]["precious"].find())
        # A part of the suites (tests/test_contracts.py and tests/model run all of them): the
        # check's machinery end to end, on a database that holds data.
        only = "test_model_decisions or (TestContractsTransactional and (dcb or isolation))"
        code, lines = checked(with_database(mongo_uri, database_name), examples=2, only=only)
        assert client[database_name].list_collection_names() == ["precious"]
        assert list(client[database_name]["precious"].find()) == before
        assert scratch_databases(client) == []
    finally:
        client.close()
    table = "\n".join(lines)
    assert "scratch database eventlab_check_" in table
    for what in ("contract suites, transactional", "model-based run: DCB", "DCB capacity race"):
        assert f"held    {what}" in table
    assert lines[-1].startswith("all held"), table
    assert code == 0


def test_an_existing_scratch_database_is_refused_and_left_alone(
    mongo_uri: str, database_name: str
) -> None:
    client: MongoClient[Any] = MongoClient(mongo_uri)
    try:
        client[database_name]["mine"].insert_one({"_id": 1})
        code, lines = checked(mongo_uri, database=database_name)
        assert list(client[database_name]["mine"].find()) == [{"_id": 1}]
        assert client[database_name].list_collection_names() == ["mine"]
    finally:
        client.close()
    assert code == 1
    (line,) = lines
    assert f"database {database_name!r} exists" in line and line.startswith("eventlab check: ")


@pytest.mark.parametrize(
    "name",
    ["", "a/b", "has space", "x" * 100, "$where", "eventlab.check", "local\x00", "admin", "Config"],
)
def test_a_bad_scratch_database_name_is_refused(mongo_uri: str, name: str) -> None:
    code, lines = checked(mongo_uri, database=name)
    assert code == 1 and len(lines) == 1 and "database" in lines[0].lower()


@pytest.fixture
def authenticated_server(tmp_path: Path) -> Iterator[int]:
    """An embedded server started with ``--auth``: an administrator and a user who may only
    read one database. Users are created without auth first, as the server's docs say."""
    storage = tmp_path / "data"
    with EmbeddedMongo(storage_path=storage) as setup:
        admin: MongoClient[Any] = MongoClient(setup.uri)
        admin.admin.command("createUser", "root", pwd=PASSWORD, roles=["root"])
        admin.admin.command(
            "createUser", "reader", pwd=PASSWORD, roles=[{"role": "read", "db": "shop"}]
        )
        admin["shop"]["orders"].insert_one({"_id": 1})
        admin.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [find_server_executable(), "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--storage-path", str(storage), "--auth"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    root: MongoClient[Any] = MongoClient(
        f"mongodb://root:{PASSWORD}@127.0.0.1:{port}/?directConnection=true",
        serverSelectionTimeoutMS=60_000,
    )
    try:
        root.admin.command("ping")  # waits (server selection) until the server answers
        yield port
    finally:
        root.close()
        server.terminate()
        server.wait(timeout=30)


def test_a_read_only_user_gets_one_line_and_nothing_is_written(authenticated_server: int) -> None:
    port = authenticated_server
    uri = (
        f"mongodb://reader:{PASSWORD}@127.0.0.1:{port}/shop?directConnection=true&authSource=admin"
    )
    code, lines = checked(uri)
    assert code == 1
    (line,) = lines
    assert "may not read database 'eventlab_check_" in line and "readWrite" in line
    assert PASSWORD not in line and "reader:" not in line
    root: MongoClient[Any] = MongoClient(
        f"mongodb://root:{PASSWORD}@127.0.0.1:{port}/?directConnection=true"
    )
    try:
        assert scratch_databases(root) == []
        assert list(root["shop"]["orders"].find()) == [{"_id": 1}]
    finally:
        root.close()


def test_a_user_who_may_read_but_not_write_the_scratch_database(authenticated_server: int) -> None:
    port = authenticated_server
    root: MongoClient[Any] = MongoClient(
        f"mongodb://root:{PASSWORD}@127.0.0.1:{port}/?directConnection=true"
    )
    try:
        root.admin.command(
            "createUser", "viewer", pwd=PASSWORD, roles=[{"role": "read", "db": "scratch_ro"}]
        )
        uri = f"mongodb://viewer:{PASSWORD}@127.0.0.1:{port}/?directConnection=true"
        code, lines = checked(uri, database="scratch_ro")
        assert "scratch_ro" not in root.list_database_names()
    finally:
        root.close()
    assert code == 1
    (line,) = lines
    assert "may not write database 'scratch_ro'" in line and PASSWORD not in line


def test_an_unreachable_host_is_one_line_and_exit_code_1() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, lines = checked(f"mongodb://admin:{PASSWORD}@127.0.0.1:{port}/?directConnection=true")
    assert code == 1
    (line,) = lines
    assert line.startswith("eventlab check: cannot reach MongoDB at mongodb://***@127.0.0.1")
    assert PASSWORD not in line


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost:27017",
        "mongodb://",
        "mongodb://localhost:notaport",
        f"mongodb://user:{PASSWORD}@host:99999",
        "not a uri",
        f"mongodb+srv://user:{PASSWORD}@",
    ],
)
def test_a_malformed_uri_is_one_line_and_exit_code_1(uri: str) -> None:
    code, lines = checked(uri)
    assert code == 1
    (line,) = lines
    assert line.startswith("eventlab check: ") and PASSWORD not in line


def test_without_the_check_extra_one_line_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(check_run, "missing_dependencies", lambda: ["hypothesis"])
    assert checked("mongodb://127.0.0.1:1/") == (1, [CHECK_EXTRA])


def test_the_cli_command_exits_with_the_verdict() -> None:
    result = CliRunner().invoke(app, ["check", f"mongodb://u:{PASSWORD}@localhost:notaport"])
    assert result.exit_code == 1
    assert result.output.startswith("eventlab check: ") and PASSWORD not in result.output
    assert len(result.output.strip().splitlines()) == 1
    refused = CliRunner().invoke(app, ["check", "mongodb://localhost/", "--examples", "0"])
    assert refused.exit_code != 0 and "--examples" in refused.output
    assert os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") is None

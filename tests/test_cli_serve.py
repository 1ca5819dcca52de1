"""``eventlab serve`` as a user runs it, twice: one serve per directory, a port in use refused
in one line, nothing of another server touched, a crash of its server reported as one, and
a serve killed outright leaving no false record. Each serve is a real process; the tests wait
on what it prints, never on time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BANNER = "eventlab embedded server on "


class Serve:
    """An ``eventlab serve`` process in ``directory``."""

    def __init__(self, directory: Path, *args: str) -> None:
        directory.mkdir(exist_ok=True)
        self.directory = directory
        self.process = subprocess.Popen(
            [sys.executable, "-m", "eventlab.cli", "serve", *args],
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)},
        )

    def ready(self) -> str:
        """Wait for the banner (the signal that it serves); its URI."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith(BANNER), line + self.finish()[1]
        return line.removeprefix(BANNER).strip()

    def finish(self) -> tuple[int, str, str]:
        """Wait for it to end: exit code, the rest of stdout, stderr (read through the same
        buffers as :meth:`ready`, which may hold lines already)."""
        assert self.process.stdout is not None and self.process.stderr is not None
        out = self.process.stdout.read()  # to the end: the process has ended
        err = self.process.stderr.read()
        return self.process.wait(), out, err

    def stop(self) -> tuple[int, str, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.finish()

    @property
    def record_file(self) -> Path:
        return self.directory / ".eventlab" / "serve.json"

    def record(self) -> dict[str, object]:
        return dict(json.loads(self.record_file.read_text()))


@pytest.fixture
def serves() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for serve in started:
        serve.stop()


def refused(serve: Serve, expected: str) -> str:
    code, out, err = serve.finish()
    assert code == 1, (out, err)
    assert out == "" and err.startswith("error: ") and expected in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_a_second_serve_in_a_directory_is_refused_and_touches_nothing(
    tmp_path: Path, serves: list[Serve]
) -> None:
    first = Serve(tmp_path / "here")
    serves.append(first)
    uri = first.ready()
    record = first.record_file.read_text()
    second = Serve(tmp_path / "here")
    message = refused(second, "`eventlab serve` already runs in this directory")
    assert uri in message and f"pid {first.process.pid}" in message
    port = uri.split(":")[2].split("/")[0]
    third = Serve(tmp_path / "here", "--port", port)  # its port too: the directory is refused
    refused(third, "already runs in this directory")
    assert first.record_file.read_text() == record, "the running serve's record is untouched"
    assert first.process.poll() is None
    code, out, _ = first.stop()
    assert code == 0 and out.rstrip().endswith("stopped")
    assert not first.record_file.exists()


def test_a_port_in_use_is_refused_in_one_line_and_the_other_server_is_left_alone(
    tmp_path: Path, serves: list[Serve]
) -> None:
    first = Serve(tmp_path / "one")
    serves.append(first)
    uri = first.ready()
    record = first.record_file.read_text()
    port = uri.split(":")[2].split("/")[0]
    other = Serve(tmp_path / "two", "--port", port)
    refused(other, f"port {port} on 127.0.0.1 is in use")
    assert not (tmp_path / "two" / ".eventlab").exists(), "nothing made for nothing"
    assert first.record_file.read_text() == record and first.process.poll() is None
    from pymongo import MongoClient

    with MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
        assert client.admin.command("ping")["ok"] == 1, "the first server still serves"


def test_a_server_that_dies_under_serve_is_an_error(tmp_path: Path, serves: list[Serve]) -> None:
    serve = Serve(tmp_path / "here")
    serves.append(serve)
    serve.ready()
    server_pid = serve.record()["server_pid"]
    assert isinstance(server_pid, int)
    os.kill(server_pid, signal.SIGKILL)
    code, _, err = serve.finish()
    assert code == 1 and "the embedded server stopped by itself (exit code -9)" in err, err
    assert len(err.strip().splitlines()) == 1
    assert not serve.record_file.exists()


def test_a_killed_serve_leaves_no_false_record(
    tmp_path: Path, serves: list[Serve], monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventlab._core.deployment import running_serve

    killed = Serve(tmp_path / "here")
    serves.append(killed)
    killed.ready()
    killed.process.kill()  # SIGKILL: no cleanup runs; its server dies with it
    killed.finish()
    assert killed.record_file.exists(), "the record of a killed serve stays on disk"
    monkeypatch.chdir(tmp_path / "here")
    assert running_serve() is None, "but nobody holds the directory: it is not trusted"
    again = Serve(tmp_path / "here")
    serves.append(again)
    uri = again.ready()
    assert running_serve() == uri and again.record()["pid"] == again.process.pid


def test_commands_beside_serve_use_it_and_serve_keeps_its_data_where_it_says(
    tmp_path: Path, serves: list[Serve], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from eventlab.cli import app

    runner = CliRunner()
    serve = Serve(tmp_path)
    serves.append(serve)
    uri = serve.ready()
    record = serve.record()
    assert record["pid"] == serve.process.pid and record["uri"] == uri
    assert not uri.startswith("mongodb://127.0.0.1:27017/"), "mongod's port"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTLAB_MONGODB_URI", raising=False)
    imported = runner.invoke(app, ["import", str(ROOT / "data" / "orders.jsonl")])
    assert imported.exit_code == 0, imported.output
    stats = runner.invoke(app, ["stats"])
    assert "3,358 events in 800 streams" in stats.output, stats.output
    assert "Starting an embedded server" not in imported.output + stats.output
    code, output, _ = serve.stop()
    assert code == 0
    assert f"data in {tmp_path / '.eventlab' / 'data'}" in output
    assert (tmp_path / ".eventlab" / "data").is_dir()
    assert not (tmp_path / ".eventlab" / ".eventlab").exists(), "data one level too deep"
    assert not serve.record_file.exists(), "serve removes its record when it stops"
    logs = list((tmp_path / ".eventlab").glob("*.log"))
    assert all(log.stat().st_size > 0 for log in logs), "no empty log files left behind"


def test_from_env_finds_the_serve_running_here_as_the_cli_does(
    tmp_path: Path, serves: list[Serve], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from eventlab import ConfigurationError, MongoConnectionManager

    serve = Serve(tmp_path / "service")
    serves.append(serve)
    uri = serve.ready()
    monkeypatch.chdir(tmp_path / "service")
    monkeypatch.delenv("EVENTLAB_MONGODB_URI", raising=False)

    async def version() -> str:
        async with MongoConnectionManager.from_env(database="shop") as conn:
            assert conn.display_uri == uri
            return conn.info.server_version

    assert asyncio.run(version())
    monkeypatch.chdir(tmp_path)  # another directory: no serve there
    with pytest.raises(ConfigurationError, match="run `eventlab serve` in the working directory"):
        MongoConnectionManager.from_env()

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from eventlab.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_tour_runs_end_to_end(mongo_uri: str, database_name: str) -> None:
    result = runner.invoke(
        app, ["tour", "--uri", mongo_uri, "--database", database_name, "--orders", "20"]
    )
    assert result.exit_code == 0, result.output
    assert "positions 1.." in result.output and "gaps: 0" in result.output
    assert "1 writer stored its event, 15 got ConcurrencyError" in result.output
    assert "Rebuilding one order" in result.output


def test_migrate_command(mongo_uri: str, database_name: str) -> None:
    first = runner.invoke(app, ["migrate", "--uri", mongo_uri, "--database", database_name])
    assert first.exit_code == 0, first.output
    assert "applied  domain_events:0001_event_store_core" in first.output
    again = runner.invoke(app, ["migrate", "--uri", mongo_uri, "--database", database_name])
    assert "present  domain_events:0001_event_store_core" in again.output


def test_unreachable_uri_is_one_clean_line() -> None:
    result = runner.invoke(
        app, ["migrate", "--uri", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300"]
    )
    assert result.exit_code == 1
    assert "error: cannot reach MongoDB at mongodb://127.0.0.1:1" in result.output
    assert "Traceback" not in result.output


def test_invalid_database_name() -> None:
    result = runner.invoke(app, ["migrate", "--uri", "mongodb://127.0.0.1:1", "-d", "a/b"])
    assert result.exit_code == 1 and "database name" in result.output

# ruff: noqa: E501  (a table reads best one case per line)
"""No secret in any message, repr, log line or CLI output, whatever the URI's shape: a wrong or
upper-case scheme, a raw ``@`` in the password, credentials in query options, an invalid port,
an unreachable host."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote_plus

import pytest
from eventsourcing.persistence import PersistenceError
from typer.testing import CliRunner

from eventlab import EventlabError, MongoConnectionManager, MongoEventStore
from eventlab._core.uris import mask_uri
from eventlab.cli import app
from eventlab.eventsourcing import MongoApplicationRecorder, MongoDatastore

pytestmark = pytest.mark.filterwarnings("ignore:bogus is not a valid read preference")

FAST = "serverSelectionTimeoutMS=200&connectTimeoutMS=200"

# (label, uri, the secrets it carries)
SHAPES: list[tuple[str, str, list[str]]] = [
    ("plain", f"mongodb://ada:Pa55-one@127.0.0.1:1/?{FAST}", ["Pa55-one"]),
    ("upper-case scheme", "MONGODB://ada:Pa55-two@127.0.0.1:1/", ["Pa55-two"]),
    ("mixed-case scheme", "Mongodb://ada:Pa55-three@127.0.0.1:1/", ["Pa55-three"]),
    ("http scheme", "http://ada:Pa55-four@127.0.0.1:1/", ["Pa55-four"]),
    ("missing slash", "mongodb:/ada:Pa55-five@127.0.0.1:1", ["Pa55-five"]),
    ("no scheme", "ada:Pa55-six@127.0.0.1:1", ["Pa55-six"]),
    ("raw @ in password", f"mongodb://ada:Pa@55-seven@127.0.0.1:1/?{FAST}", ["Pa@55-seven", "55-seven"]),
    ("percent-encoded @", f"mongodb://ada:{quote_plus('Pa@55-eight')}@127.0.0.1:1/?{FAST}", ["Pa@55-eight", quote_plus("Pa@55-eight")]),
    ("raw / in password", f"mongodb://ada:Pa/55-nine@127.0.0.1:1/?{FAST}", ["Pa/55-nine", "55-nine"]),
    ("several hosts", f"mongodb://ada:Pa55-ten@127.0.0.1:1,127.0.0.1:2/?replicaSet=rs0&{FAST}", ["Pa55-ten"]),
    ("ipv6 host", f"mongodb://ada:Pa55-eleven@[::1]:1/?{FAST}", ["Pa55-eleven"]),
    ("aws session token", f"mongodb://127.0.0.1:1/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:Tok3n-twelve&{FAST}", ["Tok3n-twelve"]),
    ("tls key password", f"mongodb://ada:Pa55-13@127.0.0.1:1/?tls=true&tlsCertificateKeyFile=/nope.pem&tlsCertificateKeyFilePassword=K3y-13&{FAST}", ["Pa55-13", "K3y-13"]),
    ("empty user", f"mongodb://:Pa55-fourteen@127.0.0.1:1/?{FAST}", ["Pa55-fourteen"]),
    ("bad port", "mongodb://ada:Pa55-fifteen@127.0.0.1:notaport/", ["Pa55-fifteen"]),
    ("bad option", f"mongodb://ada:Pa55-sixteen@127.0.0.1:1/?readPreference=bogus&{FAST}", ["Pa55-sixteen"]),
    ("at sign in an option", f"mongodb://ada:Pa55-seventeen@127.0.0.1:1/?appname=a@b&{FAST}", ["Pa55-seventeen"]),
    ("srv unresolvable", "mongodb+srv://ada:Pa55-eighteen@cluster.example.invalid/?connectTimeoutMS=200", ["Pa55-eighteen"]),
    ("unix socket", f"mongodb://ada:Pa55-nineteen@%2Ftmp%2Fnope.sock/?{FAST}", ["Pa55-nineteen"]),
]  # fmt: skip


def _assert_clean(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{where} shows {secret!r}: {text[:300]}"


def test_there_are_at_least_fifteen_shapes() -> None:
    assert len(SHAPES) >= 15


@pytest.mark.parametrize(("label", "uri", "secrets"), SHAPES, ids=[s[0] for s in SHAPES])
async def test_the_api_never_shows_a_secret(
    label: str, uri: str, secrets: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="eventlab")
    shown: list[str] = [mask_uri(uri)]
    try:
        connection = MongoConnectionManager(uri, database="x", server_selection_timeout=0.2)
    except EventlabError as exc:
        shown.append(str(exc))
    else:
        shown += [repr(connection), connection.display_uri]
        try:
            await MongoEventStore(connection).count()
        except EventlabError as exc:
            shown += [str(exc), repr(exc), str(getattr(exc, "uri", ""))]
        else:
            pytest.fail(f"{label}: connected to a server that does not exist")
        finally:
            await connection.disconnect()
    shown += [record.getMessage() for record in caplog.records]
    _assert_clean("\n".join(shown), secrets, label)
    assert "***" in shown[0] or "@" not in uri, "the mask marks where the secret was"


@pytest.mark.parametrize(("label", "uri", "secrets"), SHAPES, ids=[s[0] for s in SHAPES])
def test_the_cli_never_shows_a_secret(label: str, uri: str, secrets: list[str]) -> None:
    result = CliRunner().invoke(app, ["stats", "--uri", uri])
    # 2: not a MongoDB URI at all (a usage error); 1: a URI the connection refuses.
    assert result.exit_code == (1 if uri.startswith(("mongodb://", "mongodb+srv://")) else 2)
    _assert_clean(result.output, secrets, f"eventlab stats ({label})")
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize(("label", "uri", "secrets"), SHAPES, ids=[s[0] for s in SHAPES])
def test_the_eventsourcing_module_never_shows_a_secret(
    label: str, uri: str, secrets: list[str]
) -> None:
    shown: list[str] = []
    datastore: Any = None
    try:
        datastore = MongoDatastore(uri, "bank")
        shown.append(repr(datastore))
        MongoApplicationRecorder(datastore, "stored_events").max_notification_id()
    except PersistenceError as exc:
        shown += [str(exc), repr(exc)]
    else:
        pytest.fail(f"{label}: reached a server that does not exist")
    finally:
        if datastore is not None:
            datastore.close()
    _assert_clean("\n".join(shown), secrets, label)

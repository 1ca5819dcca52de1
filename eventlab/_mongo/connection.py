"""Connection to a MongoDB deployment through PyMongo's native async API."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Self

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError as PyMongoConfigurationError
from pymongo.errors import ConnectionFailure, InvalidURI, PyMongoError

from .._core.bson_values import CODEC_OPTIONS, check_database_name
from .._core.deployment import URI_ENV_VAR, running_serve
from .._core.errors import ConfigurationError, ConnectionFailedError, NotConnectedError
from .._core.uris import mask_uri, scrub, uri_options
from . import liveness as liveness
from .process_registry import DEFAULT_PROCESS_LEASE, Liveness, ProcessRegistry, check_lease
from .transaction_policy import map_error

logger = logging.getLogger("eventlab")

DEFAULT_SERVER_SELECTION_TIMEOUT = 5.0
DEFAULT_HEARTBEAT_MS = 500

__all__ = ["DeploymentInfo", "MongoConnectionManager", "mask_uri"]


@dataclass(frozen=True, slots=True)
class DeploymentInfo:
    """What ``hello`` says about the deployment, read once at connect time."""

    kind: str
    """``"replica_set"``, ``"sharded"`` or ``"standalone"``."""
    set_name: str | None
    server_version: str
    max_bson_object_size: int
    logical_sessions: bool

    @property
    def supports_transactions(self) -> bool:
        """Multi-document transactions need a replica set or a mongos with sessions."""
        return self.kind in ("replica_set", "sharded") and self.logical_sessions


class MongoConnectionManager:
    """Owns an :class:`~pymongo.AsyncMongoClient` and the database eventlab works in.

    Give either ``url`` (eventlab builds and closes the client) or ``client`` (yours: eventlab never
    closes it). The client is configured with aware UTC datetimes and standard UUIDs.

    :param url: a ``mongodb://`` or ``mongodb+srv://`` URI. Its options (timeouts, TLS, the
        heartbeat) win over eventlab's defaults; credentials never appear in a message.
    :param client: an existing ``pymongo.AsyncMongoClient``.
    :param database: the database name (validated).
    :param server_selection_timeout: seconds to wait for a reachable server before failing with
        :class:`~eventlab.ConnectionFailedError` (default: the URI's
        ``serverSelectionTimeoutMS``, else 5).
    :param process_lease: seconds this process's lease lasts (renewed every sixth of it by a
        heartbeat thread, by the server's clock). If the process dies inside a transaction,
        another process that it holds up ends that transaction once the lease has expired
        (docs/positions.md, "A writer killed mid-transaction"). ``None`` turns this off:
        the server's transaction lifetime (60 s by default) then bounds such a stall.
    :param client_options: extra keyword arguments for ``AsyncMongoClient``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        database: str = "eventlab",
        client: Any = None,
        server_selection_timeout: float | None = None,
        process_lease: float | None = DEFAULT_PROCESS_LEASE,
        **client_options: Any,
    ) -> None:
        if url is not None and not isinstance(url, str):
            if client is None and isinstance(url, AsyncMongoClient):
                url, client = None, url  # a client passed positionally: the natural way
            else:
                raise ConfigurationError(
                    f"expected a mongodb:// URI string or a client, got {type(url).__name__}"
                )
        if (url is None) == (client is None):
            raise ConfigurationError("give exactly one of url= or client=")
        if url is not None and not url.startswith(("mongodb://", "mongodb+srv://")):
            raise ConfigurationError(
                f"not a MongoDB URI: {mask_uri(url)!r}; it must start with mongodb:// or "
                "mongodb+srv:// in lower case (e.g. mongodb://localhost:27017/?replicaSet=rs0)"
            )
        if client is not None and not isinstance(client, AsyncMongoClient):
            raise ConfigurationError(
                f"client must be a pymongo.AsyncMongoClient, got {type(client).__name__}"
            )
        if server_selection_timeout is not None and (
            isinstance(server_selection_timeout, bool)
            or not isinstance(server_selection_timeout, int | float)
            or not server_selection_timeout > 0
        ):
            raise ConfigurationError("server_selection_timeout must be a positive number")
        self.database_name = check_database_name(database)
        self._process_lease = check_lease(process_lease)
        self._registry: ProcessRegistry | None = None
        self._url = url
        self._given_client: AsyncMongoClient[dict[str, Any]] | None = client
        self._timeout = server_selection_timeout
        self._client_options = client_options
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._owns_client = False
        self._info: DeploymentInfo | None = None

    def __repr__(self) -> str:
        state = "connected" if self._client is not None else "not connected"
        return (
            f"<MongoConnectionManager {self.display_uri} database={self.database_name!r} {state}>"
        )

    @classmethod
    def from_env(cls, *, database: str = "eventlab", **kwargs: Any) -> MongoConnectionManager:
        """A manager for ``$EVENTLAB_MONGODB_URI``, else for the ``eventlab serve`` running in
        the working directory: the deployment the ``eventlab`` commands run here use.

        :raises ConfigurationError: there is neither.
        """
        uri = os.environ.get(URI_ENV_VAR) or running_serve()
        if not uri:
            raise ConfigurationError(
                f"no deployment to connect to: set {URI_ENV_VAR} (e.g. "
                "mongodb://localhost:27017/?replicaSet=rs0), or run `eventlab serve` in the "
                "working directory"
            )
        return cls(uri, database=database, **kwargs)

    # -- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> Self:
        """Open the client (if eventlab owns it) and read the deployment's ``hello``."""
        if self._client is not None:
            return self
        self._client, self._owns_client = self._build_client()
        try:
            hello = await self._client.admin.command("hello")
            build = await self._client.admin.command("buildInfo")
        except PyMongoError as exc:
            await self._close_owned()
            waited = f" within {self._timeout:g}s" if self._timeout else ""
            raise ConnectionFailedError(
                f"cannot reach MongoDB at {self.display_uri}{waited} "
                f"({_reason(exc, self._url)}). Is a server running there? Check the host and "
                "port, or leave the URI out to use the embedded server",
                uri=self.display_uri,
            ) from exc
        self._info = _deployment_info(hello, build)
        if self._process_lease is not None and self._info.supports_transactions:
            self._registry = liveness.attach(self._client, self.database_name, self._process_lease)
        logger.debug("connected to %s (%s)", self.display_uri, self._info)
        return self

    async def disconnect(self) -> None:
        """Close the client if eventlab opened it; a client passed in stays open."""
        registry, self._registry = self._registry, None
        if registry is not None:
            liveness.detach(registry)
        await self._close_owned()
        self._info = None

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    # -- access ----------------------------------------------------------------------------

    @property
    def client(self) -> AsyncMongoClient[dict[str, Any]]:
        """The connected client (raises :class:`NotConnectedError` before ``connect()``)."""
        if self._client is None:
            raise NotConnectedError("call `await connection.connect()` (or `async with`) first")
        return self._client

    @property
    def database(self) -> AsyncDatabase[dict[str, Any]]:
        """The configured database, with eventlab's codec options."""
        return self.client.get_database(self.database_name, codec_options=CODEC_OPTIONS)

    @property
    def info(self) -> DeploymentInfo:
        """What the deployment reported at connect time."""
        if self._info is None:
            raise NotConnectedError("call `await connection.connect()` (or `async with`) first")
        return self._info

    @property
    def is_connected(self) -> bool:
        return self._client is not None

    @property
    def supports_transactions(self) -> bool:
        """True on a replica set or sharded cluster (``hello`` reports ``setName`` or mongos)."""
        return self.info.supports_transactions

    @property
    def liveness(self) -> Liveness:
        """Whether a process of this connection that dies inside a transaction has that
        transaction ended by the processes it holds up (and if not, why)."""
        if self._process_lease is None:
            return Liveness(False, None, "turned off (process_lease=None)")
        if self._registry is not None:
            return self._registry.status
        if self._info is not None:
            return Liveness(False, self._process_lease, f"no transactions on a {self.info.kind}")
        return Liveness(False, self._process_lease, "not connected")

    async def check_liveness(self) -> Liveness:
        """:attr:`liveness`, after asking the deployment whether it allows what crash recovery
        needs (ending a session of this user, writing the process registry). A refusal is
        logged once and turns it off; an unreachable server raises
        :class:`~eventlab.ConnectionFailedError`."""
        if not self.is_connected:
            await self.connect()
        if self._registry is None:
            return self.liveness
        try:
            return await liveness.probe(self.client, self._registry)
        except ConnectionFailure as exc:
            raise self.unreachable(exc) from exc
        except PyMongoError as exc:
            raise map_error(exc) from exc

    @property
    def display_uri(self) -> str:
        """The URI with credentials and secret options masked, for messages and logs."""
        if self._url is not None:
            return mask_uri(self._url)
        try:
            assert self._given_client is not None
            nodes = self._given_client.topology_description.server_descriptions()
            return "mongodb://" + ",".join(f"{host}:{port}" for host, port in nodes)
        except Exception:
            return "<client>"

    def unreachable(self, exc: BaseException) -> ConnectionFailedError:
        """The typed error for a driver connection failure (URI shown with credentials masked)."""
        return ConnectionFailedError(
            f"MongoDB at {self.display_uri} is unreachable: {type(exc).__name__}",
            uri=self.display_uri,
        )

    # -- internals -------------------------------------------------------------------------

    def _build_client(self) -> tuple[AsyncMongoClient[dict[str, Any]], bool]:
        if self._url is None:
            assert self._given_client is not None  # one of the two, checked at construction
            return self._given_client, False
        given = uri_options(self._url)
        options: dict[str, Any] = {"tz_aware": True, "uuidRepresentation": "standard"}
        # eventlab's defaults, where the URI says nothing (the URI's own options win).
        if self._timeout is not None or "serverselectiontimeoutms" not in given:
            timeout_ms = int((self._timeout or DEFAULT_SERVER_SELECTION_TIMEOUT) * 1000)
            options["serverSelectionTimeoutMS"] = timeout_ms
            if "connecttimeoutms" not in given:
                options["connectTimeoutMS"] = timeout_ms
        if "heartbeatfrequencyms" not in given:
            # After a state-change error (a step-down, a shutdown: codes 91, 189, 11602) the
            # driver waits for its monitor to find the primary again before it can retry; at
            # the default 10 s heartbeat one commit fault stalled appends for seconds. 500 ms
            # (the driver's minimum) costs two small `hello`s a second per server.
            options["heartbeatFrequencyMS"] = DEFAULT_HEARTBEAT_MS
        options.update(self._client_options)
        try:
            return AsyncMongoClient(self._url, **options), True
        except (InvalidURI, PyMongoConfigurationError, ValueError, TypeError, OSError) as exc:
            # OSError: a TLS file named in the URI that cannot be read.
            raise ConfigurationError(
                f"invalid MongoDB URI {mask_uri(self._url)}: {scrub(str(exc), self._url)}"
            ) from None

    async def _close_owned(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            await client.close()


def _reason(exc: BaseException, uri: str | None) -> str:
    """The driver's reason without its topology dump, cut at a word, and without secrets."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for marker in (" (configured timeouts", ", Timeout:", ", Topology Description"):
        text = text.split(marker)[0]
    if len(text) > 200:
        text = text[:200].rsplit(" ", 1)[0] + " …"
    return f"{type(exc).__name__}: {scrub(text, uri)}"


def _deployment_info(hello: dict[str, Any], build: dict[str, Any]) -> DeploymentInfo:
    if hello.get("msg") == "isdbgrid":
        kind = "sharded"
    elif hello.get("setName"):
        kind = "replica_set"
    else:
        kind = "standalone"
    return DeploymentInfo(
        kind=kind,
        set_name=hello.get("setName"),
        server_version=str(build.get("version", "unknown")),
        max_bson_object_size=int(hello.get("maxBsonObjectSize", 16 * 1024 * 1024)),
        logical_sessions=hello.get("logicalSessionTimeoutMinutes") is not None,
    )

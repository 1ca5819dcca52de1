"""A generic repository of state-stored entities, with safe specification search."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from typing import Any, Generic, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from .._core.bson_values import check_collection_name, decimals_to_python
from .._core.checks import check_id, check_int
from .._core.errors import (
    ConcurrencyError,
    DeploymentError,
    EventlabError,
    InvalidIdError,
    InvalidSpecificationError,
    UniqueConstraintError,
    first_line,
)
from ..ports import UnitOfWork
from ..specification import QueryOptions
from .connection import MongoConnectionManager
from .lookups import find_in
from .mapper import VERSION_FIELD, MongoModelMapper
from .session import session_of
from .transaction_policy import map_error

T = TypeVar("T")


class MongoRepository(Generic[T]):
    """CRUD and search for one entity type in one collection.

    :param connection: the :class:`MongoConnectionManager`.
    :param collection: collection name (validated).
    :param model_cls: a pydantic model or dataclass with an ``id_field``.
    :param mapper: a custom :class:`MongoModelMapper` (e.g. with computed fields).

    Entities with a ``version`` attribute are saved with optimistic concurrency: ``add`` of an
    entity whose version is not the stored one raises :class:`ConcurrencyError`, and a successful
    ``add`` returns the entity at its new version. ``get`` returns ``None`` for a missing id.
    Every method takes ``uow=`` to run inside a :class:`MongoUnitOfWork`.
    """

    def __init__(
        self,
        *,
        connection: MongoConnectionManager,
        collection: str,
        model_cls: type[T],
        id_field: str = "id",
        mapper: MongoModelMapper[T] | None = None,
    ) -> None:
        self.connection = connection
        self.collection_name = check_collection_name(collection)
        self.model_cls = model_cls
        self._mapper = mapper or MongoModelMapper(model_cls, id_field=id_field)

    @property
    def collection(self) -> AsyncCollection[dict[str, Any]]:
        return self.connection.database[self.collection_name]

    # hooks: override for computed or derived fields
    def _mapper_to_doc(self, entity: T) -> dict[str, Any]:
        return self._mapper.to_doc(entity)

    def _mapper_from_doc(self, doc: dict[str, Any]) -> T:
        return self._mapper.from_doc(doc)

    async def add(self, entity: T, uow: UnitOfWork | None = None) -> T:
        """Insert or replace ``entity``; returns it (at its new version when versioned).

        :raises ConcurrencyError: a versioned entity was changed (or created) by someone else.
        :raises UniqueConstraintError: another unique index of the collection refused it.
        """
        doc = self._mapper_to_doc(entity)
        entity_id = check_id(doc.get("_id"), "the entity's id")
        session = session_of(uow)
        try:
            if not self._mapper.versioned:
                await self.collection.replace_one(
                    {"_id": entity_id}, doc, upsert=True, session=session
                )
                return entity
            expected = int(doc[VERSION_FIELD] or 0)
            doc[VERSION_FIELD] = expected + 1
            if expected == 0:
                await self.collection.insert_one(doc, session=session)
            else:
                result = await self.collection.replace_one(
                    {"_id": entity_id, VERSION_FIELD: expected}, doc, session=session
                )
                if result.matched_count == 0:
                    raise ConcurrencyError(
                        str(entity_id), expected, await self._stored_version(entity_id, session)
                    )
        except DuplicateKeyError as exc:
            raise await self._duplicate(exc, entity_id, doc, session) from None
        except ConnectionFailure as exc:
            raise self.connection.unreachable(exc) from exc
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return _with_version(entity, self._mapper.version_attr, expected + 1)

    async def _duplicate(
        self,
        exc: DuplicateKeyError,
        entity_id: Any,
        doc: dict[str, Any],
        session: AsyncClientSession | None,
    ) -> EventlabError:
        """What a duplicate key means: a version conflict on the id, else another index."""
        details = exc.details or {}
        pattern = details.get("keyPattern") or {}
        if pattern and "_id" not in pattern:
            index = "_".join(f"{k}_{v}" for k, v in pattern.items())
            return UniqueConstraintError(self.collection.name, index, details.get("keyValue"))
        # Inside a transaction the duplicate key has aborted it on the server: the stored
        # version is read outside it (what is committed decides).
        outside = None if session is not None and session.in_transaction else session
        actual = await self._stored_version(entity_id, outside)
        return ConcurrencyError(str(entity_id), int(doc.get(VERSION_FIELD, 1)) - 1, actual)

    async def get(self, entity_id: Any, uow: UnitOfWork | None = None) -> T | None:
        """The entity with ``entity_id``, or ``None``."""
        entity_id = check_id(entity_id, "entity_id")
        try:
            doc = await self.collection.find_one({"_id": entity_id}, session=session_of(uow))
        except ConnectionFailure as exc:
            raise self.connection.unreachable(exc) from exc
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return None if doc is None else self._mapper_from_doc(doc)

    async def delete(
        self,
        entity_id: Any,
        uow: UnitOfWork | None = None,
        *,
        expected_version: int | None = None,
    ) -> bool:
        """Delete by id; True if something was deleted.

        :param expected_version: for a versioned entity, delete only if it is still at this
            version, else :class:`ConcurrencyError` (nothing deleted).
        """
        entity_id = check_id(entity_id, "entity_id")
        query: dict[str, Any] = {"_id": entity_id}
        if expected_version is not None:
            query[VERSION_FIELD] = check_int(expected_version, "expected_version")
        session = session_of(uow)
        try:
            result = await self.collection.delete_one(query, session=session)
            if result.deleted_count == 0 and expected_version is not None:
                actual = await self._stored_version(entity_id, session)
                if actual:
                    raise ConcurrencyError(str(entity_id), expected_version, actual)
        except ConnectionFailure as exc:
            raise self.connection.unreachable(exc) from exc
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return result.deleted_count == 1

    async def list_all(
        self, entity_ids: Sequence[Any] | None = None, uow: UnitOfWork | None = None
    ) -> list[T]:
        """All entities, or those with the given ids (in the order of ``entity_ids``)."""
        if entity_ids is not None:
            if isinstance(entity_ids, str | bytes) or not isinstance(entity_ids, Sequence):
                raise InvalidIdError(
                    f"entity_ids must be a list of ids, got {type(entity_ids).__name__}"
                )
            entity_ids = [check_id(i, f"entity_ids[{n}]") for n, i in enumerate(entity_ids)]
        session = session_of(uow)
        try:
            if entity_ids is None:
                docs = await self.collection.find({}, session=session).to_list(None)
            else:
                docs = await find_in(self.collection, "_id", entity_ids, session=session)
        except ConnectionFailure as exc:
            raise self.connection.unreachable(exc) from exc
        except PyMongoError as exc:
            raise map_error(exc) from exc
        entities = [self._mapper_from_doc(doc) for doc in docs]
        if entity_ids is None:
            return entities
        by_id = {doc["_id"]: entity for doc, entity in zip(docs, entities, strict=True)}
        return [by_id[i] for i in entity_ids if i in by_id]

    def search(
        self, options: QueryOptions | None = None, uow: UnitOfWork | None = None
    ) -> SearchResult[T]:
        """A :class:`SearchResult`: ``await`` it for a list, or ``.stream()`` it."""
        return SearchResult(self, options or QueryOptions(), session_of(uow))

    async def _stored_version(self, entity_id: Any, session: AsyncClientSession | None) -> int:
        doc = await self.collection.find_one(
            {"_id": entity_id}, {VERSION_FIELD: 1}, session=session
        )
        return int(doc.get(VERSION_FIELD) or 0) if doc else 0


class SearchResult(Generic[T]):
    """The result of :meth:`MongoRepository.search`.

    ``await result`` → list of entities (or of projected dicts when the options have a
    projection); ``async for e in result.stream(batch_size=100)`` streams with flat memory;
    ``await result.count()`` is the total ignoring pagination.
    """

    def __init__(
        self,
        repository: MongoRepository[T],
        options: QueryOptions,
        session: AsyncClientSession | None,
    ) -> None:
        self._repo = repository
        self.options = options
        self._session = session
        self.filter = options.specification.to_query(repository._mapper.field_path)

    def _cursor(self, batch_size: int | None = None) -> Any:
        options = self.options
        field_path = self._repo._mapper.field_path
        projection = None
        if options.projection is not None:
            projection = {field_path(f): 1 for f in options.projection}
        cursor = self._repo.collection.find(self.filter, projection, session=self._session)
        if options.ordering:
            cursor = cursor.sort([(field_path(f), d) for f, d in options.ordering])
        if options.offset:
            cursor = cursor.skip(options.offset)
        if options.limit:
            cursor = cursor.limit(options.limit)
        if batch_size:
            cursor = cursor.batch_size(batch_size)
        return cursor

    def _convert(self, doc: dict[str, Any]) -> Any:
        if self.options.projection is None:
            return self._repo._mapper_from_doc(doc)
        return decimals_to_python(doc)

    async def _entities(self) -> list[Any]:
        with self._typed_errors():
            docs = await self._cursor().to_list(None)
        return [self._convert(doc) for doc in docs]

    @contextlib.contextmanager
    def _typed_errors(self) -> Iterator[None]:
        """The server's refusals of a query, as typed errors that name the limit."""
        try:
            yield
        except ConnectionFailure as exc:
            raise self._repo.connection.unreachable(exc) from exc
        except OverflowError as exc:
            raise InvalidSpecificationError(
                "an integer in the search does not fit MongoDB's 64-bit integers"
            ) from exc
        except DocumentTooLarge as exc:
            raise InvalidSpecificationError(
                "the search encodes to more than the server's maximum message size "
                f"({self._repo.connection.info.max_bson_object_size:,} bytes); narrow it"
            ) from exc
        except OperationFailure as exc:
            mapped = map_error(exc)
            if type(mapped) is not DeploymentError:  # not the search's fault: unavailable, ...
                raise mapped from exc
            raise InvalidSpecificationError(
                f"the server refused the search (code {exc.code}): {first_line(exc)}"
            ) from exc

    def __await__(self) -> Generator[Any, None, list[Any]]:
        return self._entities().__await__()

    async def stream(self, batch_size: int = 100) -> AsyncIterator[Any]:
        """Entities one by one, fetched ``batch_size`` documents at a time."""
        with self._typed_errors():
            async for doc in self._cursor(batch_size):
                yield self._convert(doc)

    async def count(self) -> int:
        """Documents matching the specification, ignoring pagination."""
        with self._typed_errors():
            total: int = await self._repo.collection.count_documents(
                self.filter, session=self._session
            )
        return total


def _with_version(entity: T, attr: str | None, version: int) -> T:
    if attr is None:
        return entity
    if dataclasses.is_dataclass(entity) and not isinstance(entity, type):
        return dataclasses.replace(entity, **{attr: version})
    copied: T = entity.model_copy(update={attr: version})  # type: ignore[attr-defined]
    return copied

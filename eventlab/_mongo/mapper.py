"""Entity ↔ MongoDB document mapping for pydantic models and dataclasses."""

from __future__ import annotations

import dataclasses
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from .._core.bson_values import decimals_to_python, to_bson_value
from .._core.errors import ConfigurationError, SerializationError

T = TypeVar("T")

VERSION_FIELD = "_version"
"""Document field holding an entity's optimistic-concurrency version."""


class MongoModelMapper(Generic[T]):
    """Converts entities to documents and back, exactly.

    Works for pydantic models and standard dataclasses (nested models, lists, enums, UUID,
    Decimal as Decimal128, aware datetimes, ObjectId). The entity's ``id_field`` is stored as
    ``_id``. If the entity has a ``version_attr`` attribute (default ``"version"``), it is
    stored as ``_version`` and drives optimistic concurrency in :class:`MongoRepository`.

    Subclass and override :meth:`to_doc` / :meth:`from_doc` for computed fields.
    """

    def __init__(
        self, model_cls: type[T], *, id_field: str = "id", version_attr: str | None = "version"
    ) -> None:
        is_model = isinstance(model_cls, type) and issubclass(model_cls, BaseModel)
        if not (is_model or dataclasses.is_dataclass(model_cls)):
            raise ConfigurationError(
                f"{model_cls!r} must be a pydantic model or a dataclass to be mapped"
            )
        fields = _field_names(model_cls)
        if id_field not in fields:
            raise ConfigurationError(f"{model_cls.__name__} has no id field {id_field!r}")
        self.model_cls = model_cls
        self.id_field = id_field
        self.version_attr = version_attr if version_attr in fields else None
        if not is_model and "__pydantic_config__" not in model_cls.__dict__:
            # A plain dataclass may hold driver types (ObjectId); pydantic reads this attribute
            # as the dataclass's config. A pydantic model brings its own config instead.
            model_cls.__pydantic_config__ = ConfigDict(arbitrary_types_allowed=True)  # type: ignore[attr-defined]
        self._adapter: TypeAdapter[T] = TypeAdapter(model_cls)

    @property
    def versioned(self) -> bool:
        """Whether entities carry a version used for optimistic concurrency."""
        return self.version_attr is not None

    def to_doc(self, entity: T) -> dict[str, Any]:
        """The document for ``entity`` (``_id`` first, ``_version`` if versioned)."""
        if not isinstance(entity, self.model_cls):
            raise SerializationError(
                f"expected {self.model_cls.__name__}, got {type(entity).__name__}"
            )
        data = self._adapter.dump_python(entity)
        doc: dict[str, Any] = {"_id": data.pop(self.id_field)}
        if self.version_attr is not None:
            doc[VERSION_FIELD] = data.pop(self.version_attr)
        doc.update(data)
        converted: dict[str, Any] = to_bson_value(doc, self.model_cls.__name__)
        return converted

    def from_doc(self, doc: dict[str, Any]) -> T:
        """The entity stored in ``doc`` (validated into the model's field types)."""
        data = decimals_to_python(dict(doc))
        data[self.id_field] = data.pop("_id")
        version = data.pop(VERSION_FIELD, None)
        if self.version_attr is not None:
            data[self.version_attr] = version or 0
        try:
            return self._adapter.validate_python(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise SerializationError(
                f"document {doc.get('_id')!r} does not fit {self.model_cls.__name__}: "
                f"{first['loc']}: {first['msg']}"
            ) from exc

    def field_path(self, path: str) -> str:
        """The document path for an entity field path (``id`` → ``_id``)."""
        if path == self.id_field:
            return "_id"
        if path.startswith(self.id_field + "."):
            return "_id" + path[len(self.id_field) :]
        if self.version_attr is not None and path == self.version_attr:
            return VERSION_FIELD
        return path


def _field_names(model_cls: type[Any]) -> set[str]:
    if isinstance(model_cls, type) and issubclass(model_cls, BaseModel):
        return set(model_cls.model_fields)
    return {f.name for f in dataclasses.fields(model_cls)}

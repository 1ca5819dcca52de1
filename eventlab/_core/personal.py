"""Personal fields of events: how a class declares them, and what a forgotten one reads as.

A field annotated ``Personal[T]`` holds personal data about one **subject**, named by the
event's ``personal_subject`` class variable (the name of a ``str`` field of the event)::

    class CustomerRegistered(DomainEvent):
        personal_subject: ClassVar[str] = "customer_id"
        customer_id: str
        email: Personal[str]
        birthday: Personal[date | None] = None

``Personal[T]`` is ``T | Redacted`` to type checkers and to pydantic: once the subject has
been forgotten, the field reads as :data:`REDACTED` (a :class:`Redacted`, a ``str`` that says
``<redacted>``), which still validates in the user's class, so reading never fails.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, Self, TypeVar, Union, get_args, get_origin

from pydantic import GetCoreSchemaHandler, WrapValidator
from pydantic_core import core_schema

from .checks import check_name
from .errors import ConfigurationError, InvalidIdError

T = TypeVar("T")

MAX_SUBJECT_LENGTH = 512
"""A subject id is an identifier (a UUID, a customer number), not a document."""


class Redacted(str):
    """What a personal field reads as once its subject has been forgotten: ``"<redacted>"``.

    A ``str``, so that frames, exports, BSON and JSON take it as they are; test for it with
    ``isinstance(value, Redacted)``. A ``Personal`` field whose stored text is exactly
    ``"<redacted>"`` (an export written after a forget, imported again) reads as the marker."""

    __slots__ = ()
    _instance: ClassVar[Redacted | None] = None

    def __new__(cls) -> Self:
        if cls._instance is None:
            cls._instance = super().__new__(cls, "<redacted>")
        return cls._instance  # type: ignore[return-value]

    def __repr__(self) -> str:
        return "REDACTED"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Redacted, ())

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.is_instance_schema(
            cls, serialization=core_schema.plain_serializer_function_ser_schema(_as_redacted)
        )


REDACTED = Redacted()
"""The redaction marker: the one :class:`Redacted` value."""


def _as_redacted(value: Any) -> Redacted:
    # model_dump keeps the marker itself (a str), so a redacted event dumps and re-validates.
    return REDACTED


def _keep_redacted(value: Any, handler: Any) -> Any:
    # The marker passes as it is whatever T is (an int field, a date field): a forgotten
    # value validates in the user's class instead of failing. Its text counts too: an export
    # written after a forget holds "<redacted>", and importing it must not make reads fail.
    if isinstance(value, str) and value == REDACTED:
        return REDACTED
    return handler(value)


@dataclass(frozen=True, slots=True)
class PersonalMarker:
    """The annotation that marks a field personal (``Personal[T]`` carries it)."""


PERSONAL = PersonalMarker()

Personal = Annotated[T | Redacted, PERSONAL, WrapValidator(_keep_redacted)]
"""``Personal[T]``: a field holding personal data of the event's subject (module doc)."""


@dataclass(frozen=True, slots=True)
class PersonalFields:
    """What an event class declares: its subject field and its personal fields."""

    subject_field: str
    fields: tuple[str, ...]


def check_subject(subject: Any, name: str = "subject") -> str:
    """A subject id: a non-empty ``str`` of at most :data:`MAX_SUBJECT_LENGTH` characters,
    never an operator dict (:class:`~eventlab.InvalidIdError` otherwise)."""
    checked = check_name(subject, name)
    if len(checked) > MAX_SUBJECT_LENGTH:
        raise InvalidIdError(
            f"{name} is {len(checked):,} characters long; at most {MAX_SUBJECT_LENGTH} are taken"
        )
    return checked


@cache
def personal_fields(event_class: type[Any]) -> PersonalFields | None:
    """The personal fields ``event_class`` declares, or ``None`` when it declares none.

    Raises :class:`~eventlab.ConfigurationError` for a class with personal fields and no
    ``personal_subject``, or whose subject field is missing, personal itself, or not a str.
    """
    model_fields = getattr(event_class, "model_fields", {})
    fields = tuple(
        name for name, info in model_fields.items() if _field_is_personal(event_class, name, info)
    )
    subject = getattr(event_class, "personal_subject", None)
    if not fields:
        return None
    where = f"{event_class.__qualname__}"
    if not isinstance(subject, str) or not subject:
        raise ConfigurationError(
            f"{where} has personal fields ({', '.join(fields)}) but names no subject: set "
            'personal_subject: ClassVar[str] = "<the field holding the subject id>"'
        )
    info = model_fields.get(subject)
    if info is None:
        raise ConfigurationError(f"{where}.personal_subject names {subject!r}, not a field")
    if subject in fields:
        raise ConfigurationError(f"{where}: the subject field {subject!r} cannot be personal")
    if info.annotation is not str and not _is_str_alias(info.annotation):
        raise ConfigurationError(f"{where}: the subject field {subject!r} must be a str field")
    return PersonalFields(subject, fields)


def _field_is_personal(event_class: type[Any], name: str, info: Any) -> bool:
    """Whether the field is ``Personal[T]`` or ``Personal[T] | None`` (sealed whole, ``None``
    included). ``Personal`` anywhere else (in a list, a dict, a nested model) is refused: a
    value eventlab cannot seal must never be stored in plain text."""
    if PERSONAL in (info.metadata or ()):
        return True
    annotation = info.annotation
    if _is_union(annotation):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1 and _is_personal_alias(members[0]):
            return True
    nested = _personal_inside(annotation, set())
    if nested:
        raise ConfigurationError(
            f"{event_class.__qualname__}.{name}: Personal is supported only as the whole "
            f"field's type (Personal[T], or Personal[T] | None); here it is inside {nested}. "
            "Make the field itself Personal[...] (a list or a model sealed whole), so that "
            "it is never stored in plain text (docs/forgetting.md)"
        )
    return False


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _is_personal_alias(annotation: Any) -> bool:
    return get_origin(annotation) is Annotated and PERSONAL in get_args(annotation)[1:]


def _personal_inside(annotation: Any, seen: set[int]) -> str | None:
    """Where ``Personal`` appears inside ``annotation`` (a description), or ``None``."""
    if _is_personal_alias(annotation):
        return "a container"
    if id(annotation) in seen:
        return None
    seen.add(id(annotation))
    for arg in get_args(annotation):
        inner = _personal_inside(arg, seen)
        if inner is not None:
            origin = get_origin(annotation)
            kind = "a union" if _is_union(annotation) else getattr(origin, "__name__", "a type")
            return inner if inner.startswith("the nested") else kind
    is_class = isinstance(annotation, type)
    nested_fields = getattr(annotation, "model_fields", None) if is_class else None
    if isinstance(nested_fields, dict):
        for field, info in nested_fields.items():
            if PERSONAL in (info.metadata or ()) or _personal_inside(info.annotation, seen):
                return f"the nested model {annotation.__qualname__} (field {field!r})"
    return None


def _is_str_alias(annotation: Any) -> bool:
    return get_origin(annotation) is Annotated and get_args(annotation)[0] is str

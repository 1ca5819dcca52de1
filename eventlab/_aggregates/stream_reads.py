"""Reading one stream, as stored events or as domain events: what every backend's store
offers on top of reading a stream's documents, written once."""

from __future__ import annotations

from typing import Any

from .._core.checks import check_aggregate_id, check_int, check_positive
from .._core.domain import DomainEvent
from .._core.errors import ConfigurationError
from .._core.event_codec import from_document
from .._core.records import StoredEvent, StreamVersions
from .._core.registry import EventRegistry, UnknownPolicy
from .._shred.personal_data import PersonalData
from ..ports import UnitOfWork


class ReadsStreams:
    """``read_stream`` and ``read_domain_events`` for a store that reads a stream's documents
    (``_stream_documents``) and decodes domain events by its ``registry``."""

    registry: EventRegistry
    personal: PersonalData | None = None
    """Opens personal fields on read (set by a store given a key store)."""

    async def _stream_documents(
        self, aggregate_id: str, versions: StreamVersions, uow: UnitOfWork | None
    ) -> list[dict[str, Any]]:
        """The stored documents of one stream that ``versions`` selects, in its order (copies
        the caller may keep)."""
        raise NotImplementedError

    async def read_stream(
        self,
        aggregate_id: str,
        *,
        after_version: int = 0,
        to_version: int | None = None,
        backwards: bool = False,
        max_count: int | None = None,
        uow: UnitOfWork | None = None,
    ) -> list[StoredEvent]:
        """Events of one stream with ``after_version < version <= to_version``, as stored.

        :param backwards: newest first (with ``max_count``: the last ``max_count`` events).
        :param max_count: at most this many events.
        :param uow: read in this unit of work's transaction (what it has written included).
        """
        aggregate_id = check_aggregate_id(aggregate_id)
        versions = _checked(after_version, to_version, backwards, max_count)
        documents = await self._opened(await self._stream_documents(aggregate_id, versions, uow))
        return [from_document(doc) for doc in documents]

    async def read_domain_events(
        self,
        aggregate_id: str,
        *,
        after_version: int = 0,
        to_version: int | None = None,
        backwards: bool = False,
        max_count: int | None = None,
        unknown: UnknownPolicy | None = None,
        uow: UnitOfWork | None = None,
    ) -> list[DomainEvent | StoredEvent]:
        """The events of :meth:`read_stream`, decoded through the registry into
        :class:`DomainEvent` objects (upcast).

        :param unknown: what an event of a type the registry does not know becomes:
            ``"raise"`` (:class:`UnknownEventTypeError`) or ``"raw"`` (the
            :class:`StoredEvent` as it is); default: the registry's policy.
        """
        aggregate_id = check_aggregate_id(aggregate_id)
        versions = _checked(after_version, to_version, backwards, max_count)
        policy = _checked_policy(unknown)
        documents = await self._opened(await self._stream_documents(aggregate_id, versions, uow))
        to_domain = self.registry.document_to_domain
        return [to_domain(doc, unknown=policy) for doc in documents]

    async def _opened(self, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.personal is None:
            return documents
        return await self.personal.open_documents(documents)


def _checked(
    after_version: int, to_version: int | None, backwards: bool, max_count: int | None
) -> StreamVersions:
    return StreamVersions(
        check_int(after_version, "after_version"),
        None if to_version is None else check_int(to_version, "to_version"),
        bool(backwards),
        None if max_count is None else check_positive(max_count, "max_count"),
    )


def _checked_policy(unknown: Any) -> UnknownPolicy | None:
    if unknown not in (None, "raise", "raw"):
        raise ConfigurationError(f"unknown must be 'raise', 'raw' or None, got {unknown!r:.80}")
    policy: UnknownPolicy | None = unknown
    return policy

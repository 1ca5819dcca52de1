"""The session port shared by every store that can join a caller's transaction.

Lives apart from the stores so that repositories, the event store, the outbox and user code can
all type a ``uow=`` parameter without importing one another.
"""

from __future__ import annotations

from typing import Protocol

from pymongo.asynchronous.client_session import AsyncClientSession


class SessionProvider(Protocol):
    """Anything carrying a session in an active transaction: a unit of work.

    :class:`~eventlab.MongoUnitOfWork` and the object :func:`~eventlab.run_unit_of_work` hands
    its callback are both one; pass it as ``uow=`` to have a write join that transaction.
    """

    @property
    def session(self) -> AsyncClientSession: ...


def session_of(uow: SessionProvider | None) -> AsyncClientSession | None:
    """The unit of work's session, or ``None`` outside one."""
    return uow.session if uow is not None else None

"""The unit of work a write joins: ``uow=`` on every store."""

from __future__ import annotations

from typing import Any

from ..ports import UnitOfWork


def session_of(uow: UnitOfWork | None) -> Any:
    """The unit of work's session, or ``None`` outside one."""
    return uow.session if uow is not None else None

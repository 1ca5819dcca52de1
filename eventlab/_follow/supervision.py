"""Supervision of long-running consumers (subscribers, projectors): which errors are worth
waiting out, how long to wait, and what a consumer reports about itself.

A consumer that runs live backs off and tries again after what the deployment may get over,
and stops, raising the error, on what will fail the same way every time: the same rules as
:class:`~eventlab.OutboxRelay`'s, with its health view (docs/projections.md, "Supervision").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from .._core.errors import (
    CommitOutcomeUnknownError,
    ConflictError,
    SubscriptionError,
    TransientError,
    first_line,
)
from .._core.retry import retry_delay
from .._core.tasks import finish, woken

logger = logging.getLogger("eventlab.subscriptions")

ConsumerState = Literal["stopped", "standing_by", "following", "backing_off", "failed"]

DEFAULT_MAX_BACKOFF = 10.0
"""Seconds a consumer waits at most between two tries after errors."""


def worth_retrying(exc: BaseException) -> bool:
    """Whether a consumer should back off and try again after ``exc`` rather than stop and
    raise it.

    Yes for what the deployment may get over (:class:`~eventlab.TransientError`); for an
    unknown commit outcome (a consumer reads its checkpoint again, and the checkpoint commits
    with the batch's effects, so it says what applied); for a conflict (a handler's own: the
    batch is decided again). No for what fails the same way every time: a refusal of the
    deployment such as a missing privilege (:class:`~eventlab.DeploymentError`), a wrong
    setting (:class:`~eventlab.ConfigurationError`), data that cannot be read
    (:class:`~eventlab.DataError`), and a handler's own exception (a bug: raised as it is).
    """
    return isinstance(exc, TransientError | CommitOutcomeUnknownError | ConflictError)


class Backoff:
    """Failures in a row, and how long to wait before the next try: ``base``, doubled after
    each failure, at most ``cap``, with jitter (consumers that failed together do not all try
    again at the same moment)."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def failed(self) -> float:
        """Count a failure; the seconds to wait before trying again."""
        self.failures += 1
        return retry_delay(min(self.failures, 32), self.base, self.cap)

    def succeeded(self) -> None:
        self.failures = 0


@dataclass(frozen=True, slots=True)
class ConsumerHealth:
    """A subscriber's or projector's state, for a health endpoint or a notebook cell."""

    name: str
    state: ConsumerState
    """``following`` the log, ``standing_by`` while another process runs the name,
    ``backing_off`` after an error it will try again after, ``failed`` (stopped by an error it
    raised), or ``stopped``."""
    position: int | None
    """The checkpoint as last committed by this instance (``None`` before its first)."""
    handled: int
    consecutive_errors: int
    last_error: str | None
    last_error_at: datetime | None
    last_success_at: datetime | None
    """When this instance last committed a batch or caught up."""
    lag: int | None
    """Positions between the checkpoint and the head, read when the health was asked for
    (``None``: the deployment could not be asked)."""

    @property
    def healthy(self) -> bool:
        """Following or standing by, with no error since the last success."""
        return self.state in ("following", "standing_by") and self.consecutive_errors == 0


class Supervision:
    """What a consumer records about itself as it runs (the source of its health)."""

    def __init__(self) -> None:
        self.state: ConsumerState = "stopped"
        self.backoff = Backoff(0.1, DEFAULT_MAX_BACKOFF)
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.last_success_at: datetime | None = None

    def error(self, exc: BaseException, *, final: bool) -> float:
        """Record ``exc``; the seconds to wait before trying again (unused when ``final``)."""
        self.last_error = f"{type(exc).__name__}: {first_line(exc)}"[:500]
        self.last_error_at = datetime.now(UTC)
        self.state = "failed" if final else "backing_off"
        return self.backoff.failed()

    def success(self) -> None:
        self.backoff.succeeded()
        self.state = "following"
        self.last_success_at = datetime.now(UTC)

    def health(
        self, name: str, position: int | None, handled: int, lag: int | None
    ) -> ConsumerHealth:
        return ConsumerHealth(
            name=name,
            state=self.state,
            position=position,
            handled=handled,
            consecutive_errors=self.backoff.failures,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            last_success_at=self.last_success_at,
            lag=lag,
        )


class Runs:
    """The runs of one long-running consumer (a subscriber, a projector): the stop signal of
    the current run, the background task :meth:`start` made, what happens after an error (back
    off and go on, or end the run and raise it), and the record its health is made from."""

    def __init__(self, kind: str, name: str) -> None:
        self._kind = kind
        self._name = name
        self.record = Supervision()
        self.stop_signal = asyncio.Event()
        """The stop signal of the current run: :meth:`stop` sets it."""
        self._task: asyncio.Task[None] | None = None

    def new_run(self) -> asyncio.Event:
        """The stop signal of the run about to start."""
        self.stop_signal = asyncio.Event()
        return self.stop_signal

    def start(
        self, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
    ) -> asyncio.Task[None]:
        """``run(stop)`` in a background task."""
        if self.running:
            raise SubscriptionError(f"{self._kind} {self._name!r} is already running")
        self._task = asyncio.get_running_loop().create_task(run(self.new_run()))
        return self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self, timeout: float, close: Callable[[], Awaitable[None]]) -> None:
        """Signal the current run to stop, ``close()`` what it is waiting on, and wait for the
        background task (cancelled after ``timeout``); raise the error it failed with, if any."""
        self.stop_signal.set()
        await close()
        task, self._task = self._task, None
        if task is None:
            return
        error = await finish(task, timeout)
        if error is not None:
            raise error

    async def after_error(self, exc: Exception, stop: asyncio.Event, *, to_the_head: bool) -> None:
        """Record ``exc``; raise it when it ends the run (a run to the head raises every error,
        a live one what is not :func:`worth_retrying`), else wait out the backoff (or until
        ``stop``)."""
        final = to_the_head or not worth_retrying(exc)
        delay = self.record.error(exc, final=final)
        if final:
            raise exc
        logger.warning(
            "%s %s: %s (failure %d in a row); retrying in %.2g s",
            self._kind,
            self._name,
            self.record.last_error,
            self.record.backoff.failures,
            delay,
        )
        await woken(stop, delay)

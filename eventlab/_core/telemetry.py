"""OpenTelemetry for eventlab (the ``otel`` extra): spans, metrics, and trace
context that crosses the log (docs/observability.md).

Without the OpenTelemetry API installed every hook here is a no-op: nothing is imported,
nothing is stored. With the API and no SDK configured, spans are the API's non-recording ones
and no trace context is written into events (it is invalid). Spans and instruments come from
the API's global providers, resolved when first used, so an SDK configured after eventlab is
imported is still the one that records.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from .errors import ConfigurationError

try:  # the optional extra
    from opentelemetry import metrics, propagate, trace
    from opentelemetry.trace import Link, SpanKind
except ImportError:  # pragma: no cover - exercised by the import-without-otel test
    metrics = propagate = trace = None  # type: ignore[assignment]

INSTRUMENTATION = "eventlab"
TRACE_KEYS = ("traceparent", "tracestate")
"""The W3C trace context keys eventlab writes into event metadata and message headers."""
MAX_LINKS = 32
"""Links a batch span keeps (the first producers of its events, in position order)."""

ENABLED = trace is not None


_INSTRUMENTS: tuple[tuple[str, str, str, str, str], ...] = (
    # attribute, kind, name, unit, description
    (
        "append_duration",
        "histogram",
        "eventlab.append.duration",
        "s",
        "Duration of an append, retries included",
    ),
    ("events_appended", "counter", "eventlab.events.appended", "{event}", "Events appended"),
    (
        "retries",
        "counter",
        "eventlab.transaction.retries",
        "{retry}",
        "Transactions run again (error.type: the cause)",
    ),
    (
        "unknown_commits",
        "counter",
        "eventlab.transaction.unknown_commits",
        "{commit}",
        "Commits whose outcome was unknown (retried as commits, or given up)",
    ),
    (
        "consumer_lag",
        "gauge",
        "eventlab.consumer.lag",
        "{position}",
        "Positions between a consumer's checkpoint and the head it last read",
    ),
    (
        "consumer_lag_seconds",
        "gauge",
        "eventlab.consumer.lag.seconds",
        "s",
        "Age of the last event a consumer handled (0 when caught up)",
    ),
    (
        "outbox_messages",
        "gauge",
        "eventlab.outbox.messages",
        "{message}",
        "Outbox messages by status (pending, dead)",
    ),
    (
        "outbox_oldest_age",
        "gauge",
        "eventlab.outbox.oldest_pending.age",
        "s",
        "Age of the oldest pending outbox message",
    ),
    (
        "lease_losses",
        "counter",
        "eventlab.relay.lease_losses",
        "{message}",
        "Claimed messages a relay lost to another before publishing",
    ),
)
"""The metric instruments eventlab records (docs/observability.md)."""


class _Instruments:
    """The metric instruments of :data:`_INSTRUMENTS`, made once from the global meter
    provider's (proxy) meter."""

    append_duration: Any
    events_appended: Any
    retries: Any
    unknown_commits: Any
    consumer_lag: Any
    consumer_lag_seconds: Any
    outbox_messages: Any
    outbox_oldest_age: Any
    lease_losses: Any

    def __init__(self, provider: Any) -> None:
        meter = provider.get_meter(INSTRUMENTATION)
        for attribute, kind, name, unit, description in _INSTRUMENTS:
            make = getattr(meter, f"create_{kind}")
            setattr(self, attribute, make(name, unit=unit, description=description))


_instruments: _Instruments | None = None
_tracer: Any = None
_providers: dict[str, Any] = {}


def configure(*, tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Use these providers for eventlab's spans and metrics instead of the global ones
    (``None``: the global ones again)."""
    global _instruments, _tracer
    for given, method, what in (
        (tracer_provider, "get_tracer", "tracer_provider"),
        (meter_provider, "get_meter", "meter_provider"),
    ):
        if given is not None and not callable(getattr(given, method, None)):
            raise ConfigurationError(
                f"{what} must be an OpenTelemetry provider (with {method}()), got {given!r:.80}"
            )
    _providers.clear()
    if tracer_provider is not None:
        _providers["tracer"] = tracer_provider
    if meter_provider is not None:
        _providers["meter"] = meter_provider
    _instruments = None
    _tracer = None


def instruments() -> _Instruments | None:
    global _instruments
    if not ENABLED:
        return None
    if _instruments is None:
        _instruments = _Instruments(_providers.get("meter") or metrics.get_meter_provider())
    return _instruments


def tracer() -> Any:
    global _tracer
    if _tracer is None:
        provider = _providers.get("tracer") or trace.get_tracer_provider()
        _tracer = provider.get_tracer(INSTRUMENTATION)
    return _tracer


@contextlib.contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any],
    *,
    kind: str = "internal",
    links: Iterable[Any] = (),
    parent: Any = None,
    start_time: int | None = None,
) -> Iterator[Any]:
    """A span around a block (``None`` inside without OpenTelemetry); an exception ends it
    with an error status and ``error.type``. Inside :func:`held_for_later`, the span is
    recorded instead, for :func:`emit` to place under a span that does not exist yet."""
    if not ENABLED:
        yield None
        return
    held = _held.get()
    if held is not None:
        with _recorded(held, name, attributes, kind, links) as recorded:
            yield recorded
        return
    with tracer().start_as_current_span(
        name,
        context=parent,
        kind=getattr(SpanKind, kind.upper()),
        attributes=dict(attributes),
        links=list(links),
        start_time=start_time,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__name__)
            raise


class HeldSpan:
    """A span recorded by :func:`span` inside :func:`held_for_later`: what it was and when."""

    __slots__ = ("attributes", "end", "error", "kind", "links", "name", "start")

    def __init__(self, name: str, attributes: Mapping[str, Any], kind: str, links: list[Any]):
        self.name = name
        self.attributes = dict(attributes)
        self.kind = kind
        self.links = links
        self.start = time.time_ns()
        self.end = self.start
        self.error: str | None = None

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value


_held: ContextVar[list[HeldSpan] | None] = ContextVar("eventlab_held_spans", default=None)
_MAX_HELD = 32


@contextlib.contextmanager
def held_for_later(into: list[HeldSpan]) -> Iterator[None]:
    """Spans started inside (and in tasks started inside) are recorded into ``into`` instead
    of exported: a follower's reads, whose parent is the batch they find, which does not exist
    while they run. The caller :func:`emit` them under it, or drops them."""
    token = _held.set(into) if ENABLED else None
    try:
        yield
    finally:
        if token is not None:
            _held.reset(token)


@contextlib.contextmanager
def _recorded(
    into: list[HeldSpan], name: str, attributes: Mapping[str, Any], kind: str, links: Iterable[Any]
) -> Iterator[HeldSpan]:
    recorded = HeldSpan(name, attributes, kind, list(links))
    try:
        yield recorded
    except asyncio.CancelledError:  # a read ahead given up: nothing happened worth showing
        raise
    except BaseException as exc:
        recorded.error = type(exc).__name__
        recorded.attributes["error.type"] = recorded.error
        _keep(into, recorded)
        raise
    _keep(into, recorded)


def _keep(into: list[HeldSpan], recorded: HeldSpan) -> None:
    recorded.end = time.time_ns()
    into.append(recorded)
    del into[:-_MAX_HELD]  # a long wait behind a hole keeps its last reads


def emit(held: Iterable[HeldSpan]) -> None:
    """Export recorded spans as children of the active span, with the times they ran."""
    if not ENABLED:
        return
    from opentelemetry.trace import Status, StatusCode

    parent = trace.set_span_in_context(trace.get_current_span())
    for recorded in held:
        exported = tracer().start_span(
            recorded.name,
            context=parent,
            kind=getattr(SpanKind, recorded.kind.upper()),
            attributes=recorded.attributes,
            links=recorded.links,
            start_time=recorded.start,
        )
        if recorded.error is not None:
            exported.set_status(Status(StatusCode.ERROR))
        exported.end(end_time=recorded.end)


def db_attributes(database: str, collection: str, operation: str) -> dict[str, str]:
    """OpenTelemetry's database attributes of an operation on a MongoDB collection."""
    return {
        "db.system.name": "mongodb",
        "db.namespace": database,
        "db.collection.name": collection,
        "db.operation.name": operation,
    }


def trace_context() -> dict[str, str]:
    """The active span's W3C trace context (``traceparent``, ``tracestate``), or ``{}`` when
    there is none (or OpenTelemetry is not installed): what an append stores in metadata."""
    if not ENABLED or not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {key: carrier[key] for key in TRACE_KEYS if key in carrier}


def with_trace_context(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """``metadata`` with the active trace context added (what the caller gave wins)."""
    context = trace_context()
    if not context:
        return metadata
    return {**context, **(metadata or {})}


def links_from(carriers: Iterable[Mapping[str, Any]]) -> list[Any]:
    """Links to the spans that produced events (their stored trace contexts), at most
    ``MAX_LINKS``, without repeats."""
    if not ENABLED:
        return []
    links: list[Any] = []
    seen: set[str] = set()
    for carrier in carriers:
        parent = carrier.get("traceparent")
        if not isinstance(parent, str) or parent in seen:
            continue
        seen.add(parent)
        context = trace.get_current_span(propagate.extract(dict(carrier))).get_span_context()
        if context.is_valid:
            links.append(Link(context))
            if len(links) == MAX_LINKS:
                break
    return links


def parent_from(carrier: Mapping[str, Any]) -> Any:
    """The context a stored trace context names (``None``: the active one)."""
    if not ENABLED or not isinstance(carrier.get("traceparent"), str):
        return None
    return propagate.extract(dict(carrier))


def retried(attempt: int, exc: BaseException) -> None:
    """A transaction runs again: a span event on the active span, and the retry metric."""
    found = instruments()
    if found is None:
        return
    cause = type(exc).__name__
    trace.get_current_span().add_event("eventlab.retry", {"attempt": attempt, "error.type": cause})
    found.retries.add(1, {"error.type": cause})


def unknown_commit() -> None:
    found = instruments()
    if found is not None:
        found.unknown_commits.add(1)


def appended(
    current: Any, stored: list[Any], started: float, attributes: Mapping[str, Any]
) -> None:
    """An append's outcome: positions on its span, its duration and count in the metrics."""
    found = instruments()
    if found is None:
        return
    if stored and current is not None:
        current.set_attribute("eventlab.position.first", stored[0].position or 0)
        current.set_attribute("eventlab.position.last", stored[-1].position or 0)
    found.append_duration.record(time.perf_counter() - started, attributes)
    found.events_appended.add(len(stored), attributes)


def consumer_lag(name: str, positions: int, seconds: float) -> None:
    found = instruments()
    if found is not None:
        found.consumer_lag.set(max(0, positions), {"eventlab.consumer": name})
        found.consumer_lag_seconds.set(max(0.0, seconds), {"eventlab.consumer": name})

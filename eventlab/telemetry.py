"""OpenTelemetry for eventlab (the ``otel`` extra; docs/observability.md).

eventlab uses the OpenTelemetry API's global providers unless :func:`configure` names others.
Appends made inside a span store its W3C trace context in the events' metadata (``traceparent``,
``tracestate``); subscriptions and projections link their batch spans to it; messages made
with :meth:`~eventlab.OutboxMessage.from_stored_event` carry it in their headers, and the relay
continues that trace when it publishes. For messages you make yourself, add
:func:`trace_context` to their headers.
"""

from ._core.telemetry import ENABLED, TRACE_KEYS, configure, trace_context

__all__ = ["ENABLED", "TRACE_KEYS", "configure", "trace_context"]

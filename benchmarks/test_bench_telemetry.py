"""Suite 11, telemetry: what OpenTelemetry costs the two budgeted operations, paired in one
run against the same operation with eventlab's telemetry switched off (what a process
without OpenTelemetry installed runs):

* the API installed and no SDK configured (the API's no-op providers): within 3 %;
* the SDK configured with an in-memory span exporter and metric reader: within 10 %.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventlab import EventRegistry, MongoConnectionManager, MongoEventStore
from eventlab._core import telemetry as _telemetry

from ._paired import assert_ratio, paired
from .conftest import make_events, make_store

Run = Callable[[Awaitable[Any]], Any]


@pytest.fixture(scope="module")
def store(connection: MongoConnectionManager, registry: EventRegistry, run: Run) -> MongoEventStore:
    store = make_store(connection, registry, run, "transactional", "bench_telemetry")
    sid = "telemetry-long"
    events = make_events(1000)
    for start in range(0, 1000, 250):
        run(store.append(sid, events[start : start + 250], expected_version=start))
    return store


@pytest.fixture(params=["api-only", "sdk"])
def configured(request: pytest.FixtureRequest) -> Iterator[str]:
    """Telemetry as the target runs it; the baseline switches it off for its call."""
    exporter = InMemorySpanExporter()
    if request.param == "sdk":
        tracing = TracerProvider()
        tracing.add_span_processor(SimpleSpanProcessor(exporter))
        meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
        _telemetry.configure(tracer_provider=tracing, meter_provider=meters)
    else:
        _telemetry.configure()  # the API's global providers, with no SDK behind them
    yield str(request.param)
    _telemetry.configure()
    _telemetry.ENABLED = True
    exporter.clear()


def _switched(on: bool, args: tuple[Any, ...]) -> tuple[Any, ...]:
    _telemetry.ENABLED = on
    return args


def test_append_100_with_telemetry(
    benchmark: Any, store: MongoEventStore, configured: str, run: Run, server_label: str
) -> None:
    def fresh() -> tuple[Any, ...]:
        return (f"bench-{uuid.uuid4().hex}", make_events(100))

    paired(
        benchmark,
        name=f"otel-{configured}-append-100",
        server=server_label,
        target=lambda sid, events: run(store.append(sid, events, expected_version=0)),
        prepare=lambda: _switched(True, fresh()),
        baseline=lambda sid, events: run(store.append(sid, events, expected_version=0)),
        prepare_baseline=lambda: _switched(False, fresh()),
        rounds=30,
        warmup_rounds=3,
        settle=0.05,
    )
    assert_ratio(benchmark)


def test_load_1000_with_telemetry(
    benchmark: Any, store: MongoEventStore, configured: str, run: Run, server_label: str
) -> None:
    events = paired(
        benchmark,
        name=f"otel-{configured}-load-1000",
        server=server_label,
        target=lambda: run(store.read_domain_events("telemetry-long")),
        prepare=lambda: _switched(True, ()),
        baseline=lambda: run(store.read_domain_events("telemetry-long")),
        prepare_baseline=lambda: _switched(False, ()),
        rounds=30,
        warmup_rounds=3,
        settle=0.05,
    )
    _telemetry.ENABLED = True
    assert len(events) == 1000
    assert_ratio(benchmark)

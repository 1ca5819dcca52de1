"""OpenTelemetry (eventlab[otel]), with the SDK's in-memory span exporter and metric reader:
the spans, attributes and links of request → append → subscription and projection → relay
publish, metrics
that move, trace context through an export and restore, and nothing without the SDK."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventlab import (
    ConfigurationError,
    InMemoryPublisher,
    MongoConnectionManager,
    MongoEventStore,
    MongoOutboxStore,
    OutboxMessage,
    OutboxRelay,
    Projection,
    Projector,
    Rows,
    StoredEvent,
    Subscriber,
    on,
    telemetry,
)

from .conftest import make_event, stream_id


class Otel:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.tracer = self.tracer_provider.get_tracer("tests")

    def finished(self, name: str) -> list[Any]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def metric(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [
            point
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


class NotesSeen(Projection):
    name = "notes"
    version = 1

    @on("Noted")
    async def seen(self, rows: Rows, event: StoredEvent) -> None:
        rows.put(event.aggregate_id, {"seen": True})


@pytest.fixture
def otel() -> Iterator[Otel]:
    found = Otel()
    telemetry.configure(tracer_provider=found.tracer_provider, meter_provider=found.meter_provider)
    yield found
    telemetry.configure()


async def test_an_append_in_a_request_span(otel: Otel, tx_store: MongoEventStore) -> None:
    aggregate = stream_id()
    with otel.tracer.start_as_current_span("POST /orders") as request:
        stored = await tx_store.append(
            aggregate, [make_event(aggregate, 1), make_event(aggregate, 2)], 0
        )
    (append,) = otel.finished(f"append {tx_store.events_collection_name}")
    assert append.parent.span_id == request.get_span_context().span_id
    assert append.attributes["db.system.name"] == "mongodb"
    assert append.attributes["db.operation.name"] == "append"
    assert append.attributes["eventlab.stream.id"] == aggregate
    assert append.attributes["eventlab.events.count"] == 2
    assert append.attributes["eventlab.expected_version"] == "0"
    assert append.attributes["eventlab.positions.strategy"] == "transactional"
    assert append.attributes["eventlab.position.last"] == stored[-1].position
    # The append span's context is in every event's metadata, beside the correlation id.
    traceparent = stored[0].metadata["traceparent"]
    assert traceparent.split("-")[1:3] == [
        f"{append.context.trace_id:032x}",
        f"{append.context.span_id:016x}",
    ]
    assert stored[0].metadata["correlation_id"] == "c-1"
    read = await tx_store.read_stream(aggregate)
    assert read[1].metadata["traceparent"] == traceparent
    (read_span,) = otel.finished(f"read_stream {tx_store.events_collection_name}")
    assert read_span.attributes["eventlab.events.count"] == 2
    (appended,) = otel.metric("eventlab.events.appended")
    assert appended.value == 2
    (duration,) = otel.metric("eventlab.append.duration")
    assert duration.count == 1 and duration.sum > 0


async def test_request_append_subscription_publish_is_one_trace(
    otel: Otel, tx_store: MongoEventStore, connection: MongoConnectionManager
) -> None:
    outbox = MongoOutboxStore(connection)

    async def announce(event: StoredEvent, uow: Any) -> None:
        await outbox.save_messages([OutboxMessage.from_stored_event(event)], uow=uow)

    aggregate = stream_id()
    with otel.tracer.start_as_current_span("POST /orders") as request:
        await tx_store.append(aggregate, [make_event(aggregate, 1)], 0)
    trace_id = request.get_span_context().trace_id
    await Subscriber(tx_store, "announcer", announce).run_until_caught_up()
    await Projector(tx_store, NotesSeen()).run_until_caught_up()
    publisher = InMemoryPublisher()
    relay = OutboxRelay(outbox, publisher, poll_interval=0.05)
    assert await relay.run_once() == 1

    (append,) = otel.finished(f"append {tx_store.events_collection_name}")
    (process,) = otel.finished("process announcer")
    assert process.kind.name == "CONSUMER"
    assert process.attributes["messaging.batch.message_count"] == 1
    assert [link.context.span_id for link in process.links] == [append.context.span_id]
    (projection,) = [s for s in otel.spans.get_finished_spans() if "projection:notes" in s.name]
    assert projection.name.startswith("process projection:notes:")
    assert projection.kind.name == "CONSUMER"
    assert [link.context.span_id for link in projection.links] == [append.context.span_id]
    (create,) = otel.finished("create outbox")
    assert create.parent.span_id == process.context.span_id  # saved in the batch's unit of work
    (send,) = otel.finished("send Noted")
    assert send.kind.name == "PRODUCER"
    assert send.context.trace_id == trace_id, "the publish continues the request's trace"
    assert send.parent.span_id == append.context.span_id
    (message,) = publisher.published
    assert f"{send.context.span_id:016x}" in message.headers["traceparent"]
    (receive,) = otel.finished("receive outbox")
    assert receive.attributes["messaging.batch.message_count"] == 1


async def test_lag_moves_as_a_subscriber_falls_behind_and_catches_up(
    otel: Otel, tx_store: MongoEventStore
) -> None:
    for _ in range(30):
        aggregate = stream_id()
        await tx_store.append(aggregate, [make_event(aggregate, 1)], 0)
    seen: list[int] = []

    async def on_batch(events: tuple[StoredEvent, ...], uow: Any) -> None:
        lag = [p.value for p in otel.metric("eventlab.consumer.lag")]
        seen.extend(lag)

    subscriber = Subscriber(tx_store, "laggard", None, on_batch=on_batch, batch_size=10)
    await subscriber.run_until_caught_up()
    assert seen[:2] == [20, 10], "behind by what is left after each batch"
    (last,) = otel.metric("eventlab.consumer.lag")
    assert last.value == 0 and last.attributes == {"eventlab.consumer": "laggard"}


async def test_retries_and_unknown_commits_are_counted(
    otel: Otel, tx_store: MongoEventStore
) -> None:
    admin = tx_store.connection.client.admin
    first = stream_id()
    await tx_store.append(first, [make_event(first, 1)], 0)
    faults = [
        ("insert", {"errorCode": 112, "errorLabels": ["TransientTransactionError"]}),
        ("commitTransaction", {"errorCode": 91, "errorLabels": ["UnknownTransactionCommitResult"]}),
    ]
    try:
        for command, data in faults:
            await admin.command(
                {
                    "configureFailPoint": "failCommand",
                    "mode": {"times": 1},
                    "data": {"failCommands": [command], **data},
                }
            )
            aggregate = stream_id()
            await tx_store.append(aggregate, [make_event(aggregate, 1)], 0)
    finally:
        await admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    (retries,) = otel.metric("eventlab.transaction.retries")
    assert retries.value == 1 and retries.attributes == {"error.type": "OperationFailure"}
    (unknown,) = otel.metric("eventlab.transaction.unknown_commits")
    assert unknown.value >= 1
    retried = otel.finished(f"append {tx_store.events_collection_name}")[1]
    assert [e.name for e in retried.events] == ["eventlab.retry"]


async def test_trace_context_survives_an_export_and_a_restore(
    otel: Otel, tx_store: MongoEventStore, connection: MongoConnectionManager, tmp_path: Path
) -> None:
    from eventlab.workbench._files import EventFileWriter, iter_event_chunks

    aggregate = stream_id()
    with otel.tracer.start_as_current_span("import"):
        (stored,) = await tx_store.append(aggregate, [make_event(aggregate, 1)], 0)
    path = tmp_path / "events.jsonl"
    with EventFileWriter(path) as out:
        out.write(await tx_store.read_all().to_list())
    copy = MongoEventStore(connection, events_collection="restored_events")
    for chunk in iter_event_chunks(path):
        await copy.restore(chunk)
    (restored,) = await copy.read_stream(aggregate)
    assert restored.metadata["traceparent"] == stored.metadata["traceparent"]
    (restore_span,) = otel.finished("restore restored_events")
    assert restore_span.attributes["eventlab.events.count"] == 1


async def test_without_an_sdk_nothing_is_stored(tx_store: MongoEventStore) -> None:
    telemetry.configure()  # the API's global providers: no SDK configured in this process
    aggregate = stream_id()
    (stored,) = await tx_store.append(aggregate, [make_event(aggregate, 1)], 0)
    assert "traceparent" not in stored.metadata
    assert telemetry.trace_context() == {}


def test_eventlab_works_without_opentelemetry_installed() -> None:
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from eventlab import telemetry\nfrom eventlab._core import telemetry as _telemetry\n"
        "assert not telemetry.ENABLED and telemetry.trace_context() == {}\n"
        "with _telemetry.span('x', {}) as s: assert s is None\n"
        "assert _telemetry.instruments() is None and _telemetry.links_from([{}]) == []\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


async def test_the_outbox_backlog_is_recorded_when_health_is_asked(
    otel: Otel, connection: MongoConnectionManager
) -> None:
    outbox = MongoOutboxStore(connection, collection="backlog")
    await outbox.save_messages(
        [OutboxMessage(message_id=f"m{i}", event_type="Noted", payload={}) for i in range(3)]
    )
    relay = OutboxRelay(outbox, InMemoryPublisher())
    health = await relay.health()
    assert health.lag is not None and health.lag.due == 3
    by_status = {
        p.attributes["eventlab.outbox.status"]: p.value
        for p in otel.metric("eventlab.outbox.messages")
    }
    assert by_status == {"due": 3, "dead": 0}
    (age,) = otel.metric("eventlab.outbox.oldest_pending.age")
    assert age.value >= 0


@pytest.mark.parametrize(
    "given",
    [{"tracer_provider": "otlp"}, {"meter_provider": {"$ne": None}}, {"tracer_provider": 2**70}],
    ids=["a string", "an operator dict", "a huge int"],
)
def test_configure_refuses_what_is_not_a_provider(otel: Otel, given: dict[str, Any]) -> None:
    from eventlab._core import telemetry as _telemetry

    before = dict(_telemetry._providers)
    with pytest.raises(ConfigurationError, match="must be an OpenTelemetry provider"):
        telemetry.configure(**given)
    assert (
        _telemetry._providers
        == before
        == {
            "tracer": otel.tracer_provider,
            "meter": otel.meter_provider,
        }
    ), "a refused configuration changed nothing"


async def test_a_consumers_reads_nest_in_the_batch_they_found(
    otel: Otel, tx_store: MongoEventStore
) -> None:
    """A polling subscriber and a projector: every read of theirs is a child of the batch span
    it found, inside it in time; none is a trace of its own. A plain read_all stays a child
    of the caller's span."""
    caught_up, all_handled = asyncio.Event(), asyncio.Event()
    seen: list[str] = []

    async def handle(event: StoredEvent, uow: Any) -> None:
        seen.append(event.aggregate_id)
        if len(seen) == 2:
            caught_up.set()
        if len(seen) == 6:
            all_handled.set()

    async def burst() -> None:
        for _ in range(2):
            aggregate = stream_id()
            await tx_store.append(aggregate, [make_event(aggregate, 1)], 0)

    subscriber = Subscriber(tx_store, "poller", handle, wake="poll", poll_interval=0.01)
    await burst()
    subscriber.start()
    await caught_up.wait()
    await burst()  # found by polling, live
    await burst()
    await all_handled.wait()
    await subscriber.stop()
    await Projector(tx_store, NotesSeen(), batch_size=2).run_until_caught_up()
    with otel.tracer.start_as_current_span("notebook cell") as cell:
        assert len(await tx_store.read_all().to_list()) == 6

    spans = otel.spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    reads = [s for s in spans if s.name == f"read_log {tx_store.events_collection_name}"]
    assert reads and all(r.parent is not None for r in reads), "no read is a root trace"
    batch_reads = [r for r in reads if r.parent.span_id != cell.get_span_context().span_id]
    for read in batch_reads:
        batch = by_id[read.parent.span_id]
        assert batch.name in ("process poller", "process projection:notes:1"), batch.name
        assert batch.context.trace_id == read.context.trace_id
        assert batch.start_time <= read.start_time <= read.end_time <= batch.end_time
    consumers = {by_id[r.parent.span_id].name for r in batch_reads}
    assert consumers == {"process poller", "process projection:notes:1"}
    processed = [s for s in spans if s.name.startswith("process ")]
    assert sum(s.attributes["messaging.batch.message_count"] for s in processed) == 12
    roots = {s.name for s in spans if s.parent is None}
    appends = f"append {tx_store.events_collection_name}"
    assert roots == {"process poller", "process projection:notes:1", "notebook cell", appends}

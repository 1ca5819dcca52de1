"""Streams under optimistic concurrency, in every lane at once: appends with every kind of
expectation, resends with the same and with other content, units of work over two streams,
stream and log reads. A small model of what is stored predicts every outcome's class; the
lanes must agree with it and with each other, and every lane's log keeps the promises of
docs/positions.md and docs/gaps.md after every step."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, invariant, rule

from .._core.records import ExpectedVersion, StoredEvent
from ..ports import UnitOfWork
from ._domain import Ids, noted, other_content
from ._harness import Harness, LaneMachine, Outcome, attempt
from ._invariants import check_log, check_stream
from ._lanes import Lane

STREAMS = st.sampled_from(["s1", "s2", "s3"])
EXPECTATIONS = st.sampled_from(["exact", "behind", "ahead", "no_stream", "stream_exists", "any"])
Expected = int | ExpectedVersion


@dataclass(frozen=True)
class Sent:
    """A batch the machine sent: what a resend sends again."""

    number: int
    stream: str
    events: tuple[StoredEvent, ...]
    expected: Expected

    def __repr__(self) -> str:
        return f"<batch {self.number}: {len(self.events)} to {self.stream}, {self.expected!r}>"


def shape(events: list[StoredEvent]) -> tuple[Any, Any]:
    """Stored events as lanes compare them: identity, place and content; positions apart."""
    value = tuple(
        (str(e.event_id), e.aggregate_id, e.version, e.event_type, tuple(sorted(e.payload.items())))
        for e in events
    )
    return value, tuple(e.position for e in events)


class StreamModel:
    """What is stored, as the machine predicts it: event ids per stream, in version order, and
    the log's order."""

    def __init__(self) -> None:
        self.streams: dict[str, list[uuid.UUID]] = defaultdict(list)
        self.order: list[uuid.UUID] = []
        self.content: dict[uuid.UUID, tuple[str, int, Any]] = {}

    def version(self, stream: str) -> int:
        return len(self.streams[stream])

    def predict(self, stream: str, events: tuple[StoredEvent, ...], expected: Expected) -> str:
        """``"appended"``, ``"idempotent"`` or the error's class name (docs/design.md, "What
        the same event means"; ports.EventStore.append)."""
        if expected is ExpectedVersion.NO_STREAM:
            expected = 0
        known = [e for e in events if e.event_id in self.content]
        if known:
            base = expected if isinstance(expected, int) else None
            same = len(known) == len(events) and all(
                self.content[e.event_id][0] == stream
                and self.content[e.event_id][2] == e.payload
                and (base is None or self.content[e.event_id][1] == base + offset)
                for offset, e in enumerate(events, start=1)
            )
            return "idempotent" if same else "DuplicateEventError"
        current = self.version(stream)
        if isinstance(expected, int) and expected != current:
            return "ConcurrencyError"
        if expected is ExpectedVersion.STREAM_EXISTS and current == 0:
            return "ConcurrencyError"
        return "appended"

    def store(self, stream: str, events: tuple[StoredEvent, ...]) -> None:
        for event in events:
            self.record(stream, [event.event_id])
            self.content[event.event_id] = (stream, self.version(stream), event.payload)

    def record(self, stream: str, event_ids: list[uuid.UUID]) -> None:
        """Events stored by other means than the machine's batches (aggregates)."""
        self.streams[stream].extend(event_ids)
        self.order.extend(event_ids)


class StreamRules(LaneMachine):
    """Appends, resends, units of work and reads, in every lane."""

    sent = Bundle("sent")

    def __init__(self, harness: Harness) -> None:
        super().__init__(harness)
        self.ids = Ids()
        self.model = StreamModel()
        self.outcomes: dict[int, Outcome] = {}
        self.batches = 0

    # -- appends ---------------------------------------------------------------------------

    def expectation(self, stream: str, kind: str) -> Expected:
        current = self.model.version(stream)
        choices: dict[str, Expected] = {
            "exact": current,
            "behind": current - 1 if current else current + 1,
            "ahead": current + 1,
            "no_stream": ExpectedVersion.NO_STREAM,
            "stream_exists": ExpectedVersion.STREAM_EXISTS,
            "any": ExpectedVersion.ANY,
        }
        return choices[kind]

    def send(self, batch: Sent) -> Outcome:
        """Append ``batch`` in every lane: the lanes agree, and with the model."""
        predicted = self.model.predict(batch.stream, batch.events, batch.expected)

        async def one(lane: Lane) -> Outcome:
            return await attempt(
                lane,
                lambda: lane.store.append(batch.stream, list(batch.events), batch.expected),
                shape,
            )

        outcome = self.agree(self.each(one), f"the append of {batch!r}")
        if predicted in ("appended", "idempotent"):
            assert outcome.ok, f"{batch!r}: the model says {predicted}, the lanes {outcome!r}"
        else:
            assert outcome.error == predicted, f"{batch!r}: expected {predicted}, got {outcome!r}"
        if predicted == "appended":
            self.model.store(batch.stream, batch.events)
            self.outcomes[batch.number] = outcome
        if predicted == "idempotent":
            original = self.outcomes[batch.number]
            assert outcome.value == original.value, (
                f"{batch!r}: a resend returned {outcome!r}, the first append stored {original!r}"
            )
        return outcome

    @rule(target=sent, stream=STREAMS, size=st.integers(1, 3), kind=EXPECTATIONS)
    def append(self, stream: str, size: int, kind: str) -> Sent:
        events = tuple(noted(self.ids(), stream, n) for n in range(size))
        self.batches += 1
        batch = Sent(self.batches, stream, events, self.expectation(stream, kind))
        self.send(batch)
        return batch

    @rule(batch=sent, other=st.booleans())
    def resend(self, batch: Sent, other: bool) -> None:
        """The same batch again (a retry after an unknown outcome), or with an event saying
        something else under its id."""
        if other:
            first, *rest = batch.events
            batch = Sent(batch.number, batch.stream, (other_content(first), *rest), batch.expected)
        self.send(batch)

    @rule(first=STREAMS, second=STREAMS, fail=st.booleans())
    def append_in_unit(self, first: str, second: str, fail: bool) -> None:
        """Two streams in one unit of work: both or neither (a unit that fails writes nothing)."""
        if first == second:
            return
        one_id, two_id = self.ids(), self.ids()
        versions = (self.model.version(first), self.model.version(second))

        class Abandoned(Exception):
            """The unit's own code failed after its appends."""

        async def unit(lane: Lane, uow: UnitOfWork) -> list[StoredEvent]:
            stored = await lane.store.append(first, [noted(one_id, first, 0)], versions[0], uow=uow)
            stored += await lane.store.append(
                second, [noted(two_id, second, 0)], versions[1], uow=uow
            )
            if fail:
                raise Abandoned("the unit of work failed after its appends")
            return stored

        async def one(lane: Lane) -> Outcome:
            return await attempt(
                lane, lambda: lane.store.backend.run(lambda u: unit(lane, u)), shape
            )

        outcome = self.agree(self.each(one), f"a unit of work over {first} and {second}")
        assert (outcome.error == "Abandoned") == fail, outcome
        if not fail:
            self.model.store(first, (noted(one_id, first, 0),))
            self.model.store(second, (noted(two_id, second, 0),))

    # -- reads -----------------------------------------------------------------------------

    @rule(
        stream=STREAMS,
        after=st.integers(0, 4),
        backwards=st.booleans(),
        max_count=st.none() | st.integers(1, 3),
    )
    def read_stream(self, stream: str, after: int, backwards: bool, max_count: int | None) -> None:
        async def one(lane: Lane) -> Outcome:
            return await attempt(
                lane,
                lambda: lane.store.read_stream(
                    stream, after_version=after, backwards=backwards, max_count=max_count
                ),
                shape,
            )

        outcome = self.agree(self.each(one), f"a read of {stream}")
        expected = self.model.streams[stream][after:]
        if backwards:
            expected.reverse()
        if max_count is not None:
            expected = expected[:max_count]
        assert [row[0] for row in outcome.value] == [str(i) for i in expected], outcome

    @invariant()
    def every_log_keeps_its_promises(self) -> None:
        """After every step, in every lane: position order, each event once, versions 1..n,
        contiguous transactional positions; the streams the model predicts; lanes alike."""

        async def one(lane: Lane) -> Outcome:
            log = await lane.read_log()
            check_log(lane.name, lane.strategy, log)
            for stream, expected in self.model.streams.items():
                stored = [e.event_id for e in log if e.aggregate_id == stream]
                check_stream(lane.name, stream, stored, expected)
            return Outcome(
                value=tuple(e.event_id for e in log), placed=tuple(e.position for e in log)
            )

        outcome = self.agree(self.each(one), "the log")
        assert list(outcome.value) == self.model.order, "the log is not in the order appended"

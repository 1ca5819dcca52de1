"""Dynamic Consistency Boundaries in every lane that offers them: reads over queries of up to
three items, decisions appended on their reads' conditions (fresh or stale), resends with the
same and with other content, decisions racing on one read, and the interleavings of a read's
parts and of an append's check (docs/dcb.md).

After every read: it returned exactly the events matching its query up to the head it reports.
After every conditional append: it was accepted exactly when no event matching its query lay
after its condition's position ("a condition refuses exactly what matches").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, invariant, rule

from .._core.errors import AppendConditionError
from .._core.records import ExpectedVersion, StoredEvent
from .._dcb.records import AppendCondition, Query, QueryItem, TaggedEvent
from ._domain import WHEN, Ids
from ._harness import Harness, LaneMachine, Outcome, capture
from ._invariants import check_condition, check_log, check_read, matches
from ._lanes import Lane

TYPES = ["Joined", "Left"]
TAGS = ["c:1", "c:2", "s:1"]
# Small pools, so that events often match the queries and the queries' items overlap: the
# decisions of a course-booking service (a tag or two per event and per item, a type or none).
DRAFTS = st.tuples(
    st.sampled_from(TYPES), st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True)
)
ITEMS = st.builds(
    lambda types, tags: QueryItem(tuple(types), tuple(tags)),
    st.lists(st.sampled_from(TYPES), max_size=1),
    st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True),
)
SPLIT_QUERIES = st.lists(ITEMS, min_size=2, max_size=3).map(lambda items: Query(tuple(items)))
QUERIES = st.just(Query()) | st.lists(ITEMS, min_size=1, max_size=3).map(
    lambda items: Query(tuple(items))
)
Draft = tuple[str, list[str]]


@dataclass(frozen=True)
class ReadRef:
    number: int
    query: Query
    after: int

    def __repr__(self) -> str:
        return f"<read {self.number}: {len(self.query.items)} item(s) after {self.after}>"


@dataclass(frozen=True)
class Batch:
    number: int
    events: tuple[TaggedEvent, ...]
    condition_of: ReadRef | None

    def __repr__(self) -> str:
        on = f" on {self.condition_of!r}" if self.condition_of else ""
        return f"<dcb batch {self.number}: {len(self.events)} event(s){on}>"


class DecisionRules(LaneMachine):
    """DCB reads and conditional appends, checked against each lane's own log."""

    needs = frozenset({"dcb"})
    reads = Bundle("reads")
    batches = Bundle("batches")

    def __init__(self, harness: Harness) -> None:
        super().__init__(harness)
        self.ids = Ids()
        self.logs: dict[str, list[StoredEvent]] = {lane.name: [] for lane in self.lanes}
        self.decision_reads: dict[int, dict[str, Any]] = {}
        self.stored: dict[int, Outcome] = {}
        self.aliases: dict[str, dict[uuid.UUID, uuid.UUID]] = {lane.name: {} for lane in self.lanes}
        self.count = 0

    def next_number(self) -> int:
        self.count += 1
        return self.count

    def tagged(self, draft: Draft, event_id: uuid.UUID | None = None) -> TaggedEvent:
        event_type, tags = draft
        return TaggedEvent(
            event_type,
            {"n": self.count},
            tuple(tags),
            event_id=event_id or self.ids(),
            occurred_at=WHEN,
        )

    def shape(self, lane: str) -> Any:
        aliases = self.aliases[lane]

        def normalize(events: list[StoredEvent]) -> tuple[Any, Any]:
            value = tuple(
                (str(aliases.get(e.event_id, e.event_id)), e.event_type, e.tags) for e in events
            )
            return value, tuple(e.position for e in events)

        return normalize

    async def log(self, lane: Lane) -> list[StoredEvent]:
        return await lane.read_log()

    # -- reads ------------------------------------------------------------------------------

    async def read_in(self, lane: Lane, query: Query, after: int, limit: int | None) -> Outcome:
        outcome = await capture(lambda: lane.dcb.read(query, after=after, limit=limit))
        if outcome.ok:
            read = outcome.result
            check_read(lane.name, query, after, read, await self.log(lane), limit)
            ids = self.shape(lane.name)(read.events)[0]
            return Outcome(value=(ids, read.head), result=read)
        return outcome

    def remember(self, query: Query, after: int, outcomes: dict[str, Outcome]) -> ReadRef:
        self.agree(outcomes, "a read")
        ref = ReadRef(self.next_number(), query, after)
        self.decision_reads[ref.number] = {name: o.result for name, o in outcomes.items()}
        return ref

    @rule(target=reads, query=QUERIES, after=st.integers(0, 8), limit=st.none() | st.integers(1, 3))
    def read(self, query: Query, after: int, limit: int | None) -> ReadRef:
        after = min(after, min((len(log) for log in self.logs.values()), default=0))
        outcomes = self.each(lambda lane: lane.run(lambda: self.read_in(lane, query, after, limit)))
        return self.remember(query, after, outcomes)

    # -- appends -----------------------------------------------------------------------------

    async def append_in(
        self, lane: Lane, events: tuple[TaggedEvent, ...], condition: AppendCondition | None
    ) -> Outcome:
        """Append in ``lane``, then check the outcome against the lane's log before it."""
        before = await self.log(lane)
        outcome = await capture(
            lambda: lane.dcb.append(list(events), condition), self.shape(lane.name)
        )
        if condition is None:
            return outcome
        query, after = condition.fail_if_events_match, condition.after
        own = {event.event_id for event in events}
        clashing = [
            e
            for e in before
            if (e.position or 0) > after and matches(query, e) and e.event_id not in own
        ]
        if isinstance(outcome.raised, AppendConditionError):
            check_condition(lane.name, query, after, None, outcome.raised.event, before)
            assert clashing, (
                f"{lane.name}: a condition after {after} was refused, but no event matching "
                "its query lies after that position"
            )
        elif outcome.ok and not own & {e.event_id for e in before}:
            # ``before`` is what was stored when it appended (the machine's steps run one
            # after the other): its check is docs/dcb.md's guarantee.
            check_condition(lane.name, query, after, outcome.result, None, before)
        return outcome

    def send(self, batch: Batch, condition_for: Any) -> Outcome:
        outcomes = self.each(
            lambda lane: lane.run(lambda: self.append_in(lane, batch.events, condition_for(lane)))
        )
        return self.agree(outcomes, f"the append of {batch!r}")

    @rule(target=batches, drafts=st.lists(DRAFTS, min_size=1, max_size=2))
    def append(self, drafts: list[Draft]) -> Batch:
        batch = Batch(self.next_number(), tuple(self.tagged(d) for d in drafts), None)
        outcome = self.send(batch, lambda lane: None)
        assert outcome.ok, f"an unconditional append failed: {outcome!r}"
        self.stored[batch.number] = outcome
        return batch

    @rule(target=batches, read=reads, draft=DRAFTS)
    def decide(self, read: ReadRef, draft: Draft) -> Batch:
        """A decision appended on a read's condition (the read may be stale by now)."""
        batch = Batch(self.next_number(), (self.tagged(draft),), read)
        outcome = self.send(
            batch, lambda lane: self.decision_reads[read.number][lane.name].condition()
        )
        assert outcome.ok or outcome.error == "AppendConditionError", outcome
        if outcome.ok:
            self.stored[batch.number] = outcome
        return batch

    @rule(batch=batches, other=st.booleans())
    def resend(self, batch: Batch, other: bool) -> None:
        """The same call again (after an unknown outcome): the stored events come back; the
        same ids saying something else: :class:`~eventlab.DuplicateEventError` (docs/design.md,
        "What the same event means"; README's error table)."""
        stored = self.stored.get(batch.number)
        events = batch.events
        if other:
            first, *rest = events
            changed = TaggedEvent(
                first.event_type,
                {**first.payload, "other": True},
                first.tags,
                event_id=first.event_id,
                occurred_at=WHEN,
            )
            events = (changed, *rest)
        condition_of = None if other else batch.condition_of
        resent = Batch(batch.number, events, condition_of)
        outcome = self.send(
            resent,
            lambda lane: (
                self.decision_reads[condition_of.number][lane.name].condition()
                if condition_of
                else None
            ),
        )
        if stored is None:
            return
        if other:
            assert outcome.error == "DuplicateEventError", (
                f"{batch!r} resent with other content under its ids: expected "
                f"DuplicateEventError, got {outcome!r}"
            )
        else:
            assert outcome.ok and outcome.value == stored.value, (
                f"{batch!r} resent: expected the stored events {stored!r}, got {outcome!r}"
            )

    @rule(stream=st.sampled_from(["d1", "d2"]), event_type=st.sampled_from(TYPES))
    def append_to_a_stream(self, stream: str, event_type: str) -> None:
        """A stream event (no tags) beside the DCB events: queries by type see it."""
        event = StoredEvent(
            event_id=self.ids(),
            event_type=event_type,
            aggregate_id=stream,
            aggregate_type="Stream",
            version=1,
            payload={},
            occurred_at=WHEN,
        )
        outcomes = self.each(
            lambda lane: lane.run(
                lambda: capture(
                    lambda: lane.store.append(stream, [event], ExpectedVersion.ANY),
                    self.shape(lane.name),
                )
            )
        )
        assert self.agree(outcomes, "a stream append").ok

    @invariant()
    def every_log_keeps_its_promises(self) -> None:
        async def one(lane: Lane) -> Outcome:
            log = await self.log(lane)
            check_log(lane.name, lane.strategy, log)
            self.logs[lane.name] = log
            value, placed = self.shape(lane.name)(log)
            return Outcome(value=value, placed=placed)

        self.agree(self.each(one), "the log")

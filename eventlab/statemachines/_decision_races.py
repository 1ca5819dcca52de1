"""The interleavings of DCB decisions: writers appending while a read is between its parts,
a read taken while another decision holds the counter before its check, and decisions on one
read racing each other (overlapping writers, not sequential ones: Marten's DCB once let two
truly concurrent appends both commit)."""

from __future__ import annotations

import asyncio

from hypothesis import strategies as st
from hypothesis.stateful import rule

from .._core.errors import AppendConditionError
from .._core.race_points import DCB_APPEND_BEFORE_CHECK, DCB_READ_BETWEEN_ITEMS, DCB_READ_HEAD_TAKEN
from .._core.races import RacePoint
from .._dcb.records import AppendCondition, Query, TaggedEvent
from ._decisions import DRAFTS, QUERIES, SPLIT_QUERIES, Batch, DecisionRules, Draft, ReadRef
from ._harness import Outcome, capture
from ._interleave import at_point
from ._invariants import check_condition, matches
from ._lanes import Lane


class DecisionMachine(DecisionRules):
    """DCB decisions, and other actors run inside them."""

    @rule(
        query=SPLIT_QUERIES,
        point=st.sampled_from([DCB_READ_BETWEEN_ITEMS, DCB_READ_HEAD_TAKEN]),
        writers=st.lists(st.integers(0, 2), min_size=1, max_size=3),
        draft=DRAFTS,
    )
    def decide_while_writers_append(
        self, query: Query, point: RacePoint, writers: list[int], draft: Draft
    ) -> None:
        """Writers append while a decision's read is at ``point``: between the reads of its
        query's items (``dcb.read.between_items``; each writer's event matches one item, by
        its number), or once it has taken its head (``dcb.read.head_taken``); then the
        decision appends on that read's condition. The read must still have returned every
        event matching its query up to the head it reports, and the condition must refuse
        the decision if a writer's event matches (docs/dcb.md, the guarantee)."""
        items = query.items
        writes = [(self.tagged(_matching_draft(Query(items[w % len(items) :]))),) for w in writers]
        decision = (self.tagged(draft),)

        async def appends(lane: Lane) -> Outcome:
            for events in writes:
                await lane.dcb.append(list(events))
            return Outcome(value=len(writes))

        async def one(lane: Lane) -> tuple[Outcome, Outcome]:
            read, _ = await at_point(
                lane,
                point,
                lambda: self.read_in(lane, query, 0, None),
                lambda: capture(lambda: appends(lane)),
                otherwise="after",
            )
            if not read.ok:
                return read, read
            condition = read.result.condition()
            return read, await self.append_in(lane, decision, condition)

        results = self.each(lambda lane: lane.run(lambda: one(lane)))
        self.agree({k: v[0] for k, v in results.items()}, "a read with writers inside it")
        outcome = self.agree({k: v[1] for k, v in results.items()}, "the decision on it")
        assert outcome.ok or outcome.error == "AppendConditionError", outcome

    @rule(target=DecisionRules.reads, query=QUERIES, read_query=QUERIES, draft=DRAFTS)
    def read_while_a_decision_checks(
        self, query: Query, read_query: Query, draft: Draft
    ) -> ReadRef:
        """A decision holds the counter and has not checked its condition
        (``dcb.append.before_check``) when another decision reads: that read must not see the
        first one's event, and a later decision on it must be refused if that event matches
        (the rule ``decide`` draws on the read this returns)."""
        batch = Batch(self.next_number(), (self.tagged(draft),), None)
        head = min((len(log) for log in self.logs.values()), default=0)

        async def one(lane: Lane) -> tuple[Outcome, Outcome]:
            condition = AppendCondition(query, head)
            return await at_point(
                lane,
                DCB_APPEND_BEFORE_CHECK,
                lambda: self.append_in(lane, batch.events, condition),
                lambda: self.read_in(lane, read_query, 0, None),
                otherwise="before",
            )

        results = self.each(lambda lane: lane.run(lambda: one(lane)))
        appended = self.agree({k: v[0] for k, v in results.items()}, "a decision held open")
        assert appended.ok or appended.error == "AppendConditionError", appended
        if appended.ok:
            self.stored[batch.number] = appended
        return self.remember(read_query, 0, {k: v[1] for k, v in results.items()})

    @rule(read=DecisionRules.reads, racers=st.integers(2, 3))
    def racing_decisions(self, read: ReadRef, racers: int) -> None:
        """Several decisions on one read, appending at once, each with an event its query
        matches: at most one is accepted, exactly one if the read is still fresh."""
        template = _matching_draft(read.query)
        contenders = [self.tagged(template) for _ in range(racers)]
        canonical = contenders[0].event_id

        async def one(lane: Lane) -> Outcome:
            condition = self.decision_reads[read.number][lane.name].condition()
            fresh = not any(
                (e.position or 0) > condition.after and matches(read.query, e)
                for e in await self.log(lane)
            )
            outcomes = await asyncio.gather(
                *(_contend(lane, event, condition) for event in contenders)
            )
            log = await self.log(lane)
            for outcome in outcomes:
                refusal = outcome.raised
                assert outcome.ok or isinstance(refusal, AppendConditionError), outcome
                check_condition(
                    lane.name,
                    read.query,
                    condition.after,
                    outcome.result if outcome.ok else None,
                    refusal.event if isinstance(refusal, AppendConditionError) else None,
                    log,
                )
            winners = [o for o in outcomes if o.ok]
            assert len(winners) == (1 if fresh else 0), (
                f"{lane.name}: {len(winners)} of {racers} racing decisions on a "
                f"{'fresh' if fresh else 'stale'} read were accepted"
            )
            if winners:
                (stored,) = winners[0].result
                self.aliases[lane.name][stored.event_id] = canonical
            return Outcome(value=len(winners))

        self.agree(self.each(lambda lane: lane.run(lambda: one(lane))), "racing decisions")


async def _contend(lane: Lane, event: TaggedEvent, condition: AppendCondition) -> Outcome:
    return await capture(lambda: lane.dcb.append([event], condition))


def _matching_draft(query: Query) -> Draft:
    """An event the query matches (its first item's first type and all its tags)."""
    if not query.items:
        return ("Joined", [])
    item = query.items[0]
    return (item.types[0] if item.types else "Joined", list(item.tags))

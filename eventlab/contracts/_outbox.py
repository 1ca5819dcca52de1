"""The outbox's contracts: saved with the state they describe, idempotent by id and content,
handed out by fenced claims, retried then dead, one message of a key at a time when ordered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from .._core.errors import ConfigurationError, DuplicateMessageError, SerializationError
from ..ports import EventStore, OutboxMessage, OutboxStore, UnitOfWork
from ._support import NeedsAStore, contract_event, unique

OutboxFactory = Callable[..., OutboxStore]
"""``make_outbox(ordered=False, max_attempts=5, backoff_base=...)``: an empty outbox."""


def message(number: int, key: str | None = None, **payload: Any) -> OutboxMessage:
    return OutboxMessage(
        message_id=f"m-{number:05d}", event_type="Thing", payload=payload, ordering_key=key
    )


class OutboxContract(NeedsAStore):
    """The :class:`~eventlab.ports.OutboxStore` port's guarantees."""

    @pytest.fixture
    def make_outbox(self, contract_store: EventStore) -> OutboxFactory:
        raise NotImplementedError("a backend's test module says how to make an empty outbox")

    async def test_saves_are_idempotent_by_id_and_content(self, make_outbox: OutboxFactory) -> None:
        outbox = make_outbox()
        await outbox.save_messages([message(1, n=1), message(2, n=2)])
        await outbox.save_messages([message(1, n=1)])  # the same again: nothing new
        with pytest.raises(DuplicateMessageError) as raised:
            await outbox.save_messages([message(3), message(2, n=99)])
        assert raised.value.message_ids == ["m-00002"]
        assert await outbox.get("m-00003") is None, "nothing of a refused save is written"
        with pytest.raises(DuplicateMessageError):  # True == 1 in Python, not in BSON
            await outbox.save_messages([message(1, n=True)])
        assert (await outbox.counts()) == {"pending": 2}
        with pytest.raises(SerializationError):
            await outbox.save_messages([message(4, bad=2**64)])
        with pytest.raises(ConfigurationError):
            await outbox.save_messages([message(5), message(5)])

    async def test_bad_options_and_claim_arguments_are_typed_errors(
        self, make_outbox: OutboxFactory
    ) -> None:
        for options in (
            {"max_attempts": 0},
            {"max_attempts": True},
            {"max_attempts": "5"},
            {"max_attempts": {"$gt": 0}},
            {"backoff_base": -1},
            {"backoff_base": float("nan")},
            {"backoff_max": float("inf")},
            {"backoff_max": "1"},
            {"ordered": "yes"},
        ):
            with pytest.raises(ConfigurationError):
                make_outbox(**options)
        outbox = make_outbox()
        await outbox.save_messages([message(1)])
        for worker, limit, lease in (
            ({"$ne": None}, 1, 30.0),
            ("", 1, 30.0),
            ("w", 0, 30.0),
            ("w", True, 30.0),
            ("w", 2**70, 30.0),
            ("w", 1, "30"),
            ("w", 1, -1.0),
            ("w", 1, float("nan")),
        ):
            with pytest.raises(ConfigurationError):
                await outbox.claim(worker, limit, lease)  # type: ignore[arg-type]
        assert (await outbox.counts()) == {"pending": 1}, "a refused claim takes nothing"

    async def test_a_save_in_a_failed_unit_of_work_writes_nothing(
        self, contract_store: EventStore, make_outbox: OutboxFactory
    ) -> None:
        outbox = make_outbox()

        async def failing(uow: UnitOfWork) -> None:
            await outbox.save_messages([message(1)], uow=uow)
            raise RuntimeError("the command failed")

        with pytest.raises(RuntimeError):
            await contract_store.backend.run(failing)
        assert await outbox.get("m-00001") is None

    async def test_claims_are_fenced(self, make_outbox: OutboxFactory) -> None:
        outbox = make_outbox()
        await outbox.save_messages([message(n) for n in range(4)])
        mine = await outbox.claim("a", limit=3, lease=30)
        assert len(mine) == 3 and all(m.claim_token and m.status == "claimed" for m in mine)
        others = await outbox.claim("b", limit=10, lease=30)
        assert {m.message_id for m in others}.isdisjoint(m.message_id for m in mine)
        assert await outbox.mark_published(mine[:1]) == 1
        assert await outbox.mark_published(mine[:1]) == 0, "a finished claim changes nothing"
        assert await outbox.release(mine[1:2]) == 1
        again = await outbox.claim("b", limit=10, lease=30)
        assert [m.message_id for m in again] == [mine[1].message_id]
        assert await outbox.mark_published(mine[1:2]) == 0, "the old claim's token is gone"
        assert await outbox.renew(mine[2:], lease=30) == {mine[2].message_id}
        with pytest.raises(ConfigurationError):
            await outbox.mark_published(["m-00003"])  # type: ignore[list-item]

    async def test_failures_retry_then_die(self, make_outbox: OutboxFactory) -> None:
        outbox = make_outbox(max_attempts=2, backoff_base=0, backoff_max=0)
        await outbox.save_messages([message(1)])
        (claimed,) = await outbox.claim("a", lease=30)
        failed = await outbox.mark_failed(claimed, "broker down")
        assert failed is not None and (failed.status, failed.retry_count) == ("failed", 1)
        (again,) = await outbox.claim("a", lease=30)
        dead = await outbox.mark_failed(again, "broker down")
        assert dead is not None and (dead.status, dead.retry_count) == ("dead", 2)
        assert await outbox.claim("a", lease=30) == []
        assert (await outbox.counts()) == {"dead": 1}

    async def test_an_ordered_outbox_hands_out_a_key_in_sequence(
        self, make_outbox: OutboxFactory
    ) -> None:
        outbox = make_outbox(ordered=True)
        key = unique("key")
        await outbox.save_messages([message(n, key) for n in range(3)] + [message(9)])
        first = await outbox.claim("a", limit=10, lease=30)
        assert sorted(m.message_id for m in first) == ["m-00000", "m-00009"]
        assert [m.sequence for m in first if m.ordering_key == key] == [1]
        await outbox.mark_published(first)
        second = await outbox.claim("a", limit=10, lease=30)
        assert [(m.message_id, m.sequence) for m in second] == [("m-00001", 2)]

    async def test_lag_counts_what_is_due(self, make_outbox: OutboxFactory) -> None:
        outbox = make_outbox()
        await outbox.save_messages([message(n) for n in range(3)])
        lag = await outbox.lag()
        assert lag.due == 3 and lag.in_flight == 0 and lag.oldest_due_seconds >= 0
        await outbox.claim("a", limit=2, lease=30)
        lag = await outbox.lag()
        assert (lag.due, lag.in_flight) == (1, 2)

    async def test_parallel_claimers_never_share_a_message(
        self, make_outbox: OutboxFactory
    ) -> None:
        outbox = make_outbox()
        await outbox.save_messages([message(n) for n in range(24)])
        ids: list[str] = []
        for _ in range(24):  # a claimer that loses a race gets fewer, never a shared message
            claims = await asyncio.gather(
                *(outbox.claim(f"relay-{r}", limit=5, lease=30) for r in range(6))
            )
            ids += [m.message_id for claim in claims for m in claim]
            if len(ids) >= 24:
                break
        assert len(ids) == len(set(ids)) == 24, "each message to one claimer"

    async def test_messages_commit_with_the_events_of_their_unit_of_work(
        self, contract_store: EventStore, make_outbox: OutboxFactory
    ) -> None:
        outbox = make_outbox()
        sid = unique()

        async def both(uow: UnitOfWork) -> None:
            (stored,) = await contract_store.append(sid, [contract_event(sid)], 0, uow=uow)
            await outbox.save_messages([OutboxMessage.from_stored_event(stored)], uow=uow)

        await contract_store.backend.run(both)
        (stored,) = await contract_store.read_stream(sid)
        saved = await outbox.get(str(stored.event_id))
        assert saved is not None and (saved.ordering_key, saved.sequence) == (sid, 1)

    async def test_a_message_reads_back_as_saved(self, make_outbox: OutboxFactory) -> None:
        outbox = make_outbox()
        sent = OutboxMessage(
            message_id="m-00001",
            event_type="Thing",
            payload={"amount": "19.99", "items": [1, 2]},
            ordering_key="k",
            headers={"traceparent": "00-abc-def-01"},
        )
        await outbox.save_messages([sent])
        saved = await outbox.get("m-00001")
        assert saved is not None and saved.content() == sent.content()
        assert (saved.status, saved.retry_count, saved.claim_token) == ("pending", 0, None)
        assert await outbox.get("m-99999") is None

    async def test_the_backend_makes_an_outbox_whose_saves_join_its_units_of_work(
        self, contract_store: EventStore
    ) -> None:
        outbox = contract_store.backend.outbox(f"outbox_{unique()}")
        sid = unique()

        async def both(uow: UnitOfWork) -> None:
            (stored,) = await contract_store.append(sid, [contract_event(sid)], 0, uow=uow)
            await outbox.save_messages([OutboxMessage.from_stored_event(stored)], uow=uow)

        async def failing(uow: UnitOfWork) -> None:
            await outbox.save_messages([message(1)], uow=uow)
            raise RuntimeError("the command failed")

        await contract_store.backend.run(both)
        with pytest.raises(RuntimeError):
            await contract_store.backend.run(failing)
        (stored,) = await contract_store.read_stream(sid)
        assert await outbox.get(str(stored.event_id)) is not None
        assert await outbox.get("m-00001") is None, "a failed unit of work saved nothing"
        assert await outbox.counts() == {"pending": 1}

"""The in-memory database's snapshot isolation, piece by piece (the contract suites check the
same rules through the ports, on MongoDB too): snapshots taken at the first operation and kept
through any number of later commits, deletes, inserts against committed and uncommitted keys,
doomed transactions, killed sessions, plain writes that wait for a holder."""

from __future__ import annotations

import asyncio

import pytest

from eventlab import TransactionAbortedError, WriteConflictError
from eventlab.memory._database import DuplicateKey, MemoryDatabase


def test_a_snapshot_is_taken_at_the_first_operation_not_at_begin() -> None:
    db = MemoryDatabase()
    db.put("t", "k", 1)
    reader = db.begin()
    db.put("t", "k", 2)  # before the reader's first operation: it sees this
    assert db.get("t", "k", reader) == 2
    db.put("t", "k", 3)
    assert db.get("t", "k", reader) == 2 and db.get("t", "k") == 3
    db.commit(reader)  # read-only: commits, nothing validated


def test_a_snapshot_survives_thousands_of_later_commits() -> None:
    """Older versions are kept while a snapshot may read them, and pruned past it."""
    db = MemoryDatabase()
    for key in range(50):
        db.put("t", key, {"v": 0})
    old = db.begin()
    assert db.get("t", 0, old) == {"v": 0}
    for round_ in range(1, 60):  # 2,950 commits: pruning runs several times
        for key in range(50):
            db.put("t", key, {"v": round_})
    assert all(db.get("t", key, old) == {"v": 0} for key in range(50))
    assert {k: v["v"] for k, v in db.view("t", old).items()} == dict.fromkeys(range(50), 0)
    young = db.begin()
    assert db.get("t", 7, young) == {"v": 59}
    db.put("t", 7, {"v": 60})
    assert (db.get("t", 7, old), db.get("t", 7, young)) == ({"v": 0}, {"v": 59})
    db.commit(old)
    db.commit(young)
    assert db.get("t", 7) == {"v": 60}


def test_views_see_deletes_and_creations_after_the_snapshot_as_they_were() -> None:
    db = MemoryDatabase()
    db.put("t", "gone", 1)
    reader = db.begin()
    assert db.view("t", reader) == {"gone": 1}
    db.delete("t", "gone")
    db.put("t", "new", 2)
    assert dict(db.view("t", reader)) == {"gone": 1} and dict(db.view("t")) == {"new": 2}
    db.put("t", "mine", 3, reader)
    assert dict(db.view("t", reader)) == {"gone": 1, "mine": 3}
    db.commit(reader)
    assert dict(db.view("t")) == {"new": 2, "mine": 3}


def test_an_insert_is_a_conflict_against_an_open_insert_and_a_duplicate_against_a_commit() -> None:
    db = MemoryDatabase()
    first, second = db.begin(), db.begin()
    db.insert("t", "k", 1, first)
    with pytest.raises(WriteConflictError):
        db.insert("t", "k", 2, second)
    assert second.state == "doomed"
    db.commit(first)
    third = db.begin()
    with pytest.raises(DuplicateKey):
        db.insert("t", "k", 3, third)
    with pytest.raises(TransactionAbortedError):
        db.get("t", "k", third)  # a failed write dooms the transaction
    with pytest.raises(TransactionAbortedError):
        db.commit(third)
    with pytest.raises(DuplicateKey):
        db.insert("t", "k", 4)  # a plain insert too
    assert db.get("t", "k") == 1


def test_a_write_to_a_key_committed_after_the_snapshot_conflicts() -> None:
    db = MemoryDatabase()
    db.put("t", "k", 1)
    late = db.begin()
    assert db.get("t", "other", late) is None  # the snapshot
    db.put("t", "k", 2)
    with pytest.raises(WriteConflictError, match="changed after this snapshot"):
        db.put("t", "k", 3, late)
    with pytest.raises(TransactionAbortedError):
        db.commit(late)
    assert db.get("t", "k") == 2


def test_deleting_what_the_snapshot_does_not_see_writes_nothing() -> None:
    db = MemoryDatabase()
    writer, deleter = db.begin(), db.begin()
    db.insert("t", "k", 1, writer)
    db.delete("t", "k", deleter)  # not visible to it: no write, no conflict
    db.commit(writer)
    db.commit(deleter)
    assert db.get("t", "k") == 1


def test_an_ended_session_dooms_its_transaction() -> None:
    db = MemoryDatabase()
    session = db.new_session()
    transaction = db.begin(session)
    db.put("t", "k", 1, transaction)
    db.end_session(session.session_id)
    assert not db.held("t", "k"), "its locks are released at once"
    with pytest.raises(TransactionAbortedError, match="session was ended"):
        db.put("t", "k", 2, transaction)
    with pytest.raises(TransactionAbortedError):
        db.commit(transaction)
    assert db.get("t", "k") is None


async def test_a_plain_write_waits_for_the_transaction_holding_its_key() -> None:
    db = MemoryDatabase()
    holder = db.begin()
    db.put("t", "k", "held", holder)
    with pytest.raises(WriteConflictError):
        db.put("t", "k", "now")  # without waiting, a plain write cannot apply
    waiting = asyncio.ensure_future(db.until_free("t", "k"))
    await asyncio.sleep(0)
    assert not waiting.done()
    db.commit(holder)
    await asyncio.wait_for(waiting, 5)
    db.put("t", "k", "after")
    assert db.get("t", "k") == "after"


def test_reads_hand_out_copies() -> None:
    db = MemoryDatabase()
    db.put("t", "k", {"list": [1]})
    db.get("t", "k")["list"].append(2)
    db.values("t")["k"]["list"].append(3)
    assert db.get("t", "k") == {"list": [1]}

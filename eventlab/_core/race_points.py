"""The race points of eventlab's hard paths, each declared once (:mod:`eventlab._core.races`).

Every backend marks the same moment with the same object, so a test (a state machine,
``eventlab check``) arms one name and meets that moment on whichever backend it drives. A
point is marked with two lines that cost one attribute read when nothing is armed::

    if APPEND_POSITIONS_TAKEN.armed:
        await APPEND_POSITIONS_TAKEN.reach()

Each docstring says what has happened when the point is reached and what has not yet: the
window another actor is run in.
"""

from __future__ import annotations

from .races import point

APPEND_POSITIONS_TAKEN = point("append.positions_taken")
"""An append has taken its positions (in its transaction, or before it with ``preallocated``
positions) and has not inserted its events yet."""

UOW_BEFORE_COMMIT = point("uow.before_commit")
"""A unit of work's writes are done, in its open transaction, and it has not committed: an
action that raises a transient error here makes the runner run the whole unit again."""

FOLLOW_HEAD_READ = point("follow.head_read")
"""A follower holds a head of the log and has not read the range up to it yet."""

FOLLOW_BEFORE_ABANDON = point("follow.before_abandon")
"""A follower has judged holes ripe and has not asked the log to abandon them yet: an append
holding one of them may still insert or commit there."""

BATCH_HANDLED = point("batch.handled")
"""A subscriber's handler has run over a batch (in the batch's transaction, exactly-once) and
the checkpoint has not been saved: a crash here must not lose or repeat an effect."""

LEASE_EXPIRED_SEEN = point("lease.expired_seen")
"""A claim has found another owner's lease expired and taken it, and has not ended the
predecessor's session yet (its open transaction may still commit)."""

LEASE_TAKEN_OVER = point("lease.taken_over")
"""A claim has ended the predecessor's session and written its owner into the checkpoint."""

DCB_READ_HEAD_TAKEN = point("dcb.read.head_taken")
"""A DCB read has taken the head it reports and has read no item of its query yet."""

DCB_READ_BETWEEN_ITEMS = point("dcb.read.between_items")
"""A DCB read has read some items of its query and not the next one."""

DCB_APPEND_BEFORE_CHECK = point("dcb.append.before_check")
"""A conditional DCB append has taken its positions in its transaction and has not checked its
condition yet."""

PROJECTOR_GENERATION_READ = point("projector.generation_read")
"""A run knows the live generation and has not made its subscriber yet."""

SUBSCRIBER_CLAIMED = point("subscriber.claimed")
"""A run holds the lease and has not read its checkpoint yet."""

SUBSCRIBER_SUBSCRIBING = point("subscriber.subscribing")
"""A run knows where it starts and has not made its subscription yet."""

TRANSACTION_LISTED = point("transaction.listed")
"""The session is listed in the process registry; its transaction has not started."""

TRANSACTION_BEFORE_COMMIT = point("transaction.before_commit")
"""The runner's callback has done its writes (an append holds its positions); not committed."""

IMPORT_BEFORE_CHUNK = point("import.before_chunk")
"""An import has checked the whole file against the store and written the chunks before this
one, and has not written this one: a writer that stores a conflicting event here stops the
import part-way (a rerun of the same import resumes it)."""

ARCHIVE_FILES_WRITTEN = point("archive.files_written")
"""An archive job has written its Parquet files and its manifest and checked them, and has not
recorded them in the store: a crash here leaves every event live (the files are named by no
record the store keeps, and never read)."""

ARCHIVE_REMOVING = point("archive.removing")
"""An archive job has recorded its manifest in the store and is removing the live copies of
what it archived, a chunk at a time: reached before each chunk. A crash here leaves events in
both places, read once; the next run finishes the removal."""

ARCHIVE_RESTORING = point("archive.restoring")
"""A restore has marked the archive as being restored and is putting events back, a chunk at
a time: reached before each chunk. A crash here leaves events in both places, read once; the
next restore finishes."""

"""Contract suites: what every backend of eventlab's ports guarantees, as pytest test classes.

In the style of the ``eventsourcing`` library's recorder test cases: the cases live in the
package, and a backend's test module only says how to make what is under contract. Subclass
:class:`Contracts` (or one suite) and provide the fixtures::

    from eventlab.contracts import Contracts, contract_registry

    class TestMyBackend(Contracts):
        @pytest.fixture
        async def contract_store(self):
            return MyEventStore(registry=contract_registry())

        @pytest.fixture
        def make_outbox(self, contract_store):
            return lambda **options: MyOutbox(**options)

        @pytest.fixture
        def make_dcb(self):
            return lambda store: MyDCBStore(store)

Every store eventlab ships runs them: MongoDB with both position strategies and the in-memory
backend (``tests/test_contracts.py``). Needs pytest and pytest-asyncio
(``asyncio_mode = "auto"``).

May import: the services, the ports, ``testing`` and ``samples``; never an adapter of its own
choosing (the backend under test is given by fixtures).
"""

from ._archive import ArchiveContract
from ._archive_scavenge import ArchiveScavengeContract
from ._consumers import CheckpointContract, SnapshotContract, SubscriberContract
from ._dcb import DCBContract, DCBHostileContract
from ._delivery import DeliveryContract
from ._forgetting import PersonalDataContract
from ._isolation import IsolationContract
from ._keys import KeyStoreContract
from ._lifecycle import (
    DeletionContract,
    LifecycleContract,
    LifecycleHostileContract,
    ScavengeContract,
    TruncationContract,
)
from ._log import EventLogContract, SubscriptionContract
from ._outbox import OutboxContract
from ._positions import PositionsContract
from ._projections import ProjectionContract
from ._store import AppendContract, EventStoreContract, StreamReaderContract, UnitOfWorkContract
from ._support import contract_event, contract_registry, unique


class Contracts(
    EventStoreContract,
    IsolationContract,
    EventLogContract,
    PositionsContract,
    SubscriptionContract,
    CheckpointContract,
    SubscriberContract,
    SnapshotContract,
    OutboxContract,
    ProjectionContract,
    DCBContract,
    DCBHostileContract,
    DeliveryContract,
    ArchiveContract,
    LifecycleContract,
    ArchiveScavengeContract,
):
    """Every contract suite: the whole of a backend."""


__all__ = [
    "AppendContract",
    "ArchiveContract",
    "ArchiveScavengeContract",
    "CheckpointContract",
    "Contracts",
    "DCBContract",
    "DCBHostileContract",
    "DeletionContract",
    "DeliveryContract",
    "EventLogContract",
    "EventStoreContract",
    "IsolationContract",
    "KeyStoreContract",
    "LifecycleContract",
    "LifecycleHostileContract",
    "OutboxContract",
    "PersonalDataContract",
    "PositionsContract",
    "ProjectionContract",
    "ScavengeContract",
    "SnapshotContract",
    "StreamReaderContract",
    "SubscriberContract",
    "SubscriptionContract",
    "TruncationContract",
    "UnitOfWorkContract",
    "contract_event",
    "contract_registry",
    "unique",
]

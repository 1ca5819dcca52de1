"""The chat & tasks domain: chats that can become tasks."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Literal

from .._core.domain import AggregateRoot, DomainEvent, applies
from .._core.registry import EventRegistry

ChatType = Literal["Discussion", "Task", "Bug", "Epic"]
Status = Literal["Open", "InProgress", "Done", "Closed"]
Priority = Literal["Low", "Medium", "High", "Critical"]


class ChatEvent(DomainEvent):
    """An event of the Chat aggregate: every one of them belongs to its streams."""

    aggregate_type = "Chat"


class ChatCreated(ChatEvent):
    workspace_id: uuid.UUID
    type: ChatType
    title: str
    created_by: uuid.UUID


class ParticipantAdded(ChatEvent):
    user_id: uuid.UUID
    role: Literal["Owner", "Admin", "Member"]


class MessagePosted(ChatEvent):
    message_id: uuid.UUID
    author_id: uuid.UUID
    text: str


class ChatRenamed(ChatEvent):
    title: str


class ChatConvertedToTask(ChatEvent):
    type: ChatType


class StatusChanged(ChatEvent):
    status: Status


class UserAssigned(ChatEvent):
    user_id: uuid.UUID


class PrioritySet(ChatEvent):
    priority: Priority


class DueDateSet(ChatEvent):
    due_at: datetime


class Chat(AggregateRoot):
    """A chat; once converted to a task it has a status, assignee, priority and due date."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.title = ""
        self.type: str = "Discussion"
        self.participants = 0
        self.messages = 0
        self.status: str | None = None
        self.assignee: uuid.UUID | None = None
        self.priority: str | None = None
        self.due_at: datetime | None = None

    @applies(ChatCreated)
    def _created(self, event: ChatCreated) -> None:
        self.title, self.type = event.title, event.type

    @applies(ParticipantAdded)
    def _participant(self, event: ParticipantAdded) -> None:
        self.participants += 1

    @applies(MessagePosted)
    def _message(self, event: MessagePosted) -> None:
        self.messages += 1

    @applies(ChatRenamed)
    def _renamed(self, event: ChatRenamed) -> None:
        self.title = event.title

    @applies(ChatConvertedToTask)
    def _converted(self, event: ChatConvertedToTask) -> None:
        self.type, self.status = event.type, "Open"

    @applies(StatusChanged)
    def _status(self, event: StatusChanged) -> None:
        if self.status is None:
            raise ValueError("status changed on a chat that is not a task")
        self.status = event.status

    @applies(UserAssigned)
    def _assigned(self, event: UserAssigned) -> None:
        self.assignee = event.user_id

    @applies(PrioritySet)
    def _priority(self, event: PrioritySet) -> None:
        self.priority = event.priority

    @applies(DueDateSet)
    def _due(self, event: DueDateSet) -> None:
        self.due_at = event.due_at


CHAT_EVENTS = (
    ChatCreated,
    ParticipantAdded,
    MessagePosted,
    ChatRenamed,
    ChatConvertedToTask,
    StatusChanged,
    UserAssigned,
    PrioritySet,
    DueDateSet,
)


def chat_registry(registry: EventRegistry | None = None) -> EventRegistry:
    """A registry with the chat events (added to ``registry`` if given)."""
    registry = registry if registry is not None else EventRegistry()
    registry.register_all(*CHAT_EVENTS)
    return registry


_WORDS = [
    "deploy",
    "review",
    "fix",
    "flaky",
    "test",
    "release",
    "notes",
    "design",
    "api",
    "schema",
    "index",
    "shard",
    "backup",
]


def generate_chats(count: int, *, seed: int = 11, start: datetime | None = None) -> Iterator[Chat]:
    """``count`` chats with pending events, deterministic for a given ``seed``."""
    rng = random.Random(seed)
    clock = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    workspace = uuid.UUID(int=rng.getrandbits(128), version=4)
    users = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(12)]

    def uid() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    for n in range(count):
        chat = Chat(f"chat-{n + 1:05d}")
        owner = rng.choice(users)
        title = " ".join(rng.sample(_WORDS, 3)).capitalize()
        events: list[DomainEvent] = [
            ChatCreated(workspace_id=workspace, type="Discussion", title=title, created_by=owner),
            ParticipantAdded(user_id=owner, role="Owner"),
        ]
        for user in rng.sample(users, rng.randint(1, 4)):
            events.append(ParticipantAdded(user_id=user, role="Member"))
        for _ in range(rng.randint(1, 8)):
            events.append(
                MessagePosted(
                    message_id=uid(),
                    author_id=rng.choice(users),
                    text=" ".join(rng.choices(_WORDS, k=rng.randint(3, 12))),
                )
            )
        if rng.random() < 0.2:
            events.append(ChatRenamed(title=title + " (renamed)"))
        if rng.random() < 0.5:
            events.append(ChatConvertedToTask(type=rng.choice(["Task", "Bug", "Epic"])))
            events.append(UserAssigned(user_id=rng.choice(users)))
            events.append(PrioritySet(priority=rng.choice(["Low", "Medium", "High", "Critical"])))
            if rng.random() < 0.6:
                events.append(DueDateSet(due_at=clock + timedelta(days=rng.randint(1, 30))))
            progress: list[list[Status]] = [["InProgress"], ["InProgress", "Done"], []]
            for status in rng.choice(progress):
                events.append(StatusChanged(status=status))
        stamped = []
        for event in events:
            clock += timedelta(seconds=rng.randint(5, 900))
            stamped.append(event.model_copy(update={"event_id": uid(), "occurred_at": clock}))
        for event in stamped:
            chat.record(event)
        yield chat

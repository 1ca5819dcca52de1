"""Suite 3: the codec in-process: stored documents → typed events, domain events → BSON."""

from __future__ import annotations

from typing import Any

import bson
from bson.codec_options import CodecOptions

from eventlab import EventRegistry
from eventlab._core.bson_values import CODEC_OPTIONS
from eventlab._core.event_codec import event_body, from_document

from ._paired import assert_ratio, paired
from .conftest import make_events, stored_documents

RAW_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, uuid_representation=4)
"""What a raw ``AsyncMongoClient(tz_aware=True, uuidRepresentation="standard")`` decodes with."""


def test_codec_decode(benchmark: Any, registry: EventRegistry) -> None:
    """1,000 stored documents (bytes) → typed events, vs ``bson.decode_all`` of the same bytes."""
    data = b"".join(
        bson.encode(d, codec_options=CODEC_OPTIONS) for d in stored_documents(registry, 1000)
    )
    to_domain = registry.to_domain

    def decode_typed() -> list[Any]:
        return [to_domain(from_document(doc)) for doc in bson.decode_all(data, CODEC_OPTIONS)]

    events = paired(
        benchmark,
        name="codec-decode",
        server="in-process",
        target=decode_typed,
        baseline=lambda: bson.decode_all(data, RAW_OPTIONS),
        rounds=40,
        warmup_rounds=3,
    )
    assert len(events) == 1000 and type(events[0]).__name__ == "ItemReserved"
    assert_ratio(benchmark)


def test_codec_encode(benchmark: Any, registry: EventRegistry) -> None:
    """100 domain events → BSON documents, vs ``bson.encode`` of the finished documents."""
    events = make_events(100)
    finished = stored_documents(registry, 100)

    def encode() -> list[bytes]:
        return [
            bson.encode(
                event_body(
                    registry.to_stored(
                        e, aggregate_id="s", aggregate_type="Inventory", version=i + 1
                    )
                ),
                codec_options=CODEC_OPTIONS,
            )
            for i, e in enumerate(events)
        ]

    encoded = paired(
        benchmark,
        name="codec-encode",
        server="in-process",
        target=encode,
        baseline=lambda: [bson.encode(d, codec_options=CODEC_OPTIONS) for d in finished],
        rounds=100,
        warmup_rounds=5,
    )
    assert len(encoded) == 100 and 250 < len(encoded[0]) < 600, len(encoded[0])

"""Suite 3: the codec, without the server: documents → typed events, events → documents."""

from __future__ import annotations

import uuid
from typing import Any

import bson
from bson.codec_options import CodecOptions

from eventlab import EventRegistry
from eventlab._bson import CODEC_OPTIONS
from eventlab._event_codec import event_body, from_document

from .conftest import MEDIANS, make_events, record


def _stored_bytes(registry: EventRegistry, count: int) -> bytes:
    sid = f"codec-{uuid.uuid4().hex}"
    docs = []
    for i, event in enumerate(make_events(count)):
        stored = registry.to_stored(event, aggregate_id=sid, aggregate_type="Inventory", version=i + 1)
        body = event_body(stored)
        body.update(position=i + 1, recorded_at=stored.occurred_at)
        docs.append(body)
    return b"".join(bson.encode(doc, codec_options=CODEC_OPTIONS) for doc in docs)


RAW_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, uuid_representation=4)
"""What a raw ``AsyncMongoClient(tz_aware=True, uuidRepresentation="standard")`` decodes with."""


def test_codec_decode_raw_decode_all(benchmark: Any, registry: EventRegistry) -> None:
    data = _stored_bytes(registry, 1000)
    docs = benchmark(bson.decode_all, data, RAW_OPTIONS)
    assert len(docs) == 1000
    MEDIANS["codec-decode"] = benchmark.stats.stats.median
    record(benchmark, "codec-decode-raw", "in-process")


def test_codec_decode_typed(benchmark: Any, registry: EventRegistry) -> None:
    data = _stored_bytes(registry, 1000)
    to_domain = registry.to_domain

    def decode() -> list[Any]:
        return [to_domain(from_document(doc)) for doc in bson.decode_all(data, CODEC_OPTIONS)]

    events = benchmark(decode)
    assert len(events) == 1000 and type(events[0]).__name__ == "ItemReserved"
    info = record(benchmark, "codec-decode", "in-process", baseline="codec-decode")
    assert info["ratio"] <= info["ratio_target"], info


def test_codec_encode_raw_bson_encode(benchmark: Any, registry: EventRegistry) -> None:
    docs = bson.decode_all(_stored_bytes(registry, 100), CODEC_OPTIONS)  # Decimal128 as stored
    benchmark(lambda: [bson.encode(doc, codec_options=CODEC_OPTIONS) for doc in docs])
    MEDIANS["codec-encode"] = benchmark.stats.stats.median
    record(benchmark, "codec-encode-raw", "in-process")


def test_codec_encode_domain_events(benchmark: Any, registry: EventRegistry) -> None:
    events = make_events(100)

    def encode() -> list[bytes]:
        return [
            bson.encode(
                event_body(
                    registry.to_stored(e, aggregate_id="s", aggregate_type="Inventory", version=i + 1)
                ),
                codec_options=CODEC_OPTIONS,
            )
            for i, e in enumerate(events)
        ]

    encoded = benchmark(encode)
    assert len(encoded) == 100 and 250 < len(encoded[0]) < 600, len(encoded[0])
    record(benchmark, "codec-encode", "in-process", baseline="codec-encode")

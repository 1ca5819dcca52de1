"""An events file's lines are read as ``bson.json_util`` reads Extended JSON text (decimals
then made Python's), by a hook of the JSON decoder rather than a second parse."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from bson import json_util
from bson.errors import InvalidId
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlab._core.bson_values import decimals_to_python
from eventlab.workbench._jsonl import _JSON_OPTIONS, loads_extended

PAYLOADS: list[Any] = [
    {"price": {"$numberDecimal": "19.99"}, "qty": 3, "ratio": 0.5, "ok": True, "none": None},
    {"id": {"$uuid": "00000000-0000-0000-0000-000000000001"}},
    {"id": {"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAQ==", "subType": "04"}}},
    {"when": {"$date": "2026-03-01T12:00:00.123Z"}, "big": {"$numberLong": "9007199254740993"}},
    {"nested": {"deep": [{"$numberDecimal": "1E+3"}, {"a": {"$date": {"$numberLong": "0"}}}]}},
    {"list": [1, "two", [3, {"$numberDecimal": "-0.00"}]], "empty": {}, "empty_list": []},
    {"oid": {"$oid": "65f0c0ffee0000000000abcd"}, "text": "$not a wrapper"},
]


def _as_json_util_reads_it(payload: Any) -> Any:
    """What reading the payload's text with json_util, then decimals as Python's, gives."""
    return decimals_to_python(json_util.loads(json.dumps(payload), json_options=_JSON_OPTIONS))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_payload_reads_as_json_util_reads_its_text(payload: Any) -> None:
    expected = _as_json_util_reads_it(payload)
    read = loads_extended(json.dumps(payload))
    assert read == expected
    assert repr(read) == repr(expected)


def test_a_wrapper_spelled_with_escapes_is_still_a_wrapper() -> None:
    text = '{"price": {"\\u0024numberDecimal": "19.90"}}'
    assert loads_extended(text) == {"price": Decimal("19.90")}
    assert repr(loads_extended(text)) == repr(
        decimals_to_python(json_util.loads(text, json_options=_JSON_OPTIONS))
    )


@pytest.mark.parametrize(
    ("payload", "error"),
    [({"$oid": "not an id"}, InvalidId), ({"$numberDecimal": 5}, TypeError)],
)
def test_a_malformed_wrapper_is_a_value_error_where_json_util_fails(
    payload: Any, error: type
) -> None:
    with pytest.raises(error):
        json_util.loads(json.dumps(payload), json_options=_JSON_OPTIONS)
    # One kind of error for a file's reader to name with its line (json_util raises several).
    with pytest.raises(ValueError, match="malformed Extended JSON"):
        loads_extended(json.dumps(payload))


_DECIMAL_TEXT = st.one_of(
    st.from_regex(r"-?[0-9]{1,40}(\.[0-9]{1,40})?", fullmatch=True),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.text(alphabet="0123456789.-+eE _", max_size=40),
)


@settings(max_examples=1000, deadline=None)
@given(_DECIMAL_TEXT)
def test_any_decimal_text_reads_as_json_util_reads_it_or_is_refused(text: str) -> None:
    payload = {"price": {"$numberDecimal": text}}
    try:
        expected = _as_json_util_reads_it(payload)
    except Exception:  # any failure there is one ValueError here, named
        with pytest.raises(ValueError, match="malformed Extended JSON"):
            loads_extended(json.dumps(payload))
        return
    read = loads_extended(json.dumps(payload))
    assert repr(read) == repr(expected)  # the same digits and exponent, -0 and NaN alike


@pytest.mark.parametrize("text", ['{"price": {"$numberDecimal": "1.5"}}', '{"qty": 3}'])
def test_a_byte_order_mark_is_refused_by_name_with_or_without_wrappers(text: str) -> None:
    with pytest.raises(json.JSONDecodeError, match="BOM"):
        loads_extended("\ufeff" + text)
    assert loads_extended(text) == _as_json_util_reads_it(json.loads(text))

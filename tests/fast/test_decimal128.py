"""Decimals become Decimal128 exactly as the driver makes them, or are refused by name."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest
from bson.decimal128 import Decimal128
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlab._core.bson_values import decimal128_to_decimal, to_bson_value
from eventlab._core.errors import SerializationError

# Coefficients up to 34 digits and beyond, exponents inside Decimal128's range and past it.
_DECIMALS = st.builds(
    lambda sign, coefficient, exponent: Decimal(
        (sign, tuple(map(int, str(coefficient))), exponent)
    ),
    st.integers(0, 1),
    st.one_of(st.integers(0, 10**6), st.integers(0, 10**34 - 1), st.integers(0, 10**40)),
    st.one_of(st.integers(-30, 30), st.integers(-6200, -6100), st.integers(6080, 6200)),
)


@settings(max_examples=2000, deadline=None)
@given(_DECIMALS)
def test_a_decimal_is_stored_as_the_driver_stores_it_or_refused(value: Decimal) -> None:
    try:
        expected: Decimal128 | None = Decimal128(value)
    except (decimal.Inexact, decimal.InvalidOperation, decimal.Overflow, decimal.Underflow):
        expected = None
    exact = expected is not None and decimal128_to_decimal(expected) == value
    if not exact:
        with pytest.raises(SerializationError, match="payload"):
            to_bson_value(value)
        return
    stored = to_bson_value(value)
    assert type(stored) is Decimal128
    assert stored.bid == expected.bid  # type: ignore[union-attr]
    assert decimal128_to_decimal(stored) == value
    _, digits, exponent = value.as_tuple()
    if len(digits) <= 34 and -6176 <= exponent <= 6111:  # type: ignore[operator]
        # The same digits and exponent come back (19.90 stays 19.90, -0 stays -0); beyond
        # that the driver rounds or clamps to an equal value (0E+6112 is 0E+6111).
        assert decimal128_to_decimal(stored).as_tuple() == value.as_tuple()


@pytest.mark.parametrize(
    "text",
    ["0", "-0", "0.00", "19.99", "-19.990", "1E+6111", "1E-6176", "9" * 34, "NaN", "-Infinity"],
)
def test_edge_decimals_match_the_driver(text: str) -> None:
    value = Decimal(text)
    assert to_bson_value(value).bid == Decimal128(value).bid


def test_a_signaling_nan_is_refused_by_name() -> None:
    with pytest.raises(SerializationError, match=r"payload.*signaling NaN"):
        to_bson_value({"d": Decimal("-sNaN")})


def test_a_user_decimal_context_does_not_change_what_is_stored() -> None:
    with decimal.localcontext() as context:
        context.prec = 3
        stored = to_bson_value(Decimal("123456.789"))
    assert decimal128_to_decimal(stored) == Decimal("123456.789")

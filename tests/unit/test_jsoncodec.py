from __future__ import annotations

from decimal import Decimal

import pytest

from engine.errors import BadRequest
from engine.jsoncodec import dumps, loads


def test_money_round_trips_with_every_digit() -> None:
    value = loads('{"amount": 98765432109876.54, "small": 0.10, "n": 3}')
    assert value == {"amount": Decimal("98765432109876.54"), "small": Decimal("0.10"), "n": 3}
    assert dumps(value) == '{"amount":98765432109876.54,"small":0.10,"n":3}'


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}'])
def test_non_finite_numbers_are_refused(text: str) -> None:
    with pytest.raises(BadRequest) as caught:
        loads(text)
    assert caught.value.code == "request.non_finite_number"


def test_deep_nesting_is_refused_before_parsing() -> None:
    with pytest.raises(BadRequest) as caught:
        loads("[" * 100_000 + "]" * 100_000)
    assert caught.value.code == "request.too_deep"


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    assert loads('{"a": "' + "[" * 500 + '"}') == {"a": "[" * 500}


def test_exponent_decimal_is_written_plainly() -> None:
    assert dumps(Decimal("1E+3")) == "1000"
    assert dumps(Decimal("-0")) == "0"


def test_invalid_json_has_a_code() -> None:
    with pytest.raises(BadRequest) as caught:
        loads('{"a": }')
    assert caught.value.code == "request.invalid_json"

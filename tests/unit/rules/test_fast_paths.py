"""The evaluation fast paths (compiled closures of the decimal evaluator, string comparisons
decided there, only the fields a rule reads handed to the native core) answer as the slow
paths did."""
from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import datalogic_py
import pytest

from engine.rules import CompiledRule, compile_rule
from engine.rules.exact import NotExact, compile_exact


def _compiled(rule: Any) -> CompiledRule:
    compiled, issues = compile_rule(rule, "")
    assert issues == [] and compiled is not None
    return compiled


def test_results_keep_the_scale_of_their_decimals() -> None:
    total = _compiled({"+": [{"var": "a"}, {"var": "b"}]})
    assert str(total.evaluate({"a": Decimal("99.50"), "b": Decimal("0.50")})) == "100.00"
    assert total.evaluate({"a": Decimal("1E+2"), "b": 0}) == 100
    assert type(total.evaluate({"a": Decimal("1E+2"), "b": 0})) is int
    assert type(_compiled({"-": [{"var": "a"}, 1]}).evaluate({"a": 3})) is int


def test_strings_compare_by_code_point_like_the_native_core() -> None:
    native = datalogic_py.Engine()
    alphabet = ["a", "B", "1", "9", "0", "-", ":", "T", "é", "中", "\uffff", "\U0001F600", ""]
    draw = random.Random(8)
    for _ in range(400):
        operator = draw.choice(["<", "<=", ">", ">="])
        count = draw.choice([2, 3])
        rule = {operator: [{"var": f"v{index}"} for index in range(count)]}
        data = {f"v{index}": "".join(draw.choice(alphabet) for _ in range(draw.randrange(4))) for index in range(count)}
        assert _compiled(rule).evaluate(data) == native.compile(rule).evaluate(data), (rule, data)
    assert _compiled({"<": [{"var": "a"}, {"var": "b"}]}).evaluate({"a": "10", "b": "9"}) is True
    assert _compiled({">=": [{"var": "handled"}, {"var": "received"}]}).evaluate(
        {"handled": "2024-03-06", "received": "2024-03-04"}) is True


def test_a_string_against_a_number_is_left_to_the_native_core() -> None:
    with pytest.raises(NotExact):
        compile_exact({"<": [{"var": "a"}, 5]})({"a": "3"})
    assert _compiled({"<": [{"var": "a"}, 5]}).evaluate({"a": "3"}) is True  # the core coerces "3"


def test_checks_fail_only_when_reached() -> None:
    assert compile_exact({"if": [True, 1, {"throw": "x"}]})({}) == 1
    assert compile_exact({"and": [False, {"==": [1, 2, 3]}]})({}) is False
    with pytest.raises(NotExact):
        compile_exact({"and": [True, {"==": [1, 2, 3]}]})({})


def test_var_defaults_apply_to_absent_and_null_values() -> None:
    read = compile_exact({"var": ["a.b", 7]})
    assert read({"a": {"b": None}}) == 7
    assert read({"a": {}}) == 7
    assert read({"a": {"b": 0}}) == 0
    assert compile_exact({"var": ["a", 7]})({"a": None}) == 7
    assert compile_exact({"var": "1"})(["x", "y"]) == "y"


def test_the_native_core_gets_only_the_fields_a_rule_reads() -> None:
    # A value the core cannot take, in a field the rule does not read, does not fail the rule.
    rule = _compiled({"in": [{"var": "region"}, ["CA", "NY"]]})
    assert rule.evaluate({"region": "CA", "photo": object()}) is True
    nested = _compiled({"cat": [{"var": "owner.name"}, "/", {"var": "city"}]})
    assert nested.evaluate({"owner": {"name": "Li"}, "city": "Xi'an", "photo": object()}) == "Li/Xi'an"
    items = _compiled({"some": [{"var": "items"}, {">": [{"var": "amount"}, 1000]}]})
    assert items.evaluate({"items": [{"amount": Decimal("999.99")}, {"amount": Decimal("1000.01")}]}) is True


def test_a_rule_reading_the_whole_data_gets_all_of_it() -> None:
    whole = _compiled({"missing": {"merge": [["a", "b"], ["c"]]}})  # a computed list of names
    assert whole.evaluate({"a": 1, "c": 2}) == ["b"]
    everything = _compiled({"var": ""})
    assert everything.evaluate({"a": Decimal("1.5"), "b": "x"}) == {"a": Decimal("1.5"), "b": "x"}

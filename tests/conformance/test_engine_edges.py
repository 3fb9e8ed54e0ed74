"""Engine behaviours the peer suites brought to light, pinned without the shared data: the rule
wrapper's static checks and number handling, and exact decimals in the schema validator."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.forms.compiler import build_validator
from engine.rules import RuleError, compile_rule, is_truthy


def _compile(rule: Any) -> Any:
    compiled, issues = compile_rule(rule, "/r")
    assert issues == [] and compiled is not None, issues
    return compiled


def _names(rule: Any) -> list[str]:
    return [use.name for use in _compile(rule).variables]


def _refusal(rule: Any) -> str:
    compiled, issues = compile_rule(rule, "/r")
    assert compiled is None and issues
    return str(issues[0].params.get("detail", issues[0].code))


def test_a_string_rule_stays_a_string() -> None:
    # The native core reads a top-level str as JSON text: unguarded, this string would have
    # become the `now` operator, past the allow-list and the variable check.
    assert _compile('{"now": []}').evaluate({}) == '{"now": []}'
    assert _compile({"var": ""}).evaluate("apple") == "apple"


def test_whole_data_and_computed_names() -> None:
    assert _compile({"var": []}).evaluate({"a": 1}) == {"a": 1}
    rule = {"var": [{"?:": [{"<": [{"var": "temp"}, 110]}, "pie.filling", "pie.eta"]}]}
    assert _names(rule) == ["temp", "pie.filling", "pie.eta"]
    assert _compile(rule).evaluate({"temp": 100, "pie": {"filling": "apple"}}) == "apple"
    assert "literal" in _refusal({"var": {"cat": ["a", {"var": "b"}]}})
    assert _names({"var": {"cat": ["a", "b"]}}) == ["ab"]  # from literals alone: folded at upload
    assert "literal" in _refusal({"var": {"if": [{"var": "x"}, "a"]}})  # no else: could be null


def test_every_read_of_the_record_is_listed() -> None:
    assert _names({"reduce": [{"var": "xs"}, {"+": [{"var": "current"}, {"var": "accumulator"}]},
                              {"var": "start"}]}) == ["xs", "start"]
    assert _names({"missing": {"merge": ["vin", {"if": [{"var": "financing"}, ["apr"], []]}]}}) == ["financing"]
    assert _names({"missing_some": [1, ["a", "b"]]}) == ["a", "b"]
    assert _names({"val": ["owner", "name"]}) == ["owner.name"]
    assert _names({"exists": "owner"}) == ["owner"]
    assert _names({"map": [{"val": "rows"}, {"val": "share"}]}) == ["rows"]


def test_val_refusals_keep_the_static_check_honest() -> None:
    assert _names({"map": [{"var": "rows"}, {"val": [[2], "salary"]}]}) == ["rows", "salary"]
    assert _names({"map": [{"var": "rows"}, {"map": [{"val": "xs"}, {"val": [[2], "salary"]}]}]}) == ["rows"]
    assert "scope" in _refusal({"exists": [[2], "salary"]})
    assert "'.'" in _refusal({"val": "a.b"})
    assert "'.'" in _refusal({"map": [{"var": "rows"}, {"val": [[2], "a.b"]}]})


def test_numbers_the_native_core_mishandles_fail_closed_or_work() -> None:
    # an integer past 64 bits anywhere in the record must not break every rule over it
    assert _compile({"cat": ["n", {"var": "x"}]}).evaluate({"x": 1, "big": 10**20}) == "n1"
    # the native default answers a float divided by zero with the largest double
    with pytest.raises(RuleError):
        _compile({"/": [{"var": "a"}, {"length": {"var": "s"}}]}).evaluate({"a": Decimal("1.5"), "s": ""})
    with pytest.raises(RuleError):
        _compile({"/": [Decimal("1.5"), 0]}).evaluate({})


@pytest.mark.parametrize(
    "rule",
    [
        {"!!": [{"var": "obj"}]},  # decided by the decimal evaluator
        {"!!": [{"val": "obj"}]},  # decided by the native one
        {"if": [{"var": "obj"}, True, {"cat": []}]},
    ],
)
def test_one_truthiness_whichever_evaluator_runs(rule: Any) -> None:
    compiled = _compile(rule)
    assert compiled.evaluate({"obj": {}}) in (False, "")
    assert is_truthy(compiled.evaluate({"obj": {"a": 0}}))
    assert is_truthy({}) is False


def test_and_or_edges_agree_across_evaluators() -> None:
    assert _compile({"and": []}).evaluate({}) is False
    assert _compile({"or": []}).evaluate({}) is False
    for rule in ({"and": True}, {"or": True}, {"if": "apple"}):
        with pytest.raises(RuleError):
            _compile(rule).evaluate({})


@pytest.mark.parametrize(
    ("schema", "value", "valid"),
    [
        ({"multipleOf": Decimal("0.01")}, Decimal("98765432109876.54"), True),
        ({"multipleOf": Decimal("0.01")}, Decimal("98765432109876.545"), False),
        ({"multipleOf": Decimal("0.0001")}, Decimal("0.0075"), True),
        ({"maximum": Decimal("98765432109876.54")}, Decimal("98765432109876.54"), True),
        ({"maximum": Decimal("0.1")}, Decimal("0.10000000000000000001"), False),
        ({"minimum": Decimal("0.3")}, Decimal("0.29999999999999999999"), False),
        ({"type": "integer"}, Decimal("1.0"), True),
        ({"type": "integer"}, Decimal("12345678901234567890123.0"), True),
        ({"type": "integer"}, Decimal("1.0000000000000000000000000000000001"), False),
        ({"enum": [Decimal("0.1")]}, Decimal("0.1000000000000000055511151231257827"), False),
        ({"uniqueItems": True}, [Decimal("1.0"), 1], False),
        (True, "anything", True),
        (False, "anything", False),
    ],
)
def test_schema_verdicts_are_those_of_the_exact_decimal(schema: Any, value: Any, valid: bool) -> None:
    assert build_validator(schema).is_valid(value) is valid

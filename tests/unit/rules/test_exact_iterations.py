"""Iterations (`map`, `filter`, `reduce`, `all`, `some`, `none`) over a record's array are
decided with decimals when the rule is otherwise exact: amounts are compared and summed exactly,
and every answer is the native core's wherever the core computes exactly (integers), errors and
the operations budget included."""
from __future__ import annotations

import dataclasses
import json
import random
from decimal import Decimal
from typing import Any

import datalogic_py
import pytest

from engine.rules import CompiledRule, RuleError, compile_rule
from engine.rules.exact import ExactError, NotExact, _arithmetic, compile_exact, compile_exact_iterating
from engine.rules.limits import OPS_BUDGET

_NATIVE = datalogic_py.Engine(config={"ops_budget": OPS_BUDGET, "division_by_zero": "throw_error"})


def _compiled(rule: Any) -> CompiledRule:
    compiled, issues = compile_rule(rule, "")
    assert issues == [] and compiled is not None
    return compiled


def test_amounts_are_compared_and_summed_exactly() -> None:
    some = _compiled({"some": [{"var": "items"}, {">": [{"var": "amount"}, 1000]}]})
    assert some.decimal and not some.exact  # exact: the SQL compiler's decimal rules, unchanged
    # as a double 1000.0000000000000001 is 1000: not over 1000
    assert some.evaluate({"items": [{"amount": Decimal("1000.0000000000000001")}]}) is True
    assert some.evaluate({"items": [{"amount": Decimal("1000.00")}]}) is False
    total = _compiled({"reduce": [{"var": "items"}, {"+": [{"var": "current.amount"}, {"var": "accumulator"}]}, 0]})
    assert total.decimal
    items = [{"amount": Decimal("0.10")}, {"amount": Decimal("0.20")}, {"amount": Decimal("0.05")}]
    assert str(total.evaluate({"items": items})) == "0.35"
    assert total.evaluate({"items": [{"amount": 2}, {"amount": Decimal("1E+1")}]}) == 12
    assert type(total.evaluate({"items": [{"amount": 2}, {"amount": Decimal("1E+1")}]})) is int
    assert total.evaluate({"items": []}) == 0
    assert total.evaluate({}) == 0
    doubled = _compiled({"map": [{"var": "items"}, {"*": [{"var": "amount"}, 2]}]})
    assert [str(value) for value in doubled.evaluate({"items": items})] == ["0.20", "0.40", "0.10"]


def test_the_sum_loop_answers_as_the_step_by_step_reduce() -> None:
    draw = random.Random(5)
    values: list[Any] = [0, 1, -3, Decimal("0.10"), Decimal("1E+2"), Decimal("-2.500"), 10**30, Decimal("7"),
                         10**120 + 1, Decimal("1E+150"), Decimal("1" * 99 + ".5"), Decimal("-1E-200")]
    for _ in range(300):
        items = [{"amount": draw.choice(values)} for _ in range(draw.randrange(5))]
        initial = draw.choice(values)
        fused = _compiled({"reduce": [{"var": "items"}, {"+": [{"var": "current.amount"}, {"var": "accumulator"}]}, initial]})
        # the same sum with its operands swapped round twice: not the loop's pattern
        stepwise = _compiled({"reduce": [{"var": "items"}, {"+": [{"+": [{"var": "current.amount"}]}, {"var": "accumulator"}]}, initial]})
        got, expected = fused.evaluate({"items": items}), stepwise.evaluate({"items": items})
        assert str(got) == str(expected) and type(got) is type(expected), (items, initial)


def test_what_the_evaluator_does_not_follow_goes_to_the_native_core() -> None:
    refused = [
        {"map": [{"var": "a"}, {"var": ["x", 7]}]},  # a default: the core does not apply it to null
        {"and": [{"var": ["x", 1]}, {"some": [{"var": "a"}, {"var": ""}]}]},
        {"reduce": [{"var": "a"}, {"var": "x"}, 0]},  # the core reads the item for other names
        {"reduce": [{"var": "a"}, {"var": ""}, 0]},
        {"map": [{"var": "a"}, {"map": [{"var": "b"}, {"var": ""}]}]},  # nested
        {"map": [{"var": "a"}]},
        {"map": [{"var": "a"}, {"in": [{"var": ""}, [1]]}]},
        {"and": [{"some": [{"var": "a"}, {"var": ""}]}] * 5},
    ]
    for rule in refused:
        assert compile_exact_iterating(rule) is None, rule
    assert _compiled({"map": [{"var": "a"}, {"var": ["x", 7]}]}).evaluate({"a": [{"x": None}, {}]}) == [None, 7]
    with pytest.raises(NotExact):  # an object is iterated by the core
        compile_exact_iterating({"some": [{"var": "a"}, {"var": ""}]})({"a": {"k": 1}})


def test_long_arrays_are_metered_by_the_native_core() -> None:
    rule = _compiled({"some": [{"var": "a"}, {">": [{"var": ""}, {"+": [1, 2]}]}]})
    assert rule.evaluate({"a": [0] * 1000}) is False
    with pytest.raises(RuleError):
        rule.evaluate({"a": [0] * 50_000})  # past the operations budget
    total = _compiled({"reduce": [{"var": "a"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]})
    assert total.evaluate({"a": [1] * 1000}) == 1000
    with pytest.raises(RuleError):
        total.evaluate({"a": [1] * 30_000})


def test_errors_are_the_native_cores() -> None:
    rule = _compiled({"map": [{"var": "a"}, {"/": [1, {"var": ""}]}]})
    with pytest.raises(RuleError) as caught:
        rule.evaluate({"a": [1, 0]})
    with pytest.raises(BaseException) as native:
        _NATIVE.compile({"map": [{"var": "a"}, {"/": [1, {"var": ""}]}]}).evaluate({"a": [1, 0]})
    assert str(caught.value) == str(native.value)
    with pytest.raises(RuleError):
        _compiled({"map": [None, {"var": ""}]}).evaluate({})


# -- agreement with the native core on integers, text and nulls, where it is exact too -----------

_ITEM_NAMES: list[Any] = ["", "x", "y", "x.y", "x.0", 0, 1, "-1", "current", "accumulator"]
_REDUCE_NAMES = ["current", "accumulator", "current.x", "current.y", "accumulator.x", "current.x.y", "current.0"]


def _value(draw: random.Random, depth: int = 0) -> Any:
    roll = draw.random()
    if roll < 0.3:
        return draw.randrange(-3, 4)
    if roll < 0.4:
        return None
    if roll < 0.5:
        return draw.choice(["", "a", "b", "1"])
    if roll < 0.55:
        return draw.choice([True, False])
    if depth < 2 and roll < 0.85:
        keys = draw.sample(["x", "y", "current", "accumulator", "x.y"], draw.randrange(4))
        return {key: _value(draw, depth + 1) for key in keys}
    if depth < 2:
        return [_value(draw, depth + 1) for _ in range(draw.randrange(3))]
    return 2


def _expression(draw: random.Random, names: list[Any], depth: int) -> Any:
    if depth > 2 or draw.random() < 0.3:
        if draw.random() < 0.6:
            return {"var": draw.choice(names)}
        return draw.choice([0, 1, 2, -1, "a", "", None, True, False])
    operator = draw.choice([">", "<", ">=", "<=", "==", "!=", "===", "!==", "+", "-", "*", "!", "!!",
                            "and", "or", "if", "min", "max"])
    count = {"!": 1, "!!": 1, "if": 3}.get(operator, 2)
    return {operator: [_expression(draw, names, depth + 1) for _ in range(count)]}


def _native_answer(rule: CompiledRule, data: Any) -> tuple[str, Any]:
    """The answer of the rule's native path (as every iterating rule was evaluated before)."""
    return _engine_answer(dataclasses.replace(rule, exact=False, _exact=None), data)


def _engine_answer(rule: CompiledRule, data: Any) -> tuple[str, Any]:
    try:
        return "value", rule.evaluate(data)
    except RuleError:
        return "error", None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def test_iterations_agree_with_the_native_core() -> None:
    draw = random.Random(11)
    decided = 0
    for _ in range(3000):
        operator = draw.choice(["map", "filter", "reduce", "all", "some", "none"])
        if operator == "reduce":
            body = _expression(draw, _REDUCE_NAMES, 0)
            rule: Any = {"reduce": [{"var": "a"}, body, _expression(draw, ["b"], 2)]}
        else:
            rule = {operator: [{"var": "a"}, _expression(draw, _ITEM_NAMES, 0)]}
        if draw.random() < 0.2:
            rule = {draw.choice(["and", "or", "!!"]): [rule, _expression(draw, ["b"], 1)][: draw.choice([1, 2])]}
        roll = draw.random()
        array = None if roll < 0.1 else _value(draw) if roll < 0.2 else [_value(draw) for _ in range(draw.randrange(5))]
        data = {"a": array, "b": _value(draw)}
        compiled = _compiled(rule)
        if compiled.decimal:
            try:
                compiled._exact(data)  # type: ignore[misc]
                decided += 1
            except NotExact:
                pass
        kind, ours = _engine_answer(compiled, data)
        native_kind, theirs = _native_answer(compiled, data)
        assert kind == native_kind, (rule, data, ours)
        assert json.dumps(_plain(ours), sort_keys=True) == json.dumps(_plain(theirs), sort_keys=True), (rule, data, ours, theirs)
    assert decided > 600, decided  # the decimal evaluator answered these itself


def test_two_operand_arithmetic_answers_as_the_general_one() -> None:
    # The two-operand fast path (exact when nothing rounds) against _arithmetic, which computes
    # from the identity (0 + a + b, 1 * a * b) with 100 significant digits.
    draw = random.Random(3)
    values: list[Any] = [0, 7, -2, 10**99, 10**101 + 7, Decimal("0.10"), Decimal("1E+2"), Decimal("2.50E+98"),
                         Decimal("-3.000"), Decimal("9" * 60), Decimal("1E-90"), Decimal("5E+300"), Decimal("1" * 100)]
    for _ in range(2000):
        operator = draw.choice(["+", "-", "*", "/"])
        a, b = draw.choice(values), draw.choice(values)
        try:
            expected: Any = _arithmetic(operator, [a, b])
        except ExactError:
            expected = "error"
        try:
            got: Any = compile_exact({operator: [{"var": "a"}, {"var": "b"}]})({"a": a, "b": b})
        except ExactError:
            got = "error"
        assert (str(got), type(got)) == (str(expected), type(expected)), (operator, a, b)
        compared = compile_exact({"<": [{operator: [{"var": "a"}, {"var": "b"}]}, 0]})
        if expected != "error":
            assert compared({"a": a, "b": b}) is (expected < 0)


def test_quantifiers_over_a_field_agree_with_the_native_core() -> None:
    draw = random.Random(21)
    choices: list[Any] = [0, 5, -5, 1000, None, "5", True, [5], {"amount": 5}]
    for _ in range(1500):
        operator = draw.choice(["some", "all", "none"])
        test = draw.choice([">", ">=", "<", "<="])
        rule = {operator: [{"var": "items"}, {test: [{"var": draw.choice(["amount", ["amount"]])}, draw.choice([5, 0, -1])]}]}
        items: list[Any] = []
        for _ in range(draw.randrange(5)):
            roll = draw.random()
            items.append({"amount": draw.choice(choices)} if roll < 0.7 else {} if roll < 0.8 else draw.choice(choices))
        compiled = _compiled(rule)
        assert compiled.decimal
        data = {"items": items}
        assert _engine_answer(compiled, data) == _native_answer(compiled, data), (rule, items)

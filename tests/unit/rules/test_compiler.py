from __future__ import annotations

from decimal import Decimal

import pytest

from engine.rules import compile_rule, is_truthy
from engine.rules.limits import MAX_RULE_DEPTH


def test_variables_are_listed_with_their_pointers() -> None:
    rule, issues = compile_rule({"and": [{">": [{"var": "amount"}, 1]}, {"==": [{"var": "owner.name"}, "x"]}]}, "/rules/0/rule")
    assert issues == []
    assert rule is not None
    assert [(use.name, use.pointer) for use in rule.variables] == [
        ("amount", "/rules/0/rule/and/0/>/0/var"),
        ("owner.name", "/rules/0/rule/and/1/==/0/var"),
    ]


def test_vars_inside_map_read_the_item_not_the_record() -> None:
    rule, issues = compile_rule({"map": [{"var": "rows"}, {"var": "share"}]}, "")
    assert issues == [] and rule is not None
    assert [use.name for use in rule.variables] == ["rows"]


def test_unknown_operator_is_refused_at_compile_time() -> None:
    rule, issues = compile_rule({"if": [{"zeros": [1000000000]}, 1, 2]}, "/when")
    assert rule is None
    assert issues[0].code == "definition.bad_rule"
    assert issues[0].path == "/when/if/0/zeros"


def test_too_deep_rule_is_refused_before_the_native_engine_sees_it() -> None:
    deep: object = {"var": "a"}
    for _ in range(MAX_RULE_DEPTH + 5):
        deep = {"!": [deep]}
    rule, issues = compile_rule(deep, "/x")
    assert rule is None and issues[0].code == "definition.rule_too_complex"


def test_computed_name_for_var_is_refused() -> None:
    _, issues = compile_rule({"var": {"cat": ["a", {"var": "b"}]}}, "/r")
    assert issues and issues[0].code == "definition.bad_rule"


def test_a_name_computed_from_literals_alone_is_folded_and_checked() -> None:
    rule, issues = compile_rule({"+": [{"var": {"cat": ["am", "ount"]}}, {"val": {"cat": ["fe", "e"]}}]}, "/r")
    assert issues == [] and rule is not None
    assert [(use.name, use.pointer) for use in rule.variables] == [("amount", "/r/+/0/var"), ("fee", "/r/+/1/val")]
    assert rule.evaluate({"amount": 2, "fee": 1}) == 3
    _, issues = compile_rule({"val": {"cat": ["a", ".b"]}}, "/r")  # folds to a dotted key: refused
    assert issues and "'.'" in issues[0].params["detail"]
    _, issues = compile_rule({"var": {"/": [1, 0]}}, "/r")  # a name that fails is refused
    assert issues and issues[0].code == "definition.bad_rule"


def test_throw_fails_closed_and_is_lazy() -> None:
    from engine.rules import RuleError

    rule, issues = compile_rule({"if": [{">": [{"var": "a"}, 10]}, {"throw": "too_big"}, {"*": [{"var": "a"}, 2]}]}, "")
    assert issues == [] and rule is not None and rule.exact  # still decided with decimals
    assert rule.evaluate({"a": Decimal("0.1")}) == Decimal("0.2")
    with pytest.raises(RuleError, match="too_big"):
        rule.evaluate({"a": 11})
    lazy, _ = compile_rule({"<": [{"var": "a"}, 2, {"throw": "not_lazy"}]}, "")
    assert lazy is not None and lazy.evaluate({"a": 3}) is False
    _, issues = compile_rule({"throw": {"var": "a"}}, "/r")  # a record value would reach the logs
    assert issues and issues[0].path == "/r/throw"


def test_a_literal_that_is_not_an_array_cannot_be_iterated() -> None:
    from engine.rules import RuleError

    for rule in ({"all": [None, {"var": ""}]}, {"map": [5, {"var": ""}]}, {"map": [{"var": "xs"}, None]}):
        compiled, issues = compile_rule(rule, "")
        assert issues == [] and compiled is not None
        with pytest.raises(RuleError):
            compiled.evaluate({"xs": [1]})
    # a missing (optional) array is an empty one
    missing, _ = compile_rule({"none": [{"var": "xs"}, {"<": [{"var": ""}, 0]}]}, "")
    assert missing is not None and missing.evaluate({}) is True


def test_scope_jumps_that_reach_the_record_are_listed() -> None:
    rule, issues = compile_rule(
        {"filter": [{"var": "rows"}, {"and": [{">=": [{"val": "amount"}, {"val": [[2], "floor"]}]},
                                            {"<": [{"val": [[1], "index"]}, 3]},
                                            {"all": [{"val": "tags"}, {"!=": [{"val": []}, {"val": [[2], "label"]}]}]},
                                            {"all": [{"val": "tags"}, {"!=": [{"val": []}, {"val": [[4], "banned"]}]}]}]}]},
        "")
    assert issues == [] and rule is not None
    # [[2], "floor"] from one iteration in and [[4], "banned"] from two are record fields;
    # [[2], "label"] from two iterations in is a field of the row; [[1], "index"] is a position
    assert [use.name for use in rule.variables] == ["rows", "floor", "banned"]
    rows = [{"amount": 5, "tags": ["a"], "label": "b"}, {"amount": 1, "tags": ["x"], "label": "y"},
            {"amount": 7, "tags": ["z"], "label": "z"}, {"amount": 9, "tags": [], "label": ""}]
    assert rule.evaluate({"rows": rows, "floor": 2, "banned": "q"}) == [rows[0]]
    _, issues = compile_rule({"val": [[1.5], "x"]}, "/r")
    assert issues and "integer" in issues[0].params["detail"]
    _, issues = compile_rule({"exists": [[1], "x"]}, "/r")
    assert issues and "scope" in issues[0].params["detail"]


def test_budget_exhaustion_fails_closed() -> None:
    from engine.rules import RuleError

    rule, _ = compile_rule({"reduce": [{"var": "xs"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]}, "")
    assert rule is not None
    try:
        rule.evaluate({"xs": list(range(500_000))})
    except RuleError:
        pass
    else:
        raise AssertionError("a rule past its operation budget must fail closed")


def test_arithmetic_is_decimal_not_binary_float() -> None:
    rule, _ = compile_rule({"*": [{"var": "a"}, 100]}, "")
    assert rule is not None and rule.exact
    assert rule.evaluate({"a": Decimal("0.07")}) == Decimal("7.00")
    total, _ = compile_rule({"+": [{"var": "a"}, {"var": "b"}]}, "")
    assert total is not None
    assert total.evaluate({"a": Decimal("0.10"), "b": Decimal("0.20")}) == Decimal("0.30")
    assert total.evaluate({"a": Decimal("12345678901234567.89"), "b": Decimal("0.01")}) == Decimal("12345678901234567.90")


def test_comparisons_beyond_float_precision_are_exact() -> None:
    differs, _ = compile_rule({"!=": [{"var": "a"}, {"var": "b"}]}, "")
    assert differs is not None
    assert differs.holds({"a": Decimal("9007199254740993.00"), "b": Decimal("9007199254740992.00")})


def test_null_in_a_comparison_keeps_jsonlogic_semantics() -> None:
    rule, _ = compile_rule({"<=": [{"var": "a"}, 10]}, "")
    assert rule is not None
    assert rule.holds({"a": None}) is True  # JSONLogic reads null as 0: guard optional fields


def test_division_by_zero_fails_closed() -> None:
    from engine.rules import RuleError

    rule, _ = compile_rule({"/": [{"var": "a"}, {"var": "b"}]}, "")
    assert rule is not None
    with pytest.raises(RuleError):
        rule.evaluate({"a": 1, "b": Decimal("0.00")})


def test_non_exact_operators_still_evaluate_natively() -> None:
    rule, _ = compile_rule({"cat": ["a", {"var": "x"}]}, "")
    assert rule is not None and not rule.exact
    assert rule.evaluate({"x": "b"}) == "ab"


def test_truthiness_follows_jsonlogic() -> None:
    assert [is_truthy(v) for v in (0, "", [], None, False, "0", [0], Decimal("0.0"), 1)] == [
        False, False, False, False, False, True, True, False, True]

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.forms.compiler import compile_form
from engine.forms.pipeline import compute, validate
from engine.forms.spec import FormSpec

BALANCE_SHEET: dict[str, Any] = {
    "kind": "form", "key": "balance_sheet", "title": "Balance sheet",
    "schema": {"type": "object", "properties": {
        "total_assets": {"type": "number", "minimum": 0, "x-decimal": {"scale": 2}},
        "total_liabilities": {"type": "number", "minimum": 0, "x-decimal": {"scale": 2}},
        "equity": {"type": "number", "x-decimal": {"scale": 2}},
        "debt_to_asset_pct": {"type": "number", "x-decimal": {"scale": 2}},
        "headcount": {"type": "integer"},
        "per_head": {"type": "integer"},
        "owners": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "share": {"type": "number", "x-decimal": {"scale": 4}}}}}}},
    "computed": {
        # declared before the field it depends on: order must come from dependencies
        "debt_to_asset_pct": {"rule": {"*": [{"/": [{"var": "total_liabilities"}, {"var": "total_assets"}]}, 100]}},
        "equity": {"rule": {"-": [{"var": "total_assets"}, {"var": "total_liabilities"}]}},
        "per_head": {"rule": {"/": [{"var": "equity"}, {"var": "headcount"}]}, "rounding": "down"},
    },
    "rules": [{"code": "owners_sum_to_one", "path": "/owners",
               "rule": {"==": [{"reduce": [{"var": "owners"}, {"+": [{"var": "accumulator"}, {"var": "current.share"}]}, 0]}, 1]},
               "message": {"en": "Shares must add up to 100 %", "zh-CN": "股权比例合计须为 100%"}}],
}


@pytest.fixture(scope="module")
def spec() -> FormSpec:
    compiled, issues = compile_form(BALANCE_SHEET, 1, lambda key: False)
    assert issues == [] and compiled is not None
    return compiled


def test_computed_fields_run_in_dependency_order_and_round_as_declared(spec: FormSpec) -> None:
    data, issues = compute(spec, {"total_assets": Decimal("3000000.00"), "total_liabilities": Decimal("1000000.00"),
                                  "headcount": 7, "owners": [{"name": "A", "share": Decimal("1")}]})
    assert issues == []
    assert data["equity"] == Decimal("2000000.00")
    assert data["debt_to_asset_pct"] == Decimal("33.33")
    assert data["per_head"] == 285714  # 285714.28... rounded down
    assert validate(spec, data) == []


def test_nested_decimal_scale_is_checked_in_array_rows(spec: FormSpec) -> None:
    data = {"owners": [{"name": "A", "share": Decimal("0.5")}, {"name": "B", "share": Decimal("0.50001")}]}
    issues = validate(spec, data)
    assert ("/owners/1/share", "record.scale") in [(i.path, i.code) for i in issues]


def test_cross_field_rule_over_repeating_rows(spec: FormSpec) -> None:
    data = {"owners": [{"name": "A", "share": Decimal("0.6")}, {"name": "B", "share": Decimal("0.3")}]}
    issues = validate(spec, data)
    assert [(i.path, i.code, i.message("zh-CN")) for i in issues] == [("/owners", "owners_sum_to_one", "股权比例合计须为 100%")]


def test_division_by_zero_in_a_computed_field_is_reported_not_raised(spec: FormSpec) -> None:
    _, issues = compute(spec, {"total_assets": Decimal("0"), "total_liabilities": Decimal("0"), "headcount": 1})
    assert ("/debt_to_asset_pct", "record.compute_error") in [(i.path, i.code) for i in issues]


def test_computed_field_must_be_declared() -> None:
    document = {**BALANCE_SHEET, "computed": {"ghost": {"rule": 1}}}
    _, issues = compile_form(document, 1, lambda key: False)
    assert [(i.path, i.code) for i in issues] == [("/computed/ghost", "definition.computed_undeclared")]


def test_reference_to_an_unknown_form_is_refused() -> None:
    document = {**BALANCE_SHEET, "refs": {"equity": {"form": "ledger"}}}
    _, issues = compile_form(document, 1, lambda key: False)
    assert [(i.path, i.code) for i in issues] == [("/refs/equity/form", "definition.unknown_form")]


def test_amounts_of_up_to_forty_digits_compute_exactly() -> None:
    # 36 integer digits at scale 2 is the widest a DECIMAL(38, 2) holds; the computation is exact
    # past decimal128's 34 digits and past Python's default 28.
    data, issues = compute(_spec_or_fail(), {"total_assets": Decimal("123456789012345678901234567890123456.78"),
                                             "total_liabilities": Decimal("0.01"), "headcount": 1,
                                             "owners": [{"name": "A", "share": 1}]})
    assert issues == []
    assert data["equity"] == Decimal("123456789012345678901234567890123456.77")
    assert validate(_spec_or_fail(), data) == []


def test_a_computed_value_too_large_to_round_is_an_error_not_absent() -> None:
    form = {"kind": "form", "key": "big", "title": "Big",
            "schema": {"type": "object", "properties": {
                "a": {"type": "number"}, "b": {"type": "number", "x-decimal": {"scale": 2}}}},
            "computed": {"b": {"rule": {"*": [{"var": "a"}, {"var": "a"}, {"var": "a"}]}}}}
    compiled, problems = compile_form(form, 1, lambda key: False)
    assert problems == [] and compiled is not None
    data, issues = compute(compiled, {"a": Decimal("1e40")})  # 1e120: no context quantizes it
    assert "b" not in data
    assert [(issue.path, issue.code) for issue in issues] == [("/b", "record.compute_error")]


@pytest.mark.parametrize(("value", "refused"), [
    (Decimal("999999999999999999999999999999999999.99"), False),  # 36 integer digits
    (Decimal("1000000000000000000000000000000000000"), True),      # 37
    (10 ** 36, True),                                                # an integer JSON number too
    (Decimal("-1000000000000000000000000000000000000.5"), True),
])
def test_a_decimal_wider_than_its_stored_type_is_refused(value: Any, refused: bool) -> None:
    issues = validate(_spec_or_fail(), {"equity": value, "owners": [{"name": "A", "share": 1}]})
    codes = [(issue.path, issue.code, issue.params) for issue in issues]
    expected = [("/equity", "record.decimal_too_large", {"digits": 36})] if refused else []
    assert codes == expected


def _spec_or_fail() -> FormSpec:
    compiled, issues = compile_form(BALANCE_SHEET, 1, lambda key: False)
    assert issues == [] and compiled is not None
    return compiled

"""Computed values past what can be stored, negative zero, and the size of enum errors."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.forms.compiler import compile_form
from engine.forms.pipeline import MAX_SHOWN_OPTIONS, run
from engine.forms.spec import FormSpec


def _compile(properties: dict[str, Any], computed: dict[str, Any] | None = None) -> FormSpec:
    document: dict[str, Any] = {"kind": "form", "key": "bounds", "title": "Bounds",
                                "schema": {"type": "object", "properties": properties}}
    if computed:
        document["computed"] = computed
    compiled, problems = compile_form(document, 1, lambda key: False)
    assert problems == [] and compiled is not None
    return compiled


CUBE = {"*": [{"var": "a"}, {"var": "a"}]}


@pytest.mark.parametrize(("declared", "code"), [
    ({"type": "number"}, "record.compute_error"),
    ({"type": "integer"}, "record.decimal_too_large"),  # an integer is stored like a decimal of scale 0
    ({"type": "number", "x-decimal": {"scale": 2}}, "record.decimal_too_large"),
])
def test_a_computed_number_too_large_to_store_is_an_issue_at_the_field(declared: dict[str, Any], code: str) -> None:
    spec = _compile({"a": {"type": "number"}, "b": declared}, {"b": {"rule": CUBE}})
    outcome = run(spec, {"a": Decimal("1e30")})  # 1e60: more than any stored number may hold
    assert "b" not in outcome.data
    assert [(issue.path, issue.code) for issue in outcome.issues] == [("/b", code)]


def test_negative_zero_is_zero_of_the_same_scale_on_the_way_in_and_when_computed() -> None:
    spec = _compile({"a": {"type": "number", "x-decimal": {"scale": 2}},
                     "b": {"type": "number", "x-decimal": {"scale": 2}},
                     "c": {"type": "number"}},
                    {"b": {"rule": {"*": [{"var": "a"}, -1]}}, "c": {"rule": {"*": [{"var": "a"}, -1]}}})
    outcome = run(spec, {"a": Decimal("-0.0")})
    assert outcome.issues == []
    for name, text in (("a", "0.0"), ("b", "0.00"), ("c", "0.0")):
        value = outcome.data[name]
        assert not value.is_signed() and str(value) == text, (name, value)
    rounded = run(spec, {"a": Decimal("0.004")}).data["b"]  # -0.004 rounds to zero, unsigned
    assert str(rounded) == "0.00"


def test_an_enum_error_names_a_bounded_number_of_allowed_values() -> None:
    options = [f"value-{index}" for index in range(100_000)]
    spec = _compile({"kind": {"type": "string", "enum": options}})
    [issue] = run(spec, {"kind": "nope"}).issues
    assert issue.code == "record.enum"
    allowed = issue.params["allowed"]
    assert allowed[:MAX_SHOWN_OPTIONS] == options[:MAX_SHOWN_OPTIONS]
    assert allowed[-1] == f"…(+{100_000 - MAX_SHOWN_OPTIONS})" and len(allowed) == MAX_SHOWN_OPTIONS + 1
    assert len(issue.message()) < 1000 and len(issue.message("zh-CN")) < 1000


def test_a_long_allowed_value_is_cut_in_the_error() -> None:
    spec = _compile({"kind": {"type": "string", "enum": ["x" * 5000, "y"]}})
    [issue] = run(spec, {"kind": "z"}).issues
    assert len(issue.params["allowed"][0]) <= 201 and issue.params["allowed"][1] == "y"

"""Mapping files: the meta-schema, compilation, and every problem reported at once."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from engine.imports import (
    CellType,
    ColumnField,
    ConstantField,
    LookupField,
    MappingError,
    check_mapping_fields,
    compile_mapping,
    load_mapping,
)

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO / "metadata" / "import-mapping.schema.json"
EXAMPLES = sorted((REPO / "examples" / "bank" / "imports").glob("*.json"))


def minimal(**fields: Any) -> dict[str, Any]:
    return {"form": "things", "source": {"format": "csv"}, "fields": fields or {"a": {"column": "A"}}}


def codes(error: MappingError) -> list[tuple[str, str]]:
    return [(issue.path, issue.code) for issue in error.issues]


def test_mapping_meta_schema_is_a_valid_2020_12_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_mappings_compile(path: Path) -> None:
    mapping = load_mapping(path)
    assert mapping.form in {"customer", "credit_limit_adjustment", "complaint"}
    assert mapping.description
    assert mapping.fields


def test_example_mapping_compiles_to_frozen_specs() -> None:
    mapping = load_mapping(REPO / "examples" / "bank" / "imports" / "sba_credit_applications.json",
                           form="credit_limit_adjustment")
    by_target = {spec.target: spec for spec in mapping.fields}
    assert by_target["customer_id"] == LookupField(
        "customer_id", form="customer", field="external_id", column="LoanNr_ChkDgt")
    assert by_target["current_limit"] == ConstantField("current_limit", 0)
    assert by_target["applied_on"] == ColumnField(
        "applied_on", "ApprovalDate", CellType.DATE, date_format="sas")
    assert mapping.source.encoding == "utf-8-sig"
    assert mapping.columns == ("LoanNr_ChkDgt", "GrAppv", "ApprovalDate")
    with pytest.raises(AttributeError):
        mapping.form = "other"  # type: ignore[misc]


def test_defaults_of_a_minimal_mapping() -> None:
    mapping = compile_mapping(minimal())
    assert mapping.source.encoding == "utf-8"
    assert mapping.source.delimiter == ","
    assert mapping.skip_empty is True
    assert mapping.null_values == frozenset({""})
    assert mapping.fields == (ColumnField("a", "A"),)


def test_numbers_in_a_mapping_file_are_exact(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"form": "things", "source": {"format": "csv"},'
                    ' "fields": {"rate": {"value": 0.10}, "n": {"value": 3}}}', encoding="utf-8")
    mapping = load_mapping(path)
    values = {spec.target: spec.value for spec in mapping.fields if isinstance(spec, ConstantField)}
    assert values == {"rate": Decimal("0.10"), "n": 3}
    assert str(values["rate"]) == "0.10"


def test_global_and_column_null_values_are_case_folded() -> None:
    document = minimal(a={"column": "A", "null_values": [" N/A "]})
    document["null_values"] = ["NULL"]
    mapping = compile_mapping(document)
    assert mapping.null_values == frozenset({"", "null"})
    assert mapping.fields[0].null_values == frozenset({"n/a"})  # type: ignore[union-attr]


def test_missing_top_level_parts_are_all_reported() -> None:
    with pytest.raises(MappingError) as caught:
        compile_mapping({"fields": {}})
    assert sorted(codes(caught.value)) == [
        ("", "import.mapping.required"),
        ("", "import.mapping.required"),
        ("/fields", "import.mapping.min_properties"),
    ]
    assert {issue["code"] for issue in caught.value.errors} == {
        "import.mapping.required", "import.mapping.min_properties"}


def test_a_field_needs_exactly_one_source() -> None:
    with pytest.raises(MappingError) as caught:
        compile_mapping(minimal(a={"column": "A", "value": 1}, b={"type": "integer"}))
    assert codes(caught.value) == [("/fields/a", "import.mapping.one_of"),
                                   ("/fields/b", "import.mapping.one_of")]
    assert caught.value.issues[0].message == "give exactly one of 'column', 'value' or 'lookup'"


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ({"column": "A", "type": "money"}, [("/fields/a/type", "import.mapping.enum")]),
        ({"column": "A", "date_format": "sas"}, [("/fields/a", "import.mapping.required")]),
        ({"column": "A", "type": "string", "date_format": "sas"},
         [("/fields/a/type", "import.mapping.const")]),
        ({"column": "A", "true": ["Y"]}, [("/fields/a", "import.mapping.required")]),
        ({"column": "A", "type": "integer", "map": {"1": 1}}, [("/fields/a", "import.mapping.not")]),
        ({"column": "A", "colour": "red"}, [("/fields/a", "import.mapping.additional_properties")]),
        ({"lookup": {"form": "Other", "field": "id"}},
         [("/fields/a/lookup", "import.mapping.required"),
          ("/fields/a/lookup/form", "import.mapping.pattern")]),
    ],
)
def test_field_shape_errors_point_at_the_field(field: dict[str, Any],
                                               expected: list[tuple[str, str]]) -> None:
    with pytest.raises(MappingError) as caught:
        compile_mapping(minimal(a=field))
    assert sorted(codes(caught.value)) == sorted(expected)


def test_bad_field_name_and_source_are_reported() -> None:
    document = minimal(**{"bad name": {"column": "A"}})
    document["source"] = {"format": "xlsx", "delimiter": ";;"}
    with pytest.raises(MappingError) as caught:
        compile_mapping(document)
    assert sorted(codes(caught.value)) == [
        ("/fields", "import.mapping.pattern"),
        ("/source/delimiter", "import.mapping.max_length"),
        ("/source/format", "import.mapping.enum"),
    ]


@pytest.mark.parametrize("pattern", ["%Y-%m", "%d.%m.%y %H:%M", "DD/MM/YYYY"])
def test_a_date_format_must_name_year_month_and_day_only(pattern: str) -> None:
    with pytest.raises(MappingError) as caught:
        compile_mapping(minimal(a={"column": "A", "type": "date", "date_format": pattern}))
    assert codes(caught.value) == [("/fields/a/date_format", "import.mapping.bad_date_format")]


def test_a_word_cannot_mean_true_and_false() -> None:
    with pytest.raises(MappingError) as caught:
        compile_mapping(minimal(a={"column": "A", "type": "boolean", "true": ["Y", "1"],
                                   "false": ["y"]}))
    assert codes(caught.value) == [("/fields/a", "import.mapping.ambiguous_boolean")]


def test_mapping_for_another_form_is_refused() -> None:
    with pytest.raises(MappingError) as caught:
        compile_mapping(minimal(), form="customers")
    assert codes(caught.value) == [("/form", "import.mapping.form_mismatch")]


def test_invalid_json_and_non_finite_numbers_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"form": ', encoding="utf-8")
    nan = tmp_path / "nan.json"
    nan.write_text('{"form": "a", "source": {"format": "csv"}, "fields": {"x": {"value": NaN}}}',
                   encoding="utf-8")
    for path in (broken, nan, tmp_path / "absent.json"):
        with pytest.raises(MappingError) as caught:
            load_mapping(path)
        assert caught.value.issues[0].path == ""
        assert caught.value.issues[0].code in {"import.mapping.invalid_json",
                                               "import.mapping.unreadable"}


def test_check_mapping_fields_names_undeclared_fields() -> None:
    mapping = compile_mapping(minimal(a={"column": "A"}, b={"value": 1}, c={"column": "C"}))
    check_mapping_fields(mapping, ["a", "b", "c", "d"])
    with pytest.raises(MappingError) as caught:
        check_mapping_fields(mapping, ["a"])
    assert codes(caught.value) == [("/fields/b", "import.mapping.unknown_field"),
                                   ("/fields/c", "import.mapping.unknown_field")]

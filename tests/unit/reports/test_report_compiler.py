"""Semantic checks of report definitions and the compiled spec."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from engine.errors import DefinitionInvalid, Issue
from engine.messages import CATALOGUE
from engine.reports import ReportSpec, check_report, compile_report


@pytest.fixture
def complaint(forms):
    return forms.add(
        "complaint",
        [
            ("received_on", "date"),
            ("handled_on", "date"),
            ("received_at", "datetime"),
            ("product", "string"),
            ("channel", "string"),
            ("satisfaction", "integer"),
            ("amount", "decimal", 2),
            ("ratio", "number"),
            ("timely", "boolean"),
            ("extra", "json"),
        ],
    )


def _document(**parts):
    document = {
        "kind": "report",
        "key": "complaints_by_month",
        "title": {"en": "By month", "zh-CN": "按月"},
        "source": {"form": "complaint"},
        "measures": [{"name": "complaints", "agg": "count"}],
    }
    document.update(parts)
    return document


def test_the_documented_example_checks_and_compiles(forms, complaint):
    document = _document(
        dimensions=[{"name": "month", "field": "received_on", "bucket": "month"}],
        measures=[
            {"name": "complaints", "agg": "count"},
            {"name": "avg_satisfaction", "agg": "avg", "field": "satisfaction"},
            {"name": "nps", "agg": "nps", "field": "satisfaction"},
            {
                "name": "avg_handling_days",
                "agg": "avg",
                "duration": {"from": "received_on", "to": "handled_on", "unit": "days"},
            },
            {
                "name": "timely_rate",
                "agg": "rate",
                "where": {"field": "timely", "op": "eq", "value": True},
            },
        ],
        filters=[{"field": "channel", "op": "in", "value": ["web", "phone"]}],
        sort=[{"by": "month", "order": "asc"}],
        limit=1000,
    )

    assert check_report(document, forms.latest) == []
    spec = compile_report(document, complaint, 3)

    assert isinstance(spec, ReportSpec)
    assert (
        spec.key,
        spec.version,
        spec.source_form,
        spec.timezone,
        spec.limit,
        spec.form_version,
    ) == ("complaints_by_month", 3, "complaint", "Asia/Shanghai", 1000, 1)
    assert spec.member_names() == (
        "month",
        "complaints",
        "avg_satisfaction",
        "nps",
        "avg_handling_days",
        "timely_rate",
    )
    assert spec.dimensions[0].bucket == "month" and spec.dimensions[0].field.type == "date"
    assert spec.filters[0].value == ("web", "phone")
    assert spec.measures[3].duration is not None and spec.measures[3].duration.unit == "days"


def test_unknown_field_is_reported_at_its_pointer(forms, complaint):
    document = _document(dimensions=[{"name": "x", "field": "nope"}])

    assert check_report(document, forms.latest) == [
        Issue("/dimensions/0/field", "definition.unknown_field", {"field": "nope"})
    ]


def test_every_unknown_field_is_reported_at_once(forms, complaint):
    document = _document(
        measures=[
            {"name": "a", "agg": "sum", "field": "ghost"},
            {
                "name": "b",
                "agg": "avg",
                "duration": {"from": "ghost1", "to": "handled_on", "unit": "days"},
            },
            {"name": "c", "agg": "rate", "where": {"field": "ghost2", "op": "eq", "value": 1}},
        ],
        filters=[{"field": "ghost3", "op": "is_null"}],
    )

    assert [(issue.path, issue.code) for issue in check_report(document, forms.latest)] == [
        ("/measures/0/field", "definition.unknown_field"),
        ("/measures/1/duration/from", "definition.unknown_field"),
        ("/measures/2/where/field", "definition.unknown_field"),
        ("/filters/0/field", "definition.unknown_field"),
    ]


def test_unknown_form(forms):
    assert check_report(_document(), forms.latest) == [
        Issue("/source/form", "definition.unknown_form", {"form": "complaint"})
    ]


def test_metadata_columns_can_be_named(forms, complaint):
    document = _document(
        dimensions=[
            {"name": "day", "field": "_created_at", "bucket": "day"},
            {"name": "version", "field": "_form_version"},
        ],
        measures=[{"name": "records", "agg": "count_distinct", "field": "_id"}],
    )

    assert check_report(document, forms.latest) == []


def test_updated_at_is_not_a_report_field(forms, complaint):
    document = _document(dimensions=[{"name": "day", "field": "_updated_at"}])

    assert check_report(document, forms.latest)[0].code == "definition.unknown_field"


@pytest.mark.parametrize(
    ("part", "pointer", "actual"),
    [
        (
            {"dimensions": [{"name": "m", "field": "product", "bucket": "month"}]},
            "/dimensions/0/field",
            "string",
        ),
        ({"dimensions": [{"name": "m", "field": "extra"}]}, "/dimensions/0/field", "json"),
        (
            {"measures": [{"name": "s", "agg": "sum", "field": "product"}]},
            "/measures/0/field",
            "string",
        ),
        (
            {"measures": [{"name": "s", "agg": "avg", "field": "timely"}]},
            "/measures/0/field",
            "boolean",
        ),
        (
            {"measures": [{"name": "s", "agg": "nps", "field": "amount"}]},
            "/measures/0/field",
            "decimal",
        ),
        (
            {"measures": [{"name": "s", "agg": "max", "field": "extra"}]},
            "/measures/0/field",
            "json",
        ),
        (
            {
                "measures": [
                    {
                        "name": "s",
                        "agg": "avg",
                        "duration": {"from": "product", "to": "handled_on", "unit": "days"},
                    }
                ]
            },
            "/measures/0/duration/from",
            "string",
        ),
        (
            {"filters": [{"field": "timely", "op": "gt", "value": True}]},
            "/filters/0/field",
            "boolean",
        ),
    ],
)
def test_fields_must_have_a_type_their_use_needs(forms, complaint, part, pointer, actual):
    issues = check_report(_document(**part), forms.latest)

    assert [(issue.path, issue.code, issue.params["actual"]) for issue in issues] == [
        (pointer, "definition.bad_field_type", actual)
    ]


def test_nps_accepts_integer_and_number_scores(forms, complaint):
    for field in ("satisfaction", "ratio"):
        document = _document(measures=[{"name": "nps", "agg": "nps", "field": field}])
        assert check_report(document, forms.latest) == []


def test_duplicate_output_names(forms, complaint):
    document = _document(
        dimensions=[{"name": "complaints", "field": "product"}],
        measures=[{"name": "complaints", "agg": "count"}],
    )

    assert check_report(document, forms.latest) == [
        Issue("/measures/0/name", "definition.duplicate_name", {"name": "complaints"})
    ]


def test_sort_must_name_a_member(forms, complaint):
    document = _document(sort=[{"by": "product"}])

    assert check_report(document, forms.latest) == [
        Issue("/sort/0/by", "definition.unknown_member", {"name": "product"})
    ]


def test_unknown_time_zone(forms, complaint):
    issues = check_report(_document(timezone="Mars/Olympus"), forms.latest)

    assert issues == [
        Issue("/timezone", "definition.unknown_timezone", {"timezone": "Mars/Olympus"})
    ]


@pytest.mark.parametrize(
    ("condition", "pointer"),
    [
        ({"field": "received_on", "op": "gte", "value": "yesterday"}, "/filters/0/value"),
        (
            {"field": "received_on", "op": "gte", "value": "2024-03-01T00:00:00Z"},
            "/filters/0/value",
        ),
        ({"field": "satisfaction", "op": "eq", "value": "9"}, "/filters/0/value"),
        ({"field": "timely", "op": "eq", "value": 1}, "/filters/0/value"),
        ({"field": "product", "op": "in", "value": ["a", 2]}, "/filters/0/value/1"),
        ({"field": "received_at", "op": "lt", "value": "2024-02-30"}, "/filters/0/value"),
    ],
)
def test_filter_values_must_fit_their_field(forms, complaint, condition, pointer):
    issues = check_report(_document(filters=[condition]), forms.latest)

    assert [(issue.path, issue.code) for issue in issues] == [(pointer, "definition.bad_value")]


def test_filter_values_are_converted_for_binding(forms, complaint):
    document = _document(
        filters=[
            {"field": "received_on", "op": "gte", "value": "2024-03-01"},
            {"field": "received_at", "op": "lt", "value": "2024-03-01"},
            {"field": "received_at", "op": "gt", "value": "2024-03-01T08:00:00+08:00"},
            {"field": "amount", "op": "in", "value": [1, Decimal("2.50")]},
        ]
    )

    values = [condition.value for condition in compile_report(document, complaint, 1).filters]

    assert values == [
        date(2024, 3, 1),
        # A bare date against a date-time field is that whole local day in Shanghai.
        (datetime(2024, 2, 29, 16, 0, tzinfo=UTC), datetime(2024, 3, 1, 16, 0, tzinfo=UTC)),
        datetime(2024, 3, 1, 0, 0, tzinfo=UTC),
        (1, Decimal("2.50")),
    ]


def test_measures_need_their_parts(forms, complaint):
    document = _document(
        measures=[
            {"name": "a", "agg": "rate"},
            {"name": "b", "agg": "sum"},
            {
                "name": "c",
                "agg": "count",
                "duration": {"from": "received_on", "to": "handled_on", "unit": "days"},
            },
            {
                "name": "d",
                "agg": "rate",
                "field": "amount",
                "where": {"field": "timely", "op": "eq", "value": True},
            },
        ]
    )

    assert [
        (issue.path, issue.code, issue.params) for issue in check_report(document, forms.latest)
    ] == [
        ("/measures/0", "definition.missing_part", {"part": "where"}),
        ("/measures/1", "definition.missing_part", {"part": "field"}),
        ("/measures/2/duration", "definition.unexpected_part", {"part": "duration"}),
        ("/measures/3/field", "definition.unexpected_part", {"part": "field"}),
    ]


def test_compile_refuses_a_document_that_does_not_check(complaint):
    with pytest.raises(DefinitionInvalid) as raised:
        compile_report(_document(dimensions=[{"name": "x", "field": "nope"}]), complaint, 1)

    assert raised.value.issues[0].path == "/dimensions/0/field"


def test_every_code_the_compiler_uses_has_both_languages():
    for code in (
        "definition.unknown_form",
        "definition.unknown_field",
        "definition.bad_field_type",
        "definition.duplicate_name",
        "definition.unknown_member",
        "definition.unknown_timezone",
        "definition.bad_value",
        "definition.missing_part",
        "definition.unexpected_part",
        "report.stale",
    ):
        assert set(CATALOGUE[code]) >= {"en", "zh-CN"}, code

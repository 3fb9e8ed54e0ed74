"""The deeper report language: median / percentile / ratio / count_distinct / rate / durations,
tiers and value labels, local days in the report zone, typed query-time parameters, drill paths
and period-over-period comparison. Every figure is worked out by hand in the test."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.errors import DefinitionInvalid, ValidationFailed
from engine.reports import check_report, run_report


def rows_of(result):
    names = [column["name"] for column in result["columns"]]
    return [dict(zip(names, row, strict=True)) for row in result["rows"]]


# -- measures -------------------------------------------------------------------------------------


def test_median_and_percentiles_interpolate_exactly(forms, writer, mirror, report):
    form = forms.add("loan", [("amount", "decimal", 2), ("branch", "string"), ("n", "integer")])
    for amount, n in [("10.00", 1), ("20.00", 2), ("40.00", 4), ("100.00", 10)]:
        writer.add("loan", {"amount": Decimal(amount), "branch": "a", "n": n})
    writer.add("loan", {"branch": "a"})  # no amount: ignored by the percentiles
    spec = report(
        form,
        measures=[
            {"name": "median", "agg": "median", "field": "amount"},
            {"name": "p25", "agg": "percentile", "field": "amount", "p": 0.25},
            {"name": "p90", "agg": "percentile", "field": "amount", "p": 0.9},
            {"name": "median_n", "agg": "median", "field": "n"},
        ],
    )

    [row] = rows_of(run_report(mirror, spec))

    # sorted 10, 20, 40, 100; rank h = 3p: median h=1.5 -> 20 + 0.5*20 = 30;
    # p25 h=0.75 -> 10 + 0.75*10 = 17.5; p90 h=2.7 -> 40 + 0.7*60 = 82.
    assert row == {
        "median": Decimal("30"),
        "p25": Decimal("17.5"),
        "p90": Decimal("82"),
        "median_n": Decimal("3"),
    }


def test_percentile_of_an_empty_group_is_null_and_of_one_value_is_that_value(
    forms, writer, mirror, report
):
    form = forms.add("loan", [("amount", "integer"), ("branch", "string")])
    writer.add("loan", {"amount": 7, "branch": "a"})
    writer.add("loan", {"branch": "b"})
    spec = report(
        form,
        dimensions=[{"name": "branch", "field": "branch"}],
        measures=[{"name": "p90", "agg": "percentile", "field": "amount", "p": 0.9}],
    )

    assert run_report(mirror, spec)["rows"] == [["a", Decimal("7")], ["b", None]]


def test_median_of_a_duration_in_hours(forms, writer, mirror, report):
    form = forms.add("case", [("opened", "datetime"), ("closed", "datetime")])
    writer.add("case", {"opened": "2024-03-01T00:00:00Z", "closed": "2024-03-01T01:00:00Z"})
    writer.add("case", {"opened": "2024-03-01T00:00:00Z", "closed": "2024-03-01T02:30:00Z"})
    spec = report(
        form,
        measures=[
            {"name": "median_hours", "agg": "median",
             "duration": {"from": "opened", "to": "closed", "unit": "hours"}},
            {"name": "avg_days", "agg": "avg",
             "duration": {"from": "opened", "to": "closed", "unit": "days"}},
        ],
    )

    [row] = rows_of(run_report(mirror, spec))
    assert row["median_hours"] == Decimal("1.75")
    assert row["avg_days"] == Decimal("0.0729166667")  # 1.75 h / 24


def test_count_distinct_rate_and_ratio(forms, writer, mirror, report):
    form = forms.add(
        "complaint", [("customer", "string"), ("timely", "boolean"), ("branch", "string")]
    )
    for customer, timely, branch in [
        ("c1", True, "a"), ("c1", False, "a"), ("c2", True, "a"), ("c3", None, "b"),
    ]:
        writer.add("complaint", {"customer": customer, "timely": timely, "branch": branch})
    spec = report(
        form,
        dimensions=[{"name": "branch", "field": "branch"}],
        measures=[
            {"name": "complaints", "agg": "count"},
            {"name": "customers", "agg": "count_distinct", "field": "customer"},
            {"name": "timely_rate", "agg": "rate",
             "where": {"field": "timely", "op": "eq", "value": True}},
            {"name": "timely", "agg": "count",
             "where": {"field": "timely", "op": "eq", "value": True}},
            {"name": "per_customer", "agg": "ratio", "numerator": "complaints",
             "denominator": "customers"},
            {"name": "timely_per_timely", "agg": "ratio", "numerator": "complaints",
             "denominator": "timely"},
        ],
    )

    assert rows_of(run_report(mirror, spec)) == [
        {"branch": "a", "complaints": 3, "customers": 2, "timely_rate": Decimal("0.6666666667"),
         "timely": 2, "per_customer": Decimal("1.5"), "timely_per_timely": Decimal("1.5")},
        # NULL timely is not timely; a ratio over a zero denominator is NULL, not an error.
        {"branch": "b", "complaints": 1, "customers": 1, "timely_rate": Decimal("0"),
         "timely": 0, "per_customer": Decimal("1"), "timely_per_timely": None},
    ]


def test_ratio_must_name_other_measures(forms):
    form = forms.add("complaint", [("customer", "string")])
    document = {
        "kind": "report", "key": "r", "title": "r", "source": {"form": "complaint"},
        "measures": [
            {"name": "n", "agg": "count"},
            {"name": "r", "agg": "ratio", "numerator": "n", "denominator": "missing"},
            {"name": "r2", "agg": "ratio", "numerator": "r", "denominator": "n"},
        ],
    }

    issues = check_report(document, lambda key: form if key == "complaint" else None)

    assert [(i.path, i.code) for i in issues] == [
        ("/measures/1/denominator", "definition.unknown_member"),
        ("/measures/2/numerator", "definition.unknown_member"),
    ]


# -- dimensions -----------------------------------------------------------------------------------

PYRAMID = [
    {"below": 100000, "label": {"zh-CN": "普通客户", "en": "Mass"}},
    {"below": 1000000, "label": {"zh-CN": "重点客户", "en": "Key"}},
    {"label": {"zh-CN": "战略客户", "en": "Strategic"}},
]


def test_tiers_bucket_values_into_ordered_labelled_bands(forms, writer, mirror, report):
    form = forms.add("customer", [("balance", "decimal", 2)])
    for balance in ["0", "99999.99", "100000", "999999.99", "1000000", "5000000"]:
        writer.add("customer", {"balance": Decimal(balance)})
    writer.add("customer", {})
    spec = report(
        form,
        dimensions=[{"name": "tier", "field": "balance", "tiers": PYRAMID}],
        measures=[{"name": "customers", "agg": "count"},
                  {"name": "total", "agg": "sum", "field": "balance"}],
    )

    assert run_report(mirror, spec)["rows"] == [
        ["Mass", 2, Decimal("99999.99")],
        ["Key", 2, Decimal("1099999.99")],
        ["Strategic", 2, Decimal("6000000.00")],
        [None, 1, None],
    ]
    assert [row[0] for row in run_report(mirror, spec, language="zh-CN")["rows"]] == [
        "普通客户", "重点客户", "战略客户", None]


def test_tiers_sort_descending_by_their_order_not_their_label(forms, writer, mirror, report):
    form = forms.add("customer", [("balance", "integer")])
    for balance in [5, 500_000, 5_000_000]:
        writer.add("customer", {"balance": balance})
    spec = report(
        form,
        dimensions=[{"name": "tier", "field": "balance", "tiers": PYRAMID}],
        sort=[{"by": "tier", "order": "desc"}],
    )

    assert [row[0] for row in run_report(mirror, spec)["rows"]] == ["Strategic", "Key", "Mass"]


def test_tier_bounds_must_ascend_and_only_the_last_is_open(forms):
    form = forms.add("customer", [("balance", "integer"), ("name", "string")])
    document = {
        "kind": "report", "key": "r", "title": "r", "source": {"form": "customer"},
        "dimensions": [
            {"name": "t1", "field": "balance",
             "tiers": [{"below": 10, "label": "a"}, {"below": 10, "label": "b"}, {"label": "c"}]},
            {"name": "t2", "field": "name", "tiers": [{"label": "all"}]},
        ],
        "measures": [{"name": "n", "agg": "count"}],
    }

    issues = check_report(document, lambda key: form)

    assert [(i.path, i.code) for i in issues] == [
        ("/dimensions/0/tiers/1/below", "definition.tiers_not_ascending"),
        ("/dimensions/1/field", "definition.bad_field_type"),
    ]


def test_value_labels_in_the_request_language(forms, writer, mirror, report):
    form = forms.add("complaint", [("channel", "string"), ("timely", "boolean")])
    for channel, timely in [("web", True), ("phone", False), ("fax", True)]:
        writer.add("complaint", {"channel": channel, "timely": timely})
    spec = report(
        form,
        dimensions=[
            {"name": "channel", "field": "channel",
             "labels": {"web": {"zh-CN": "网站", "en": "Web"}, "phone": {"zh-CN": "电话", "en": "Phone"}}},
        ],
    )
    timely_spec = report(
        form,
        dimensions=[{"name": "timely", "field": "timely",
                     "labels": {"true": {"zh-CN": "及时", "en": "In time"}, "false": "Late"}}],
    )

    # Unmapped values show as they are; order is by the raw value (fax, phone, web).
    assert run_report(mirror, spec)["rows"] == [["fax", 1], ["Phone", 1], ["Web", 1]]
    assert run_report(mirror, spec, language="zh-CN")["rows"] == [["fax", 1], ["电话", 1], ["网站", 1]]
    assert run_report(mirror, timely_spec, language="zh-CN")["rows"] == [["Late", 1], ["及时", 2]]


# -- the report's time zone -------------------------------------------------------------------------

# 2019-03-02 23:59 and 2019-03-03 00:01 in Shanghai, then 2019-03-03 23:59 and 2019-03-04 00:01.
EDGES = ["2019-03-02T15:59:00Z", "2019-03-02T16:01:00Z", "2019-03-03T15:59:00Z",
         "2019-03-03T16:01:00Z"]


@pytest.fixture
def edges(forms, writer):
    form = forms.add("visit", [("seen_at", "datetime"), ("n", "integer")])
    for index, moment in enumerate(EDGES):
        writer.add("visit", {"seen_at": moment, "n": index})
    return form


def test_day_buckets_split_at_shanghai_midnight(edges, mirror, report):
    spec = report(edges, dimensions=[{"name": "day", "field": "seen_at", "bucket": "day"}])

    assert run_report(mirror, spec)["rows"] == [
        ["2019-03-02", 1], ["2019-03-03", 2], ["2019-03-04", 1]]


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", "2019-03-03", [1, 2]),
        ("ne", "2019-03-03", [0, 3]),
        ("lt", "2019-03-03", [0]),
        ("lte", "2019-03-03", [0, 1, 2]),
        ("gt", "2019-03-03", [3]),
        ("gte", "2019-03-03", [1, 2, 3]),
        ("in", ["2019-03-02", "2019-03-04"], [0, 3]),
        ("between", ["2019-03-03", "2019-03-04"], [1, 2, 3]),
        # With an explicit offset the value is an instant, not a day.
        ("gte", "2019-03-03T00:00:00+08:00", [1, 2, 3]),
        ("eq", "2019-03-03T00:01:00+08:00", [1]),
    ],
)
def test_a_date_filter_on_a_date_time_means_that_local_day(edges, mirror, report, op, value, expected):
    spec = report(
        edges,
        dimensions=[{"name": "n", "field": "n"}],
        filters=[{"field": "seen_at", "op": op, "value": value}],
    )

    assert [row[0] for row in run_report(mirror, spec)["rows"]] == expected


def test_a_report_in_utc_reads_dates_as_utc_days(edges, mirror, report):
    spec = report(
        edges,
        timezone="UTC",
        dimensions=[{"name": "n", "field": "n"}],
        filters=[{"field": "seen_at", "op": "eq", "value": "2019-03-02"}],
    )

    assert [row[0] for row in run_report(mirror, spec)["rows"]] == [0, 1]


# -- parameters -------------------------------------------------------------------------------------

PARAMETERS = [
    {"name": "period", "type": "date_range"},
    {"name": "channel", "type": "enum", "values": ["web", "phone", "fax"]},
    {"name": "channels", "type": "enum", "values": ["web", "phone", "fax"], "multiple": True},
    {"name": "min_amount", "type": "number"},
    {"name": "company", "type": "string"},
    {"name": "day", "type": "date"},
]
PARAM_FILTERS = [
    {"field": "seen_at", "op": "between", "param": "period"},
    {"field": "channel", "op": "eq", "param": "channel"},
    {"field": "channel", "op": "in", "param": "channels"},
    {"field": "amount", "op": "gte", "param": "min_amount"},
    {"field": "company", "op": "eq", "param": "company"},
    {"field": "seen_at", "op": "eq", "param": "day"},
]


@pytest.fixture
def visits(forms, writer):
    form = forms.add(
        "visit",
        [("seen_at", "datetime"), ("n", "integer"), ("channel", "string"),
         ("amount", "decimal", 2), ("company", "string")],
    )
    data = [("web", "10.00", "ACME"), ("phone", "20.50", "O'Brien; DROP TABLE x"),
            ("web", "30.00", "ACME"), ("fax", "5.00", "Zed")]
    for index, (moment, (channel, amount, company)) in enumerate(zip(EDGES, data, strict=True)):
        writer.add("visit", {"seen_at": moment, "n": index, "channel": channel,
                             "amount": Decimal(amount), "company": company})
    return form


def _param_spec(report, form, **parts):
    return report(
        form,
        parameters=PARAMETERS,
        dimensions=[{"name": "n", "field": "n"}],
        filters=PARAM_FILTERS,
        **parts,
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [0, 1, 2, 3]),  # a parameter not given leaves its filter out
        ({"period": "2019-03-03..2019-03-03"}, [1, 2]),
        ({"period": "2019-03-01..2019-03-03"}, [0, 1, 2]),
        ({"channel": "web"}, [0, 2]),
        ({"channels": "phone,fax"}, [1, 3]),
        ({"min_amount": "20.5"}, [1, 2]),
        ({"company": "O'Brien; DROP TABLE x"}, [1]),  # bound, never spliced
        ({"day": "2019-03-04"}, [3]),
        ({"period": "2019-03-03..2019-03-04", "channel": "web", "min_amount": "15"}, [2]),
    ],
)
def test_parameters_filter_at_query_time(visits, mirror, report, params, expected):
    spec = _param_spec(report, visits)

    result = run_report(mirror, spec, params)

    assert [row[0] for row in result["rows"]] == expected
    assert set(result["meta"]["parameters"]) == {p["name"] for p in PARAMETERS}


def test_unknown_and_ill_typed_parameters_are_refused_all_at_once(visits, mirror, report):
    spec = _param_spec(report, visits)

    with pytest.raises(ValidationFailed) as raised:
        run_report(mirror, spec, {"period": "2019-03-04..2019-03-01", "channel": "email",
                                  "min_amount": "1e400", "day": "03/03/2019", "branch": "x"})

    assert raised.value.status == 422
    assert sorted((i.path, i.code) for i in raised.value.issues) == [
        ("branch", "report.unknown_parameter"),
        ("channel", "report.parameter_type"),
        ("day", "report.parameter_type"),
        ("min_amount", "report.parameter_type"),
        ("period", "report.parameter_type"),
    ]
    body = raised.value.to_body("zh-CN")["errors"]
    assert all({"path", "code", "message"} <= set(error) for error in body)
    assert any(error["message"] == "报表 test_report 没有参数 branch" for error in body)


def test_required_parameters_and_defaults(visits, mirror, report):
    spec = report(
        visits,
        parameters=[{"name": "period", "type": "date_range", "required": True},
                    {"name": "channel", "type": "enum", "values": ["web", "fax"], "default": "web"}],
        dimensions=[{"name": "n", "field": "n"}],
        filters=[{"field": "seen_at", "op": "between", "param": "period"},
                 {"field": "channel", "op": "eq", "param": "channel"}],
    )

    with pytest.raises(ValidationFailed) as raised:
        run_report(mirror, spec, {})
    assert [(i.path, i.code) for i in raised.value.issues] == [("period", "report.missing_parameter")]
    result = run_report(mirror, spec, {"period": "2019-03-01..2019-03-31"})
    assert [row[0] for row in result["rows"]] == [0, 2]
    assert result["meta"]["parameters"] == {"period": ["2019-03-01", "2019-03-31"], "channel": "web"}


def test_parameters_must_fit_the_fields_they_filter(forms):
    form = forms.add("visit", [("seen_at", "datetime"), ("amount", "integer"), ("name", "string")])
    document = {
        "kind": "report", "key": "r", "title": "r", "source": {"form": "visit"},
        "parameters": [{"name": "period", "type": "date_range"}, {"name": "q", "type": "string"},
                       {"name": "d", "type": "date", "default": "not a date"}],
        "measures": [{"name": "n", "agg": "count"}],
        "filters": [
            {"field": "seen_at", "op": "eq", "param": "period"},  # a range needs between
            {"field": "amount", "op": "eq", "param": "q"},
            {"field": "name", "op": "eq", "param": "nope"},
        ],
    }

    issues = check_report(document, lambda key: form)

    assert [(i.path, i.code) for i in issues] == [
        ("/parameters/2/default", "definition.bad_value"),
        ("/filters/0/param", "definition.parameter_mismatch"),
        ("/filters/1/param", "definition.parameter_mismatch"),
        ("/filters/2/param", "definition.unknown_parameter"),
    ]


# -- drill ----------------------------------------------------------------------------------------


@pytest.fixture
def steps(forms, writer):
    form = forms.add("task", [("state", "string"), ("assignee", "string"), ("hours", "integer"),
                              ("day", "date")])
    for state, assignee, hours in [("review", "ann", 2), ("review", "bob", 4), ("review", "bob", 6),
                                   ("approve", "cat", 10), ("approve", None, 1)]:
        writer.add("task", {"state": state, "assignee": assignee, "hours": hours,
                            "day": "2024-03-05"})
    return form


def _drill_spec(report, form):
    return report(
        form,
        dimensions=[{"name": "state", "field": "state"}, {"name": "assignee", "field": "assignee"}],
        measures=[{"name": "tasks", "agg": "count"}, {"name": "avg_hours", "agg": "avg", "field": "hours"}],
        drill=["state", "assignee"],
    )


def test_drill_shows_the_first_level_then_the_next_filtered_to_a_value(steps, mirror, report):
    spec = _drill_spec(report, steps)

    top = run_report(mirror, spec)
    down = run_report(mirror, spec, {"drill": "state:review"})
    unassigned = run_report(mirror, spec, {"drill": "state:approve"})

    assert top["columns"][0] == {"name": "state", "type": "string"}
    assert top["rows"] == [["approve", 2, Decimal("5.5")], ["review", 3, Decimal("4")]]
    assert top["meta"]["drill"] == {"levels": ["state", "assignee"], "level": "state", "path": [],
                                    "next": "assignee"}
    assert [c["name"] for c in down["columns"]] == ["assignee", "tasks", "avg_hours"]
    assert down["rows"] == [["ann", 1, Decimal("2")], ["bob", 2, Decimal("5")]]
    assert down["meta"]["drill"]["path"] == [{"dimension": "state", "value": "review"}]
    assert down["meta"]["drill"]["next"] is None
    assert unassigned["rows"] == [["cat", 1, Decimal("10")], [None, 1, Decimal("1")]]


@pytest.mark.parametrize(
    "drill",
    ["assignee:bob", "state", ["state:review", "assignee:bob"], "nope:x"],
)
def test_bad_drill_paths_are_refused(steps, mirror, report, drill):
    with pytest.raises(ValidationFailed) as raised:
        run_report(mirror, _drill_spec(report, steps), {"drill": drill})
    assert [(i.path, i.code) for i in raised.value.issues] == [("drill", "report.bad_drill")]


def test_drill_on_a_report_without_one_is_refused(steps, mirror, report):
    with pytest.raises(ValidationFailed):
        run_report(mirror, report(steps), {"drill": "state:review"})


# -- period over period -----------------------------------------------------------------------------


def test_each_month_next_to_the_previous_one(forms, writer, mirror, report):
    form = forms.add("complaint", [("day", "date"), ("score", "integer"), ("channel", "string")])
    for day, score, channel in [
        ("2024-01-10", 10, "web"), ("2024-01-20", 0, "web"), ("2024-02-01", 9, "web"),
        ("2024-04-01", 10, "web"), ("2024-02-02", 5, "phone"),
    ]:
        writer.add("complaint", {"day": day, "score": score, "channel": channel})
    spec = report(
        form,
        dimensions=[{"name": "month", "field": "day", "bucket": "month"},
                    {"name": "channel", "field": "channel"}],
        measures=[{"name": "complaints", "agg": "count"}, {"name": "nps", "agg": "nps", "field": "score"}],
        compare={"dimension": "month", "measures": ["complaints", "nps"]},
    )

    result = run_report(mirror, spec)

    assert [c["name"] for c in result["columns"]] == [
        "month", "channel", "complaints", "nps", "complaints_previous", "complaints_change",
        "nps_previous", "nps_change"]
    assert result["rows"] == [
        ["2024-01-01", "web", 2, Decimal("0"), None, None, None, None],
        ["2024-02-01", "phone", 1, Decimal("-100"), None, None, None, None],
        ["2024-02-01", "web", 1, Decimal("100"), 2, -1, Decimal("0"), Decimal("100")],
        # March has no row, so April has no previous value (not January's).
        ["2024-04-01", "web", 1, Decimal("100"), None, None, None, None],
    ]


def test_compare_needs_a_time_bucket(forms):
    form = forms.add("complaint", [("channel", "string")])
    document = {
        "kind": "report", "key": "r", "title": "r", "source": {"form": "complaint"},
        "dimensions": [{"name": "channel", "field": "channel"}],
        "measures": [{"name": "n", "agg": "count"}],
        "compare": {"dimension": "channel"},
    }

    issues = check_report(document, lambda key: form)

    assert [(i.path, i.code) for i in issues] == [
        ("/compare/dimension", "definition.compare_needs_bucket")]


def test_compile_raises_with_every_issue(forms):
    form = forms.add("complaint", [("channel", "string")])
    from engine.reports import compile_report

    with pytest.raises(DefinitionInvalid) as raised:
        compile_report(
            {"kind": "report", "key": "r", "title": "r", "source": {"form": "complaint"},
             "measures": [{"name": "p", "agg": "percentile", "field": "channel", "p": 2}]},
            form, 1,
        )
    assert {i.code for i in raised.value.issues} == {"definition.bad_percentile",
                                                     "definition.bad_field_type"}



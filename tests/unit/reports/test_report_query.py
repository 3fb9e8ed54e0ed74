"""Running compiled reports on the mirror: time buckets, exact numbers, every measure, filters,
order and limit, and values that look like SQL."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.errors import Conflict, ValidationFailed
from engine.reports import run_report


def test_month_bucket_uses_the_report_time_zone(forms, writer, mirror, report):
    form = forms.add("visit", [("seen_at", "datetime")])
    writer.add("visit", {"seen_at": "2024-02-29T17:30:00Z"})  # 2024-03-01 01:30 in Shanghai
    writer.add("visit", {"seen_at": "2024-02-29T15:59:59Z"})  # 2024-02-29 23:59:59 in Shanghai
    spec = report(form, dimensions=[{"name": "month", "field": "seen_at", "bucket": "month"}])

    result = run_report(mirror, spec)

    assert result["columns"] == [
        {"name": "month", "type": "date"},
        {"name": "rows", "type": "integer"},
    ]
    assert result["rows"] == [["2024-02-01", 1], ["2024-03-01", 1]]
    assert result["meta"] == {
        "report": "test_report",
        "version": 1,
        "form": "visit",
        "timezone": "Asia/Shanghai",
        "row_count": 2,
        "truncated": False,
    }


def test_bucket_in_utc_when_the_report_says_so(forms, writer, mirror, report):
    form = forms.add("visit", [("seen_at", "datetime")])
    writer.add("visit", {"seen_at": "2024-02-29T17:30:00Z"})
    spec = report(
        form, timezone="UTC", dimensions=[{"name": "month", "field": "seen_at", "bucket": "month"}]
    )

    assert run_report(mirror, spec)["rows"] == [["2024-02-01", 1]]


@pytest.mark.parametrize(
    ("grain", "expected"),
    [
        ("day", "2024-05-17"),
        ("week", "2024-05-13"),
        ("month", "2024-05-01"),
        ("quarter", "2024-04-01"),
        ("year", "2024-01-01"),
    ],
)
def test_every_grain_outputs_the_first_day_of_its_bucket(
    forms, writer, mirror, report, grain, expected
):
    form = forms.add("visit", [("day", "date")])
    writer.add("visit", {"day": "2024-05-17"})  # a Friday
    spec = report(form, dimensions=[{"name": "bucket", "field": "day", "bucket": grain}])

    assert run_report(mirror, spec)["rows"] == [[expected, 1]]


def test_bucket_on_a_metadata_column(forms, writer, mirror, report, clock):
    form = forms.add("visit", [("note", "string")])
    writer.add("visit", {"note": "x"})  # created at 2024-03-01T08:00Z
    spec = report(form, dimensions=[{"name": "day", "field": "_created_at", "bucket": "day"}])

    assert run_report(mirror, spec)["rows"] == [["2024-03-01", 1]]


def test_decimal_sums_are_exact(forms, writer, mirror, report):
    form = forms.add("payment", [("amount", "decimal", 2)])
    writer.add("payment", {"amount": Decimal("0.10")})
    writer.add("payment", {"amount": Decimal("0.20")})
    spec = report(
        form,
        measures=[
            {"name": "total", "agg": "sum", "field": "amount"},
            {"name": "mean", "agg": "avg", "field": "amount"},
        ],
    )

    result = run_report(mirror, spec)

    assert result["columns"][0] == {"name": "total", "type": "decimal"}
    total, mean = result["rows"][0]
    assert isinstance(total, Decimal) and total == Decimal("0.30") and str(total) == "0.30"
    assert mean == Decimal("0.15")


def test_a_large_decimal_round_trips(forms, writer, mirror, report):
    form = forms.add("payment", [("amount", "decimal", 2), ("kind", "string")])
    writer.add("payment", {"amount": Decimal("98765432109876.54"), "kind": "a"})
    writer.add("payment", {"amount": Decimal("98765432109876.54"), "kind": "a"})
    writer.add("payment", {"amount": Decimal("0.01"), "kind": "a"})
    spec = report(
        form,
        dimensions=[{"name": "amount", "field": "amount"}],
        measures=[{"name": "rows", "agg": "count"}],
    )
    totals = report(
        form,
        measures=[
            {"name": "total", "agg": "sum", "field": "amount"},
            {"name": "top", "agg": "max", "field": "amount"},
            {"name": "mean", "agg": "avg", "field": "amount"},
        ],
    )

    assert run_report(mirror, spec)["rows"] == [
        [Decimal("0.01"), 1],
        [Decimal("98765432109876.54"), 2],
    ]
    total, top, mean = run_report(mirror, totals)["rows"][0]
    assert total == Decimal("197530864219753.09")
    assert top == Decimal("98765432109876.54")
    assert mean == Decimal("65843621406584.3633333333")  # exact division, 10 places half up


def test_avg_over_integers_is_an_exact_decimal(forms, writer, mirror, report):
    form = forms.add("survey", [("score", "integer")])
    for score in (1, 2, 2):
        writer.add("survey", {"score": score})
    spec = report(
        form,
        measures=[
            {"name": "mean", "agg": "avg", "field": "score"},
            {"name": "total", "agg": "sum", "field": "score"},
        ],
    )

    result = run_report(mirror, spec)

    assert result["columns"] == [
        {"name": "mean", "type": "decimal"},
        {"name": "total", "type": "integer"},
    ]
    assert result["rows"] == [[Decimal("1.6666666667"), 5]]
    assert isinstance(result["rows"][0][1], int)


def test_avg_over_a_float_column_is_rounded_to_ten_places(forms, writer, mirror, report):
    form = forms.add("reading", [("value", "number")])
    for value in (Decimal("0.1"), Decimal("0.2")):
        writer.add("reading", {"value": value})
    spec = report(form, measures=[{"name": "mean", "agg": "avg", "field": "value"}])

    assert run_report(mirror, spec)["rows"] == [[Decimal("0.15")]]


def test_nps_counts_promoters_minus_detractors_over_scores(forms, writer, mirror, report):
    form = forms.add("survey", [("score", "integer"), ("group", "string")])
    for score in (10, 9, 8, 7, 6, 0):
        writer.add("survey", {"score": score, "group": "even"})
    for score in (10, 10, 9, 3):
        writer.add("survey", {"score": score, "group": "positive"})
    writer.add("survey", {"group": "positive"})  # no score: not counted
    writer.add("survey", {"group": "unscored"})
    spec = report(
        form,
        dimensions=[{"name": "group", "field": "group"}],
        measures=[{"name": "nps", "agg": "nps", "field": "score"}],
    )

    assert run_report(mirror, spec)["rows"] == [
        ["even", Decimal(0)],  # 100 * (2 - 2) / 6
        ["positive", Decimal(50)],  # 100 * (3 - 1) / 4
        ["unscored", None],
    ]


def test_nps_with_a_fraction(forms, writer, mirror, report):
    form = forms.add("survey", [("score", "integer")])
    for score in (9, 5, 7):
        writer.add("survey", {"score": score})
    spec = report(form, measures=[{"name": "nps", "agg": "nps", "field": "score"}])

    assert run_report(mirror, spec)["rows"] == [[Decimal(0)]]
    writer.add("survey", {"score": 10})
    assert run_report(mirror, spec)["rows"] == [[Decimal(25)]]
    writer.add("survey", {"score": 10})
    assert run_report(mirror, spec)["rows"] == [[Decimal(40)]]
    writer.add("survey", {"score": 2})
    assert run_report(mirror, spec)["rows"] == [[Decimal("16.6666666667")]]


def test_rate_is_matching_rows_over_all_rows_of_the_group(forms, writer, mirror, report):
    form = forms.add("case", [("timely", "boolean"), ("team", "string")])
    for timely in (True, False, None):
        writer.add("case", {"timely": timely, "team": "a"})
    writer.add("case", {"timely": True, "team": "b"})
    spec = report(
        form,
        dimensions=[{"name": "team", "field": "team"}],
        measures=[
            {
                "name": "timely_rate",
                "agg": "rate",
                "where": {"field": "timely", "op": "eq", "value": True},
            }
        ],
    )

    result = run_report(mirror, spec)

    assert result["columns"][1] == {"name": "timely_rate", "type": "decimal"}
    assert result["rows"] == [["a", Decimal("0.3333333333")], ["b", Decimal(1)]]


def test_rate_over_no_rows_is_null(forms, mirror, report):
    form = forms.add("case", [("timely", "boolean")])
    spec = report(
        form,
        measures=[
            {"name": "n", "agg": "count"},
            {
                "name": "timely_rate",
                "agg": "rate",
                "where": {"field": "timely", "op": "eq", "value": True},
            },
        ],
    )

    assert run_report(mirror, spec)["rows"] == [[0, None]]


def test_where_restricts_other_aggregates(forms, writer, mirror, report):
    form = forms.add("case", [("status", "string"), ("amount", "decimal", 2)])
    writer.add("case", {"status": "open", "amount": Decimal("1.50")})
    writer.add("case", {"status": "done", "amount": Decimal("2.25")})
    writer.add("case", {"status": "done", "amount": Decimal("3.00")})
    where = {"field": "status", "op": "eq", "value": "done"}
    spec = report(
        form,
        measures=[
            {"name": "all", "agg": "count"},
            {"name": "done", "agg": "count", "where": where},
            {"name": "done_amount", "agg": "sum", "field": "amount", "where": where},
            {"name": "done_avg", "agg": "avg", "field": "amount", "where": where},
        ],
    )

    assert run_report(mirror, spec)["rows"] == [[3, 2, Decimal("5.25"), Decimal("2.625")]]


def test_duration_in_days_between_dates(forms, writer, mirror, report):
    form = forms.add("case", [("received_on", "date"), ("handled_on", "date")])
    writer.add(
        "case", {"received_on": "2024-02-27", "handled_on": "2024-03-01"}
    )  # 3 days (leap year)
    writer.add("case", {"received_on": "2024-03-01", "handled_on": "2024-03-05"})  # 4 days
    writer.add("case", {"received_on": "2024-03-01"})  # still open
    duration = {"from": "received_on", "to": "handled_on", "unit": "days"}
    spec = report(
        form,
        measures=[
            {"name": "avg_days", "agg": "avg", "duration": duration},
            {"name": "max_days", "agg": "max", "duration": duration},
            {"name": "total_hours", "agg": "sum", "duration": {**duration, "unit": "hours"}},
        ],
    )

    assert run_report(mirror, spec)["rows"] == [[Decimal("3.5"), Decimal(4), Decimal(168)]]


def test_duration_in_hours_between_instants(forms, writer, mirror, report):
    form = forms.add(
        "task", [("opened_at", "datetime"), ("closed_at", "datetime"), ("due_on", "date")]
    )
    writer.add(
        "task",
        {
            "opened_at": "2024-03-01T00:00:00Z",
            "closed_at": "2024-03-01T05:30:00Z",
            "due_on": "2024-03-02",
        },
    )
    writer.add(
        "task",
        {
            "opened_at": "2024-03-01T00:00:00+08:00",
            "closed_at": "2024-03-01T02:00:00+08:00",
            "due_on": "2024-03-02",
        },
    )
    spec = report(
        form,
        measures=[
            {
                "name": "avg_hours",
                "agg": "avg",
                "duration": {"from": "opened_at", "to": "closed_at", "unit": "hours"},
            },
            # the date is midnight in the report zone: 2024-03-02T00:00+08:00
            {
                "name": "min_days_left",
                "agg": "min",
                "duration": {"from": "closed_at", "to": "due_on", "unit": "days"},
            },
        ],
    )

    # due_on is 2024-03-01T16:00Z: (5.5 + 2) / 2 hours; min(10.5 h, 22 h) = 0.4375 days
    assert run_report(mirror, spec)["rows"] == [[Decimal("3.75"), Decimal("0.4375")]]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "channel", "op": "eq", "value": "web"}, ["a"]),
        ({"field": "channel", "op": "ne", "value": "web"}, ["b", "c", "d"]),  # NULL is "not web"
        ({"field": "channel", "op": "in", "value": ["web", "phone"]}, ["a", "b"]),
        ({"field": "channel", "op": "in", "value": []}, []),
        ({"field": "channel", "op": "is_null"}, ["d"]),
        ({"field": "channel", "op": "not_null"}, ["a", "b", "c"]),
        ({"field": "amount", "op": "lt", "value": 2}, ["a"]),
        ({"field": "amount", "op": "lte", "value": 2}, ["a", "b"]),
        ({"field": "amount", "op": "gt", "value": Decimal("2.5")}, ["c"]),
        ({"field": "amount", "op": "gte", "value": Decimal("2.00")}, ["b", "c"]),
        ({"field": "day", "op": "gte", "value": "2024-03-02"}, ["b", "c"]),
        ({"field": "at", "op": "lt", "value": "2024-03-01T12:00:00+08:00"}, ["a"]),
        ({"field": "at", "op": "gte", "value": "2024-03-02"}, ["c"]),  # midnight in Shanghai
        ({"field": "flag", "op": "eq", "value": False}, ["b"]),
        ({"field": "_id", "op": "eq", "value": "c"}, ["c"]),
    ],
)
def test_filters(forms, writer, mirror, report, condition, expected):
    form = forms.add(
        "order",
        [
            ("channel", "string"),
            ("amount", "decimal", 2),
            ("day", "date"),
            ("at", "datetime"),
            ("flag", "boolean"),
        ],
    )
    writer.add(
        "order",
        {
            "channel": "web",
            "amount": Decimal("1.00"),
            "day": "2024-03-01",
            "at": "2024-03-01T03:00:00Z",
            "flag": True,
        },
        record_id="a",
    )
    writer.add(
        "order",
        {
            "channel": "phone",
            "amount": Decimal("2.00"),
            "day": "2024-03-02",
            "at": "2024-03-01T15:59:59Z",
            "flag": False,
        },
        record_id="b",
    )
    writer.add(
        "order",
        {
            "channel": "mail",
            "amount": Decimal("3.00"),
            "day": "2024-03-03",
            "at": "2024-03-01T16:00:00Z",
        },
        record_id="c",
    )
    writer.add("order", {}, record_id="d")
    spec = report(form, dimensions=[{"name": "id", "field": "_id"}], filters=[condition])

    assert [row[0] for row in run_report(mirror, spec)["rows"]] == expected


def test_sort_by_a_measure_then_limit(forms, writer, mirror, report):
    form = forms.add("ticket", [("product", "string")])
    for product in ["x", "y", "y", "z", "z", "z", "w", "w", "w"]:
        writer.add("ticket", {"product": product})
    spec = report(
        form,
        dimensions=[{"name": "product", "field": "product"}],
        measures=[{"name": "tickets", "agg": "count"}],
        sort=[{"by": "tickets", "order": "desc"}],
        limit=3,
    )

    result = run_report(mirror, spec)

    # equal counts fall back to the dimension, ascending
    assert result["rows"] == [["w", 3], ["z", 3], ["y", 2]]
    assert result["meta"]["row_count"] == 3 and result["meta"]["truncated"] is True


def test_default_order_is_the_dimensions_ascending_with_nulls_last(forms, writer, mirror, report):
    form = forms.add("ticket", [("product", "string"), ("year", "integer")])
    for product, year in [("b", 2024), ("a", 2025), (None, 2023), ("a", 2023)]:
        writer.add("ticket", {"product": product, "year": year})
    spec = report(
        form,
        dimensions=[{"name": "product", "field": "product"}, {"name": "year", "field": "year"}],
    )

    assert run_report(mirror, spec)["rows"] == [
        ["a", 2023, 1],
        ["a", 2025, 1],
        ["b", 2024, 1],
        [None, 2023, 1],
    ]


def test_date_time_values_come_back_in_the_report_zone(forms, writer, mirror, report):
    form = forms.add("visit", [("seen_at", "datetime"), ("day", "date")])
    writer.add("visit", {"seen_at": "2024-02-29T17:30:00Z", "day": "2024-02-29"})
    writer.add("visit", {"seen_at": "2024-02-29T18:30:00.250Z", "day": "2024-02-29"})
    spec = report(
        form,
        dimensions=[{"name": "day", "field": "day"}],
        measures=[
            {"name": "first", "agg": "min", "field": "seen_at"},
            {"name": "last", "agg": "max", "field": "seen_at"},
        ],
    )

    result = run_report(mirror, spec)

    assert [column["type"] for column in result["columns"]] == ["date", "datetime", "datetime"]
    assert result["rows"] == [
        ["2024-02-29", "2024-03-01T01:30:00+08:00", "2024-03-01T02:30:00.250000+08:00"]
    ]


def test_text_that_looks_like_sql_is_only_data(forms, writer, mirror, report):
    nasty = "'); DROP TABLE x; --"
    form = forms.add("note", [("text", "string")])
    writer.add("note", {"text": nasty})
    writer.add("note", {"text": 'a"b'})
    spec = report(
        form,
        dimensions=[{"name": "text", "field": "text"}],
        filters=[{"field": "text", "op": "in", "value": [nasty, 'a"b', "zz"]}],
    )

    assert run_report(mirror, spec)["rows"] == [[nasty, 1], ['a"b', 1]]
    assert mirror.execute('SELECT count(*) FROM "form_note"', []) == [(2,)]


def test_count_distinct_and_count_of_a_field(forms, writer, mirror, report):
    form = forms.add("visit", [("customer", "string")])
    for customer in ["a", "a", "b", None]:
        writer.add("visit", {"customer": customer})
    spec = report(
        form,
        measures=[
            {"name": "visits", "agg": "count"},
            {"name": "with_customer", "agg": "count", "field": "customer"},
            {"name": "customers", "agg": "count_distinct", "field": "customer"},
        ],
    )

    assert run_report(mirror, spec)["rows"] == [[4, 3, 2]]


def test_a_report_sees_writes_committed_before_it_runs(forms, writer, mirror, report):
    form = forms.add("visit", [("customer", "string")])
    spec = report(form)
    assert run_report(mirror, spec)["rows"] == [[0]]

    writer.add("visit", {"customer": "a"})

    assert run_report(mirror, spec)["rows"] == [[1]]


def test_reserved_query_names_are_not_parameters_but_unknown_names_are_refused(
    forms, writer, mirror, report
):
    form = forms.add("visit", [("customer", "string")])
    writer.add("visit", {"customer": "a"})

    assert run_report(mirror, report(form), {"lang": "en", "format": "csv"})["rows"] == [[1]]
    with pytest.raises(ValidationFailed) as raised:
        run_report(mirror, report(form), {"lang": "en", "x": "1"})
    assert [(i.path, i.code) for i in raised.value.issues] == [("x", "report.unknown_parameter")]


def test_a_report_over_a_field_whose_type_changed_is_stale(forms, writer, mirror, report):
    form = forms.add("survey", [("score", "integer")])
    spec = report(form, measures=[{"name": "total", "agg": "sum", "field": "score"}])
    forms.add("survey", [("score", "string")])

    with pytest.raises(Conflict) as raised:
        run_report(mirror, spec)
    assert raised.value.code == "report.stale"


def test_sums_of_the_widest_storable_amounts_are_exact(forms, writer, mirror, report):
    # Values past Python's default 28-digit context still land in DECIMAL(38, 2) unchanged, so a
    # sum never silently leaves a row out.
    form = forms.add("payment", [("amount", "decimal", 2)])
    writer.add("payment", {"amount": Decimal("1e30")})
    writer.add("payment", {"amount": Decimal("123456789012345678901234567890123.45")})
    writer.add("payment", {"amount": Decimal("0.01")})
    totals = report(form, measures=[{"name": "rows", "agg": "count"},
                                    {"name": "filled", "agg": "count", "field": "amount"},
                                    {"name": "total", "agg": "sum", "field": "amount"}])

    assert run_report(mirror, totals)["rows"] == [[3, 3, Decimal("124456789012345678901234567890123.46")]]

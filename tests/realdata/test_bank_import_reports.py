"""Real public data through the bank example: import with the mappings in examples/bank/imports,
then check the reports against figures computed here, independently, with the csv module.

CFPB complaints (2019 sample and the older 2016-09 export) feed `complaints_by_month` and
`complaint_handling_by_product`; SBA 7(a) loans feed `customers_by_region_industry` and, through
a lookup of the customer by loan number, credit-limit applications.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any


from realdata_support import BANK, MAPPINGS, data_file, read_csv, table

CFPB_2019 = ("cfpb-complaints", "complaints_sample_2019.csv")
CFPB_2016 = ("cfpb-complaints", "complaints_sample_2016-09.csv")
SBA = ("sba-loans", "SBAcase.11.13.17.csv")

TOLERANCE = 1e-9


def month_of(value: Any) -> str:
    """A month bucket as 'YYYY-MM', whether the engine returns a date, a datetime or text."""
    if isinstance(value, (date, datetime)):
        return f"{value.year:04d}-{value.month:02d}"
    match = re.match(r"(\d{4})-(\d{2})", str(value))
    assert match, f"not a month bucket: {value!r}"
    return f"{match[1]}-{match[2]}"


def close(actual: Any, expected: Fraction) -> bool:
    assert actual is not None and not isinstance(actual, bool), actual
    number = Fraction(Decimal(str(actual))) if isinstance(actual, float) else Fraction(actual)
    return abs(number - expected) <= TOLERANCE * max(1, abs(expected))


def assert_no_rejections(report: Any, expected_rejected: int) -> None:
    shown = [(row.row_number, [(issue.path, issue.code) for issue in row.issues])
             for row in report.rejected[:5]]
    assert len(report.rejected) == expected_rejected, shown
    for row in report.rejected:
        assert row.issues and all(issue.code for issue in row.issues)
    assert report.imported + len(report.rejected) + report.already_present == report.total


# -- complaints ---------------------------------------------------------------------------------

def expected_complaint_figures(rows: list[dict[str, str]], date_format: str) -> dict[str, Any]:
    """Per month and per product, from the raw CSV rows; also how many rows the form must refuse."""
    def day(text: str) -> date:
        return datetime.strptime(text, date_format).date()

    per_month: Counter[str] = Counter()
    per_product: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"count": 0, "timely": 0, "days": 0})
    invalid = 0
    for row in rows:
        received, sent = day(row["Date received"]), day(row["Date sent to company"])
        required = (row["Date received"], row["Product"], row["Issue"], row["Submitted via"])
        if not all(cell.strip() for cell in required) or sent < received:
            invalid += 1
            continue
        per_month[f"{received:%Y-%m}"] += 1
        product = per_product[row["Product"].strip()]
        product["count"] += 1
        product["timely"] += row["Timely response?"].strip() == "Yes"
        product["days"] += (sent - received).days
    return {"per_month": per_month, "per_product": per_product, "invalid": invalid}


def check_complaint_reports(engine: Any, expected: dict[str, Any]) -> None:
    by_month = engine.run_report("complaints_by_month")
    assert [c["name"] for c in by_month["columns"]] == [
        "month", "complaints", "avg_satisfaction", "nps"]
    rows = table(by_month)
    assert {month_of(row["month"]): row["complaints"] for row in rows} == dict(expected["per_month"])
    assert len(rows) == len(expected["per_month"])
    assert [month_of(row["month"]) for row in rows] == sorted(expected["per_month"])  # sort asc
    # The CFPB export carries no 0-10 score: both figures are undefined, not zero.
    assert all(row["avg_satisfaction"] is None and row["nps"] is None for row in rows)

    by_product = engine.run_report("complaint_handling_by_product")
    assert [c["name"] for c in by_product["columns"]] == [
        "product", "complaints", "avg_handling_days", "timely_rate"]
    got = {row["product"]: row for row in table(by_product)}
    assert set(got) == set(expected["per_product"])
    for product, figures in expected["per_product"].items():
        row = got[product]
        assert row["complaints"] == figures["count"], product
        assert close(row["avg_handling_days"], Fraction(figures["days"], figures["count"])), (
            product, row["avg_handling_days"], figures)
        assert close(row["timely_rate"], Fraction(figures["timely"], figures["count"])), (
            product, row["timely_rate"], figures)
    counts = [row["complaints"] for row in table(by_product)]
    assert counts == sorted(counts, reverse=True)  # sort: complaints desc


def test_cfpb_2019_complaints_feed_the_complaint_reports(engine: Any) -> None:
    csv_path = data_file(*CFPB_2019)
    rows = read_csv(csv_path)
    expected = expected_complaint_figures(rows, "%Y-%m-%d")
    assert len(rows) == 6623
    engine.load_dir(BANK)

    report = engine.run_import("complaint", csv_path, MAPPINGS / "cfpb_complaints.json")

    assert report.total == len(rows)
    assert_no_rejections(report, expected["invalid"])
    assert report.imported == len(rows) - expected["invalid"]
    check_complaint_reports(engine, expected)
    # Spot-check one record field by field (values read from the CSV, converted by hand).
    first = rows[0]
    record = engine.record(engine.find_record_id("complaint", "external_id", first["Complaint ID"]))
    data = record["data"]
    assert data["received_on"] == first["Date received"]
    assert data["handled_on"] == first["Date sent to company"]
    assert data["timely"] is (first["Timely response?"] == "Yes")
    assert data["product"] == first["Product"]
    assert "customer_id" not in data and "satisfaction" not in data


def test_cfpb_2016_export_with_us_dates_imports_and_reports(engine: Any) -> None:
    csv_path = data_file(*CFPB_2016)
    rows = read_csv(csv_path)
    expected = expected_complaint_figures(rows, "%m/%d/%Y")
    assert len(rows) == 349
    assert dict(expected["per_month"]) == {"2016-09": 349}
    engine.load_dir(BANK)

    report = engine.run_import("complaint", csv_path, MAPPINGS / "cfpb_complaints_2016.json")

    assert report.total == 349
    assert_no_rejections(report, expected["invalid"])
    check_complaint_reports(engine, expected)


def test_2019_mapping_rejects_every_row_of_the_2016_export_as_a_bad_date(engine: Any) -> None:
    csv_path = data_file(*CFPB_2016)
    engine.load_dir(BANK)

    report = engine.run_import("complaint", csv_path, MAPPINGS / "cfpb_complaints.json")

    assert (report.total, report.imported, len(report.rejected)) == (349, 0, 349)
    assert {tuple((i.path, i.code) for i in row.issues) for row in report.rejected} == {
        (("/received_on", "import.bad_value"), ("/handled_on", "import.bad_value"))}


# -- commercial customers and credit applications ------------------------------------------------

def test_sba_loans_become_customers_and_credit_applications(engine: Any) -> None:
    csv_path = data_file(*SBA)
    rows = read_csv(csv_path)
    assert len(rows) == 2101
    expected = Counter((row["State"], row["NAICS"]) for row in rows)
    engine.load_dir(BANK)

    customers = engine.run_import("customer", csv_path, MAPPINGS / "sba_customers.json")

    assert customers.total == 2101
    assert_no_rejections(customers, 0)
    result = engine.run_report("customers_by_region_industry")
    assert [c["name"] for c in result["columns"]] == ["region", "industry_code", "customers"]
    got = {(row["region"], row["industry_code"]): row["customers"] for row in table(result)}
    assert got == dict(expected)
    assert sum(got.values()) == 2101

    applications = engine.run_import(
        "credit_limit_adjustment", csv_path, MAPPINGS / "sba_credit_applications.json")

    assert applications.total == 2101
    assert_no_rejections(applications, 0)
    again = engine.run_import("credit_limit_adjustment", csv_path, MAPPINGS / "sba_credit_applications.json")
    assert (again.imported, again.already_present, len(again.rejected)) == (0, 2101, 0)  # a re-run adds nothing
    first = rows[0]  # 1004285007, SIMPLEX OFFICE SOLUTIONS, GrAppv 30000, ApprovalDate 15074
    customer_id = engine.find_record_id("customer", "external_id", first["LoanNr_ChkDgt"])
    assert engine.record(customer_id)["data"]["registered_on"] == "2001-04-09"
    application = engine.record(engine.find_record_id(
        "credit_limit_adjustment", "external_id", first["LoanNr_ChkDgt"]))
    assert application["data"]["customer_id"] == customer_id
    assert application["data"]["requested_limit"] == Decimal(first["GrAppv"]) == Decimal(30000)
    assert application["data"]["current_limit"] == 0
    assert application["data"].get("increase_pct") is None  # a new limit has no increase
    # ... so it is never approved by rule: it waits for the account manager.
    assert [(i["state"], i["status"]) for i in application["instances"]] == [
        ("manager_review", "active")]


def test_applications_without_their_customer_are_rejected_as_ref_not_found(engine: Any) -> None:
    csv_path = data_file(*SBA)
    engine.load_dir(BANK)

    report = engine.run_import(
        "credit_limit_adjustment", csv_path, MAPPINGS / "sba_credit_applications.json")

    assert (report.total, report.imported, len(report.rejected)) == (2101, 0, 2101)
    assert all([(i.path, i.code) for i in row.issues] == [("/customer_id", "import.ref_not_found")]
               for row in report.rejected)

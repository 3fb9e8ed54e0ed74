"""The bank's dashboards on real public data: import the CFPB complaint sample and the SBA loans
with the mappings in examples/bank/imports, run the dashboards (with their shared parameters)
and check every figure against figures computed here, independently, with the csv module."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from realdata_support import MAPPINGS, data_file, read_csv, table
TOLERANCE = Fraction(1, 10**9)

CHANNELS = {"Web": "web", "Phone": "phone", "Email": "email", "Fax": "fax",
            "Postal mail": "postal_mail", "Referral": "referral"}  # the import's map; else other


def close(actual: Any, expected: Fraction | None) -> bool:
    if expected is None:
        return actual is None
    assert actual is not None and not isinstance(actual, bool), actual
    number = Fraction(Decimal(repr(actual))) if isinstance(actual, float) else Fraction(actual)
    return abs(number - expected) <= TOLERANCE * max(1, abs(expected))


def percentile(values: list[int], p: Fraction) -> Fraction:
    """Linear interpolation between closest ranks (numpy's default, Excel PERCENTILE.INC)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p
    low = int(rank)  # floor: rank >= 0
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


def complaint_rows(period: tuple[date, date] | None) -> list[dict[str, Any]]:
    """The CFPB rows the complaint form accepts, as the figures need them."""
    rows = []
    for row in read_csv(data_file("cfpb-complaints", "complaints_sample_2019.csv")):
        received = datetime.strptime(row["Date received"], "%Y-%m-%d").date()
        sent = datetime.strptime(row["Date sent to company"], "%Y-%m-%d").date()
        required = (row["Date received"], row["Product"], row["Issue"], row["Submitted via"])
        if not all(cell.strip() for cell in required) or sent < received:
            continue  # refused by the form (the import test checks how many)
        if period is not None and not period[0] <= received <= period[1]:
            continue
        rows.append({
            "month": f"{received:%Y-%m}-01", "product": row["Product"].strip(),
            "company": row["Company"].strip() or None,
            "channel": CHANNELS.get(row["Submitted via"].strip(), "other"),
            "timely": row["Timely response?"].strip() == "Yes",
            "days": (sent - received).days,
        })
    return rows


def group(rows: list[dict[str, Any]], key: str) -> dict[Any, list[dict[str, Any]]]:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    return groups


@pytest.fixture
def cfpb(bank: Any) -> Any:
    csv_path = data_file("cfpb-complaints", "complaints_sample_2019.csv")
    report = bank.run_import("complaint", csv_path, MAPPINGS / "cfpb_complaints.json")
    assert report.imported == len(complaint_rows(None))
    return bank


@pytest.mark.parametrize("period", [None, "2019-01-01..2019-12-31", "2019-03-01..2019-03-31"])
def test_complaints_dashboard_matches_the_csv(cfpb: Any, period: str | None) -> None:
    bounds = None
    params = {}
    if period is not None:
        low, high = period.split("..")
        bounds = (date.fromisoformat(low), date.fromisoformat(high))
        params = {"period": period}
    rows = complaint_rows(bounds)
    assert rows

    dashboard = cfpb.run_dashboard("complaints", params)

    assert [item["report"] for item in dashboard["reports"]] == [
        "complaints_by_month", "complaint_handling_by_product", "complaints_timely_by_company",
        "complaints_timely_by_channel"]
    assert dashboard["parameters"] == params
    results = {item["report"]: item["result"] for item in dashboard["reports"]}
    for result in results.values():
        assert result["meta"]["parameters"]["period"] == (period.split("..") if period else None)

    by_month = {row["month"]: row["complaints"] for row in table(results["complaints_by_month"])}
    assert by_month == {month: len(items) for month, items in group(rows, "month").items()}

    products = {row["product"]: row for row in table(results["complaint_handling_by_product"])}
    assert set(products) == set(group(rows, "product"))
    for product, items in group(rows, "product").items():
        got = products[product]
        assert got["complaints"] == len(items)
        assert close(got["timely_rate"], Fraction(sum(i["timely"] for i in items), len(items)))
        assert close(got["avg_handling_days"], Fraction(sum(i["days"] for i in items), len(items)))

    companies = table(results["complaints_timely_by_company"])
    assert {row["company"] for row in companies} == set(group(rows, "company"))
    for got in companies:
        items = group(rows, "company")[got["company"]]
        timely = sum(i["timely"] for i in items)
        late = len(items) - timely
        assert (got["complaints"], got["timely"], got["late"]) == (len(items), timely, late)
        assert close(got["timely_rate"], Fraction(timely, len(items)))
        assert close(got["late_per_timely"], Fraction(late, timely) if timely else None)
    counts = [(-row["complaints"], row["company"] or "") for row in companies]
    assert counts == sorted(counts)  # complaints desc, then company

    channels = {row["channel"]: row for row in table(results["complaints_timely_by_channel"])}
    labels = {"web": "Web", "phone": "Phone", "email": "Email", "fax": "Fax",
              "postal_mail": "Postal mail", "referral": "Referral", "other": "Other"}
    assert set(channels) == {labels[channel] for channel in group(rows, "channel")}
    for channel, items in group(rows, "channel").items():
        got = channels[labels[channel]]
        days = [i["days"] for i in items]
        assert got["complaints"] == len(items)
        assert close(got["timely_rate"], Fraction(sum(i["timely"] for i in items), len(items)))
        assert close(got["avg_handling_days"], Fraction(sum(days), len(days)))
        assert close(got["median_handling_days"], percentile(days, Fraction(1, 2)))
        assert close(got["p90_handling_days"], percentile(days, Fraction(9, 10)))


def test_complaints_dashboard_speaks_chinese_labels(cfpb: Any) -> None:
    result = cfpb.run_dashboard("complaints", {"period": "2019-01-01..2019-12-31"}, language="zh-CN")
    channels = [row[0] for row in result["reports"][3]["result"]["rows"]]
    assert "网站" in channels and "Web" not in channels


def test_satisfaction_trend_compares_each_month_with_the_previous(cfpb: Any) -> None:
    rows = complaint_rows((date(2019, 1, 1), date(2019, 12, 31)))

    dashboard = cfpb.run_dashboard("satisfaction", {"period": "2019-01-01..2019-12-31"})
    result = dashboard["reports"][0]["result"]

    got = table(result)
    assert [row["month"] for row in got] == sorted(group(rows, "month"))
    # The CFPB export has no 0-10 score: no responses, so averages, NPS and changes are NULL.
    assert all(row["responses"] == 0 for row in got)
    assert all(row[name] is None for row in got for name in (
        "avg_satisfaction", "nps", "avg_satisfaction_previous", "avg_satisfaction_change",
        "nps_previous", "nps_change"))
    web = cfpb.run_dashboard("satisfaction", {"period": "2019-01-01..2019-12-31", "channel": "web"})
    web_rows = [r for r in rows if r["channel"] == "web"]
    assert [row[0] for row in web["reports"][0]["result"]["rows"]] == sorted(group(web_rows, "month"))


def test_an_unknown_or_ill_typed_dashboard_parameter_is_refused(cfpb: Any) -> None:
    from engine.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as raised:
        cfpb.run_dashboard("complaints", {"branch": "x"})
    assert [(i.path, i.code) for i in raised.value.issues] == [("branch", "report.unknown_parameter")]
    with pytest.raises(ValidationFailed) as raised:
        cfpb.run_dashboard("complaints", {"period": "2019-13-01..2019-12-31"})
    assert [(i.path, i.code) for i in raised.value.issues] == [("period", "report.parameter_type")]


# -- customer value pyramid (SBA 7(a) loans) --------------------------------------------------------

TIERS = [("Mass", 150000), ("Key", 1000000), ("Strategic", None)]


def test_customer_value_pyramid_matches_the_csv(bank: Any) -> None:
    csv_path = data_file("sba-loans", "SBAcase.11.13.17.csv")
    rows = read_csv(csv_path)
    bank.run_import("customer", csv_path, MAPPINGS / "sba_customers.json")
    bank.run_import("credit_limit_adjustment", csv_path, MAPPINGS / "sba_credit_applications.json")

    def tier(amount: Fraction) -> str:
        return next(name for name, below in TIERS if below is None or amount < below)

    for region in (None, "CA"):
        expected: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"loans": set(), "amounts": [], "regions": set()})
        for row in rows:
            if region is not None and row["State"] != region:
                continue
            amount = Fraction(Decimal(row["GrAppv"]))
            figures = expected[tier(amount)]
            figures["loans"].add(row["LoanNr_ChkDgt"])
            figures["amounts"].append(amount)
            figures["regions"].add(row["State"])

        dashboard = bank.run_dashboard("customer_value", {"region": region} if region else {})
        pyramid = table(dashboard["reports"][0]["result"])

        # Sorted by tier descending: the top of the pyramid first.
        assert [row["tier"] for row in pyramid] == [
            name for name, _ in reversed(TIERS) if name in expected]
        for got in pyramid:
            figures = expected[got["tier"]]
            amounts = figures["amounts"]
            assert got["customers"] == len(figures["loans"])  # one customer per loan row
            assert got["applications"] == len(amounts)
            assert close(got["total_requested"], sum(amounts, Fraction(0)))
            assert close(got["median_requested"], percentile(amounts, Fraction(1, 2)))
            assert got["regions"] == len(figures["regions"])  # joined through customer_id
        # The second report takes no shared parameter: always every customer.
        assert sum(row[2] for row in dashboard["reports"][1]["result"]["rows"]) == len(rows)

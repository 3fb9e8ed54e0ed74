from __future__ import annotations

from pathlib import Path

import pytest

from engine import Engine, ValidationFailed


def test_columns_named_like_fields_fill_them_and_bad_rows_are_reported(bank: Engine, tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text("company_name,region,employees,uscc,ignored\n"
                      "Acme Ltd,Fujian,12,91350100M000100Y43,x\n"
                      "Bad Co,Fujian,many,,x\n"
                      ",Fujian,3,,x\n", encoding="utf-8")
    report = bank.run_import("customer", source)
    assert (report.total, report.imported) == (3, 1)
    assert [(row.row_number, [(i.path, i.code) for i in row.issues]) for row in report.rejected] == [
        (2, [("/employees", "import.bad_value")]),
        (3, [("/company_name", "record.required")]),
    ]
    stored = bank.records("customer")["items"]
    assert [item["data"] for item in stored] == [
        {"company_name": "Acme Ltd", "region": "Fujian", "employees": 12, "uscc": "91350100M000100Y43"}]


def test_a_file_with_no_matching_column_needs_a_mapping(bank: Engine, tmp_path: Path) -> None:
    source = tmp_path / "other.csv"
    source.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ValidationFailed) as caught:
        bank.run_import("customer", source)
    assert caught.value.issues[0].code == "import.bad_mapping"


def test_a_mapping_for_another_form_is_refused(bank: Engine, tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("Name\nAcme\n", encoding="utf-8")
    with pytest.raises(ValidationFailed) as caught:
        bank.run_import("complaint", source, Path("examples/bank/imports/sba_customers.json"))
    assert caught.value.issues[0].code == "import.bad_mapping"


def test_rerunning_a_keyed_import_adds_nothing_and_ambiguous_lookups_are_refused(bank: Engine, tmp_path: Path) -> None:
    import json

    customers = tmp_path / "customers.csv"
    customers.write_text("id,name\nC1,Acme\nC2,Beta\n", encoding="utf-8")
    mapping = tmp_path / "customers.json"
    mapping.write_text(json.dumps({"form": "customer", "key": "external_id", "source": {"format": "csv"},
                                   "fields": {"external_id": {"column": "id"}, "company_name": {"column": "name"}}}))
    first = bank.run_import("customer", customers, mapping)
    again = bank.run_import("customer", customers, mapping)
    assert (first.imported, again.imported, again.already_present) == (2, 0, 2)
    assert bank.records("customer")["total"] == 2

    bank.submit("customer", {"company_name": "Acme twin", "external_id": "C1"})  # now C1 is ambiguous
    applications = tmp_path / "applications.csv"
    applications.write_text("customer,requested\nC1,200\nC2,300\n", encoding="utf-8")
    app_mapping = tmp_path / "applications.json"
    app_mapping.write_text(json.dumps({"form": "credit_limit_adjustment", "source": {"format": "csv"}, "fields": {
        "customer_id": {"lookup": {"form": "customer", "field": "external_id", "column": "customer"}},
        "current_limit": {"value": 100}, "requested_limit": {"column": "requested", "type": "decimal"},
        "reason": {"value": "Working capital"}}}))
    report = bank.run_import("credit_limit_adjustment", applications, app_mapping)
    assert report.imported == 1
    assert [(row.row_number, [i.code for i in row.issues]) for row in report.rejected] == [(1, ["import.ref_ambiguous"])]

"""Bulk import through the engine: JSON Lines, the rejects file, all or nothing, keyed re-imports,
and the `lowcode import` command. SQLite and PostgreSQL."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from engine import Engine
from engine.jsoncodec import loads

CUSTOMER_MAPPING = {
    "form": "customer", "key": "external_id", "source": {"format": "jsonl"},
    "fields": {"external_id": {"column": "id"}, "company_name": {"column": "name"},
               "employees": {"column": "staff", "type": "integer"}, "postal_code": {"column": "zip"},
               "risk_level": {"column": "risk", "map": {"1": "low", "2": "medium", "3": "high"}}},
}
APPLICATION_MAPPING = {
    "form": "credit_limit_adjustment", "key": "external_id", "source": {"format": "jsonl"},
    "fields": {"external_id": {"column": "id"},
               "customer_id": {"lookup": {"form": "customer", "field": "external_id", "column": "customer"}},
               "current_limit": {"column": "current", "type": "decimal"},
               "requested_limit": {"column": "requested", "type": "decimal"},
               "risk_rating": {"column": "rating"}, "reason": {"column": "reason"}},
}


def write(folder: Path, name: str, content: Any) -> Path:
    path = folder / name
    if isinstance(content, list):
        content = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in content)
    elif not isinstance(content, str):
        content = json.dumps(content)
    path.write_text(content, encoding="utf-8")
    return path


def count(engine: Engine, table: str, where: str = "") -> int:
    with engine.db.engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table} {where}")).scalar_one())


def customers(rows: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"C{n}", "name": f"Company {n}", "staff": n % 40, "zip": f"{350000 + n}", "risk": n % 3 + 1}
            for n in range(start, start + rows)]


# -- JSON Lines ---------------------------------------------------------------------------------


def test_json_lines_rows_are_exact_and_bad_lines_are_rejected_by_line_number(bank: Engine, tmp_path: Path) -> None:
    mapping = write(tmp_path, "customers.json", CUSTOMER_MAPPING)
    source = write(tmp_path, "customers.jsonl", [
        "\ufeff" + json.dumps({"id": "C1", "name": "  Acme  ", "staff": 12, "zip": 350001, "risk": 1}),
        {"id": "C2", "name": "Beta", "staff": "1,200", "risk": "2"},  # a number as text, a map key as text
        "",                                                          # blank line: skipped, still counted
        '{"id": "C3", "name": "Gamma", "staff": 1.5}',               # not an integer
        '{"id": "C4", "name": "Delta", "staff": NaN}',                # NaN is refused like in a request
        '{"id": "C5", "name": "Eps", "staff": 123456789012345678901234567890123456789012}',  # too many digits
        "[1, 2, 3]",                                                  # not an object
        '{"id": "C6", "name": ',                                      # not JSON
        {"id": "C7", "name": None, "staff": None},                    # null is an empty cell: name missing
        {"id": "C8", "name": "Eta", "extra": {"nested": True}},       # unmapped keys are ignored
        {"id": "C9", "name": {"an": "object"}},                       # objects need type json
    ])
    report = bank.run_import("customer", source, mapping)
    assert (report.total, report.imported, report.rejected_count) == (10, 3, 7)
    assert [(row.row_number, [(i.path, i.code) for i in row.issues]) for row in report.rejected] == [
        (4, [("/employees", "import.bad_value")]),
        (5, [("", "request.non_finite_number")]),
        (6, [("", "request.number_out_of_range")]),
        (7, [("", "import.bad_row")]),
        (8, [("", "request.invalid_json")]),
        (9, [("/company_name", "record.required")]),
        (11, [("/company_name", "import.bad_value")]),
    ]
    stored = {item["data"]["external_id"]: item["data"] for item in bank.records("customer")["items"]}
    assert stored["C1"] == {"external_id": "C1", "company_name": "Acme", "employees": 12, "postal_code": "350001",
                            "risk_level": "low"}
    assert stored["C2"]["employees"] == 1200 and stored["C2"]["risk_level"] == "medium"
    assert set(stored) == {"C1", "C2", "C8"}


def test_json_lines_money_keeps_every_digit(bank: Engine, tmp_path: Path) -> None:
    bank.run_import("customer", write(tmp_path, "c.jsonl", [{"id": "C1", "name": "Acme"}]),
                    write(tmp_path, "c.json", CUSTOMER_MAPPING))
    source = write(tmp_path, "a.jsonl", [
        '{"id": "A1", "customer": "C1", "current": 98765432109876.54, "requested": 98765432109877.54, "rating": "low"}',
        '{"id": "A2", "customer": "C1", "current": 100, "requested": 130.10, "rating": "high", "reason": "Growth"}',
    ])
    report = bank.run_import("credit_limit_adjustment", source, write(tmp_path, "a.json", APPLICATION_MAPPING))
    assert (report.imported, report.rejected_count) == (2, 0)
    items = {item["data"]["external_id"]: item for item in bank.records("credit_limit_adjustment")["items"]}
    assert items["A1"]["data"]["current_limit"] == Decimal("98765432109876.54")
    assert str(items["A1"]["data"]["requested_limit"]) == "98765432109877.54"
    assert str(items["A2"]["data"]["increase_pct"]) == "30.10"
    stored = bank.record(items["A2"]["id"])
    assert stored["instances"][0]["state"] == "manager_review"


def test_json_lines_without_a_mapping_fill_fields_named_like_keys(bank: Engine, tmp_path: Path) -> None:
    source = write(tmp_path, "customers.jsonl", [
        {"company_name": "Acme", "employees": 3, "registered_on": "2020-01-31", "ignored": 1},
        {"company_name": "Beta", "employees": "x"},
    ])
    report = bank.run_import("customer", source)
    assert (report.imported, [(r.row_number, r.issues[0].code) for r in report.rejected]) == (
        1, [(2, "import.bad_value")])
    [item] = bank.records("customer")["items"]
    assert item["data"] == {"company_name": "Acme", "employees": 3, "registered_on": "2020-01-31"}


# -- the rejects file ---------------------------------------------------------------------------


def test_rejects_file_has_every_rejected_row_with_its_raw_cells_and_issues(bank: Engine, tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text("company_name,employees,uscc,extra\n"
                      "Acme,12,91350100M000100Y43,x\n"
                      "Beta,many,,x\n"
                      ",3,BAD,x\n"
                      "Gamma,4,,x,surplus\n", encoding="utf-8")
    rejects = tmp_path / "out" / "rejects.jsonl"
    rejects.parent.mkdir()
    report = bank.run_import("customer", source, rejects=rejects, batch_size=2)
    assert (report.imported, report.rejected_count) == (1, 3)
    lines = [loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"row": 2, "raw": {"company_name": "Beta", "employees": "many", "uscc": "", "extra": "x"},
         "issues": [{"path": "/employees", "code": "import.bad_value",
                     "message": "column 'employees' is not a valid integer",
                     "params": {"column": "employees", "expected": "integer"}}]},
        {"row": 3, "raw": {"company_name": "", "employees": "3", "uscc": "BAD", "extra": "x"},
         "issues": [{"path": "/uscc", "code": "record.pattern", "message": "Does not match the required format"},
                    {"path": "/company_name", "code": "record.required", "message": "This field is required"}]},
        {"row": 4, "raw": {"company_name": "Gamma", "employees": "4", "uscc": "", "extra": "x"},
         "extra_cells": ["surplus"],
         "issues": [{"path": "", "code": "import.bad_row", "message": "the record has 1 more cell(s) than the header",
                     "params": {"surplus": 1}}]},
    ]


def test_rejects_of_a_json_lines_file_keep_the_line(bank: Engine, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    source = write(tmp_path, "c.jsonl", ['{"id": "C1", "name": "Acme", "staff": 1.25}', "{oops", {"id": "C2"}])
    bank.run_import("customer", source, write(tmp_path, "c.json", CUSTOMER_MAPPING), rejects=rejects)
    lines = [loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert [(line["row"], line["raw"]) for line in lines] == [
        (1, {"id": "C1", "name": "Acme", "staff": Decimal("1.25")}), (2, "{oops"), (3, {"id": "C2"})]


def test_an_import_without_rejects_leaves_an_empty_rejects_file(bank: Engine, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    rejects.write_text("stale\n", encoding="utf-8")
    bank.run_import("customer", write(tmp_path, "c.jsonl", customers(3)), write(tmp_path, "c.json", CUSTOMER_MAPPING),
                    rejects=rejects)
    assert rejects.read_text(encoding="utf-8") == ""


# -- all or nothing -----------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1000, 4])
def test_all_or_nothing_stores_nothing_when_one_row_is_bad(bank: Engine, tmp_path: Path, batch_size: int) -> None:
    rows: list[Any] = customers(10)
    rows.insert(8, {"id": "BAD", "name": "Bad", "staff": -1})
    rows.append({"id": "BAD2"})
    rejects = tmp_path / "rejects.jsonl"
    before = {table: count(bank, table) for table in ("records", "record_values", "changes", "audit_log", "outbox")}
    report = bank.run_import("customer", write(tmp_path, "c.jsonl", rows), write(tmp_path, "c.json", CUSTOMER_MAPPING),
                             all_or_nothing=True, batch_size=batch_size, rejects=rejects)
    assert not report.committed
    assert (report.total, report.imported, report.withheld, report.rejected_count) == (12, 0, 10, 2)
    assert [row.row_number for row in report.rejected] == [9, 12]  # every reject is reported
    assert len(rejects.read_text(encoding="utf-8").splitlines()) == 2
    assert {table: count(bank, table) for table in before} == before
    assert bank.records("customer")["total"] == 0


@pytest.mark.parametrize("batch_size", [1000, 4])
def test_all_or_nothing_stores_every_row_when_none_is_bad(bank: Engine, tmp_path: Path, batch_size: int) -> None:
    mapping = write(tmp_path, "c.json", CUSTOMER_MAPPING)
    report = bank.run_import("customer", write(tmp_path, "c.jsonl", customers(10)), mapping, all_or_nothing=True,
                             batch_size=batch_size)
    assert report.committed
    assert (report.total, report.imported, report.withheld, report.rejected_count) == (10, 10, 0, 0)
    assert bank.records("customer")["total"] == 10
    assert count(bank, "changes", "WHERE entity = 'record'") == 10
    # the change sequence reached the report mirror, in the rows' order
    result = bank.run_report("customers_by_region_industry")
    assert sum(row[-1] for row in result["rows"]) == 10
    with bank.db.engine.connect() as connection:
        written = [row[0] for row in connection.execute(text("SELECT entity_id FROM changes ORDER BY seq"))]
    by_id = {item["id"]: item["data"]["external_id"] for item in bank.records("customer")["items"]}
    assert [by_id[record_id] for record_id in written] == [f"C{n}" for n in range(10)]


def test_all_or_nothing_with_processes_and_lookups(bank: Engine, tmp_path: Path) -> None:
    bank.run_import("customer", write(tmp_path, "c.jsonl", customers(2)), write(tmp_path, "c.json", CUSTOMER_MAPPING))
    mapping = write(tmp_path, "a.json", APPLICATION_MAPPING)
    good = [{"id": "A1", "customer": "C0", "current": 100, "requested": 105, "rating": "low"},
            {"id": "A2", "customer": "C1", "current": 0, "requested": 500, "reason": "New"}]
    failed = bank.run_import("credit_limit_adjustment", write(tmp_path, "bad.jsonl", [*good, {"id": "A3", "customer": "C9",
                                                                                             "current": 1, "requested": 2}]),
                             mapping, all_or_nothing=True, batch_size=1)
    assert (failed.imported, failed.withheld, failed.rejected_count) == (0, 2, 1)
    assert count(bank, "process_instances") == 0 and count(bank, "tasks") == 0
    report = bank.run_import("credit_limit_adjustment", write(tmp_path, "good.jsonl", good), mapping,
                             all_or_nothing=True, batch_size=1)
    assert (report.imported, report.rejected_count) == (2, 0)
    states = sorted(instance["state"] for item in bank.records("credit_limit_adjustment")["items"]
                    for instance in bank.record(item["id"])["instances"])
    assert states == ["approved", "manager_review"]
    assert count(bank, "tasks", "WHERE status = 'open'") == 1


# -- keyed re-imports ---------------------------------------------------------------------------


@pytest.mark.parametrize("all_or_nothing", [False, True])
def test_a_keyed_re_import_skips_rows_already_present(bank: Engine, tmp_path: Path, all_or_nothing: bool) -> None:
    mapping = write(tmp_path, "c.json", CUSTOMER_MAPPING)
    first = bank.run_import("customer", write(tmp_path, "first.jsonl", customers(5)), mapping, batch_size=2)
    again = bank.run_import("customer", write(tmp_path, "again.jsonl", customers(8)), mapping, batch_size=3,
                            all_or_nothing=all_or_nothing)
    assert (first.imported, again.imported, again.already_present, again.rejected_count) == (5, 3, 5, 0)
    assert bank.records("customer")["total"] == 8
    third = bank.run_import("customer", write(tmp_path, "again.jsonl", customers(8)), mapping,
                            all_or_nothing=all_or_nothing)
    assert (third.imported, third.already_present) == (0, 8)
    assert bank.records("customer")["total"] == 8


# -- the command --------------------------------------------------------------------------------


def test_the_import_command_writes_rejects_and_exits_3(bank: Engine, database_url: str, tmp_path: Path) -> None:
    from engine.cli import app

    rows: list[Any] = customers(4)
    rows.append({"id": "BAD", "name": "", "staff": 1})
    source = write(tmp_path, "c.jsonl", rows)
    mapping = write(tmp_path, "c.json", CUSTOMER_MAPPING)
    rejects = tmp_path / "rejects.jsonl"
    runner = CliRunner()
    result = runner.invoke(app, ["import", "customer", str(source), "--mapping", str(mapping), "--rejects", str(rejects),
                                 "--all-or-nothing", "--database-url", database_url])
    assert result.exit_code == 3, result.output
    assert "none of the 4 valid row(s) was stored" in result.output
    assert bank.records("customer")["total"] == 0
    assert loads(rejects.read_text(encoding="utf-8"))["row"] == 5

    result = runner.invoke(app, ["import", "customer", str(source), "--mapping", str(mapping), "--batch-size", "2",
                                 "--database-url", database_url])
    assert result.exit_code == 3, result.output
    assert "imported: 4" in result.output and "rejected: 1" in result.output
    assert bank.records("customer")["total"] == 4


# -- a batch the database refuses -----------------------------------------------------------------


@pytest.mark.parametrize(("all_or_nothing", "batch_size"), [(False, 1000), (True, 1000), (False, 2), (True, 2)])
def test_a_row_the_database_refuses_is_rejected_alone(bank: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      all_or_nothing: bool, batch_size: int) -> None:
    """The third row's outbox message collides with an existing one: the batch fails as a whole,
    its rows are retried one by one, and only that row (and the rows that refer to it) is lost.
    With batches of 2, the row referring to it comes in the next batch, checked while the failing
    one was written in the background: that batch is checked again."""
    from engine.forms import bulk

    ids = iter(f"00000000-0000-7000-8000-{n:012d}" for n in range(1, 100))
    monkeypatch.setattr(bulk._Uuid7s, "next", lambda self: next(ids))
    with bank.db.engine.begin() as connection:
        connection.execute(text("INSERT INTO outbox (topic, dedup_key, payload, status, attempts, created_at) "
                                "VALUES ('x', 'record.created:00000000-0000-7000-8000-000000000003', '{}', 'done', 0, "
                                "CURRENT_TIMESTAMP)"))
    units = {"kind": "form", "key": "unit", "title": "Unit", "refs": {"parent_id": {"form": "unit"}},
             "schema": {"type": "object", "properties": {"code": {"type": "string"}, "parent_id": {"type": "string"}}}}
    bank.upload(units)
    mapping = write(tmp_path, "u.json", {
        "form": "unit", "key": "code", "source": {"format": "jsonl"},
        "fields": {"code": {"column": "code"},
                   "parent_id": {"lookup": {"form": "unit", "field": "code", "column": "parent"}}}})
    source = write(tmp_path, "u.jsonl", [{"code": "A"}, {"code": "B", "parent": "A"}, {"code": "C", "parent": "A"},
                                         {"code": "X"}, {"code": "D", "parent": "C"}, {"code": "E", "parent": "B"}])
    report = bank.run_import("unit", source, mapping, all_or_nothing=all_or_nothing, batch_size=batch_size)
    # In the same batch as C, D found C and is refused when C turns out unwritable; in a later
    # batch, D's lookup finds no C at all.
    late = "import.ref_not_found" if batch_size == 2 else "record.ref_not_found"
    assert [(row.row_number, [i.code for i in row.issues]) for row in report.rejected] == [
        (3, ["import.error"]), (5, [late])]
    stored = sorted(item["data"]["code"] for item in bank.records("unit")["items"])
    if all_or_nothing:
        assert (report.imported, report.withheld, stored) == (0, 4, [])
        assert count(bank, "changes") == 0
    else:
        assert (report.imported, stored) == (4, ["A", "B", "E", "X"])
        assert count(bank, "changes") == 4

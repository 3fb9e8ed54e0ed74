"""run_import against an in-memory target: values, rejections with codes and paths, lookups."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.imports import (
    ImportIssue,
    ImportProgress,
    ImportReport,
    ImportTarget,
    MappingError,
    RejectedRow,
    compile_mapping,
    load_mapping,
    run_import,
)

REPO = Path(__file__).resolve().parents[3]
BANK_IMPORTS = REPO / "examples" / "bank" / "imports"


@dataclass(frozen=True)
class FakeIssue:
    path: str
    code: str
    message: str


class FakeValidationFailed(Exception):
    def __init__(self, issues: list[FakeIssue]) -> None:
        super().__init__("invalid")
        self.issues = issues


class MemoryTarget:
    """Stores records per form; `required` fields are checked like a form would."""

    def __init__(self, required: dict[str, list[str]] | None = None) -> None:
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.required = required or {}
        self.lookups: list[tuple[str, str, Any]] = []
        self._ids = itertools.count(1)

    def submit(self, form_key: str, data: dict[str, Any]) -> dict[str, Any]:
        missing = [name for name in self.required.get(form_key, []) if name not in data]
        if missing:
            raise FakeValidationFailed(
                [FakeIssue(f"/{name}", "record.required", f"{name} is required") for name in missing])
        record = {"id": f"{form_key}-{next(self._ids)}", **data}
        self.records.setdefault(form_key, []).append(record)
        return record

    def find_record_id(self, form_key: str, field: str, value: Any) -> str | None:
        self.lookups.append((form_key, field, value))
        for record in self.records.get(form_key, []):
            if record.get(field) == value:
                return str(record["id"])
        return None


def write_csv(tmp_path: Path, text: str, name: str = "rows.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def mapping_of(fields: dict[str, Any], form: str = "things", **extra: Any) -> Any:
    return compile_mapping({"form": form, "source": {"format": "csv"}, "fields": fields, **extra})


def test_memory_target_satisfies_the_protocol() -> None:
    target: ImportTarget = MemoryTarget()
    assert target.find_record_id("x", "y", 1) is None


def test_rows_become_records_with_converted_values(tmp_path: Path) -> None:
    path = write_csv(tmp_path, (
        "Name,Employees,Amount,Since,Active,Channel\n"
        'Acme,"1,200","$1,234,567.89",15074,Yes,Web\n'
        "Bolt,3,0.10,0,No,Carrier pigeon\n"
    ))
    mapping = mapping_of({
        "name": {"column": "Name"},
        "employees": {"column": "Employees", "type": "integer"},
        "amount": {"column": "Amount", "type": "decimal"},
        "since": {"column": "Since", "type": "date", "date_format": "sas"},
        "active": {"column": "Active", "type": "boolean", "true": ["Yes"], "false": ["No"]},
        "channel": {"column": "Channel", "map": {"Web": "web", "Phone": "phone"}, "default": "other"},
        "source": {"value": "import"},
    })
    target = MemoryTarget()
    report = run_import(target, mapping, path)
    assert report == ImportReport(form="things", total=2, imported=2, rejected=[], skipped=0)
    first, second = target.records["things"]
    assert first == {"id": "things-1", "name": "Acme", "employees": 1200,
                     "amount": Decimal("1234567.89"), "since": "2001-04-09", "active": True,
                     "channel": "web", "source": "import"}
    assert str(first["amount"]) == "1234567.89"
    assert second["amount"] == Decimal("0.10") and str(second["amount"]) == "0.10"
    assert second["since"] == "1960-01-01"
    assert second["active"] is False
    assert second["channel"] == "other"


def test_empty_and_null_cells_leave_the_field_out(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "A,B,C,D\n  ,N/A,0,\n")
    mapping = mapping_of({
        "a": {"column": "A", "type": "integer"},
        "b": {"column": "B", "type": "boolean", "null_values": ["n/a"]},
        "c": {"column": "C", "map": {"1": "existing", "2": "new"}, "null_values": ["0"]},
        "d": {"column": "D", "default": "unknown"},
    }, skip_empty=False)
    target = MemoryTarget()
    report = run_import(target, mapping, path)
    assert report.imported == 1
    assert target.records["things"] == [{"id": "things-1", "d": "unknown"}]


def test_global_null_values_apply_to_every_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "A,B\nNULL,x\n")
    mapping = mapping_of({"a": {"column": "A", "type": "decimal"}, "b": {"column": "B"}},
                         null_values=["null"])
    target = MemoryTarget()
    run_import(target, mapping, path)
    assert target.records["things"] == [{"id": "things-1", "b": "x"}]


def test_unconvertible_cells_reject_the_row_with_every_bad_field(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "Name,Employees,Amount,Since,Kind\nok,1,2,2019-01-01,a\n"
                               "bad,many,1e3,2019-02-30,z\n")
    mapping = mapping_of({
        "name": {"column": "Name"},
        "employees": {"column": "Employees", "type": "integer"},
        "amount": {"column": "Amount", "type": "decimal"},
        "since": {"column": "Since", "type": "date"},
        "kind": {"column": "Kind", "map": {"a": "alpha"}},
    })
    target = MemoryTarget()
    report = run_import(target, mapping, path)
    assert (report.total, report.imported) == (2, 1)
    [rejected] = report.rejected
    assert rejected.row_number == 2
    assert [(i.path, i.code) for i in rejected.issues] == [
        ("/employees", "import.bad_value"),
        ("/amount", "import.bad_value"),
        ("/since", "import.bad_value"),
        ("/kind", "import.bad_value"),
    ]
    assert rejected.issues[0].params == {"column": "Employees", "expected": "integer"}
    assert "many" not in rejected.issues[0].message  # messages never echo cell values
    assert [r["name"] for r in target.records["things"]] == ["ok"]


def test_lookup_finds_the_record_and_caches_each_value(tmp_path: Path) -> None:
    target = MemoryTarget()
    target.submit("parents", {"code": "P1"})
    target.submit("parents", {"code": "P2"})
    path = write_csv(tmp_path, "Parent,N\nP1,1\nP2,2\nP1,3\nP1,4\n,5\n")
    mapping = mapping_of({
        "parent_id": {"lookup": {"form": "parents", "field": "code", "column": "Parent"}},
        "n": {"column": "N", "type": "integer"},
    })
    report = run_import(target, mapping, path)
    assert (report.total, report.imported, report.rejected) == (5, 5, [])
    assert [(r.get("parent_id"), r["n"]) for r in target.records["things"]] == [
        ("parents-1", 1), ("parents-2", 2), ("parents-1", 3), ("parents-1", 4), (None, 5)]
    assert target.lookups == [("parents", "code", "P1"), ("parents", "code", "P2")]


def test_lookup_miss_rejects_the_row_and_is_asked_once(tmp_path: Path) -> None:
    target = MemoryTarget()
    path = write_csv(tmp_path, "Parent\nX9\nX9\n")
    mapping = mapping_of({"parent_id": {"lookup": {"form": "parents", "field": "code",
                                                   "column": "Parent"}}})
    report = run_import(target, mapping, path)
    assert report.imported == 0
    assert [(r.row_number, [(i.path, i.code) for i in r.issues]) for r in report.rejected] == [
        (1, [("/parent_id", "import.ref_not_found")]),
        (2, [("/parent_id", "import.ref_not_found")]),
    ]
    assert report.rejected[0].issues[0].params == {"form": "parents", "field": "code",
                                                   "column": "Parent"}
    assert target.lookups == [("parents", "code", "X9")]


def test_lookup_into_the_form_being_imported_sees_rows_imported_earlier(tmp_path: Path) -> None:
    target = MemoryTarget()
    path = write_csv(tmp_path, "Code,Parent\nB,A\nA,\nC,A\n")
    mapping = mapping_of({
        "code": {"column": "Code"},
        "parent_id": {"lookup": {"form": "things", "field": "code", "column": "Parent"}},
    })
    report = run_import(target, mapping, path)
    assert [r.row_number for r in report.rejected] == [1]
    assert [(r["code"], r.get("parent_id")) for r in target.records["things"]] == [
        ("A", None), ("C", "things-1")]


def test_validation_issues_from_the_target_are_kept(tmp_path: Path) -> None:
    target = MemoryTarget(required={"things": ["name", "size"]})
    path = write_csv(tmp_path, "Name,Size\nfull,1\n,\n")
    mapping = mapping_of({"name": {"column": "Name"}, "size": {"column": "Size", "type": "integer"}},
                         skip_empty=False)
    report = run_import(target, mapping, path)
    assert report.imported == 1
    assert report.rejected == [RejectedRow(2, [
        ImportIssue("/name", "record.required", "name is required"),
        ImportIssue("/size", "record.required", "size is required"),
    ])]


def test_engine_issue_messages_are_rendered(tmp_path: Path) -> None:
    class RenderedIssue:
        path = "/size"
        code = "record.minimum"

        def __init__(self) -> None:
            self.params = {"limit": 0}

        def message(self, language: str = "en") -> str:
            return "must be at least 0" if language == "en" else "不能小于 0"

    class Failing(MemoryTarget):
        def submit(self, form_key: str, data: dict[str, Any]) -> dict[str, Any]:
            error = Exception("invalid")
            error.issues = [RenderedIssue()]  # type: ignore[attr-defined]
            raise error

    path = write_csv(tmp_path, "Size\n-1\n")
    report = run_import(Failing(), mapping_of({"size": {"column": "Size", "type": "integer"}}), path)
    assert report.rejected == [RejectedRow(1, [
        ImportIssue("/size", "record.minimum", "must be at least 0", {"limit": 0})])]


def test_engine_validation_failed_is_understood(tmp_path: Path) -> None:
    errors = pytest.importorskip("engine.errors")

    class Strict(MemoryTarget):
        def submit(self, form_key: str, data: dict[str, Any]) -> dict[str, Any]:
            raise errors.ValidationFailed([errors.Issue("/size", "record.minimum", {"limit": 0})])

    path = write_csv(tmp_path, "Size\n-1\n")
    report = run_import(Strict(), mapping_of({"size": {"column": "Size", "type": "integer"}}), path)
    [rejected] = report.rejected
    [issue] = rejected.issues
    assert (issue.path, issue.code, dict(issue.params)) == ("/size", "record.minimum", {"limit": 0})
    assert isinstance(issue.message, str) and issue.message


def test_other_exceptions_reject_the_row_and_the_import_goes_on(tmp_path: Path) -> None:
    class Flaky(MemoryTarget):
        def submit(self, form_key: str, data: dict[str, Any]) -> dict[str, Any]:
            if data["n"] == 2:
                raise RuntimeError("disk full")
            return super().submit(form_key, data)

    target = Flaky()
    path = write_csv(tmp_path, "N\n1\n2\n3\n")
    report = run_import(target, mapping_of({"n": {"column": "N", "type": "integer"}}), path)
    assert (report.total, report.imported) == (3, 2)
    assert report.rejected == [RejectedRow(2, [
        ImportIssue("", "import.error", "RuntimeError: disk full")])]


def test_blank_rows_are_skipped_and_long_rows_rejected(tmp_path: Path) -> None:
    target = MemoryTarget()
    path = write_csv(tmp_path, "A,B\n1,2\n,\n  ,  \n3,4,5\n6,7\n")
    report = run_import(target, mapping_of({"a": {"column": "A"}, "b": {"column": "B"}}), path)
    assert (report.total, report.imported, report.skipped) == (3, 2, 2)
    assert [(r.row_number, r.issues[0].code) for r in report.rejected] == [(4, "import.bad_row")]
    assert [r["a"] for r in target.records["things"]] == ["1", "6"]


def test_missing_columns_stop_the_import_before_any_row(tmp_path: Path) -> None:
    target = MemoryTarget()
    path = write_csv(tmp_path, "A\n1\n")
    mapping = mapping_of({
        "a": {"column": "A"},
        "b": {"column": "B"},
        "p": {"lookup": {"form": "parents", "field": "code", "column": "Parent"}},
    })
    with pytest.raises(MappingError) as caught:
        run_import(target, mapping, path)
    assert [(i.path, i.code) for i in caught.value.issues] == [
        ("/fields/b/column", "import.missing_column"),
        ("/fields/p/lookup/column", "import.missing_column"),
    ]
    assert target.records == {}


def test_progress_is_called_after_each_batch_with_rows_and_bytes(tmp_path: Path) -> None:
    seen: list[ImportProgress] = []
    path = write_csv(tmp_path, "A\n1\n\n2\nx\n")
    mapping = mapping_of({"a": {"column": "A", "type": "integer"}})
    report = run_import(MemoryTarget(), mapping, path, progress=seen.append, batch_size=2)
    assert [state.rows for state in seen] == [2, 3]
    assert seen[-1] == ImportProgress(3, 9, 9)
    assert (report.imported, len(report.rejected)) == (2, 1)


def test_constant_values_are_not_shared_between_rows(tmp_path: Path) -> None:
    class Mutating(MemoryTarget):
        def submit(self, form_key: str, data: dict[str, Any]) -> dict[str, Any]:
            data["tags"].append("seen")
            return super().submit(form_key, data)

    target = Mutating()
    path = write_csv(tmp_path, "A\n1\n2\n")
    run_import(target, mapping_of({"a": {"column": "A"}, "tags": {"value": ["imported"]}}), path)
    assert [r["tags"] for r in target.records["things"]] == [["imported", "seen"]] * 2


SBA_SAMPLE = (
    "\ufeffSelected,LoanNr_ChkDgt,Name,City,State,Zip,Bank,BankState,NAICS,ApprovalDate,ApprovalFY,"
    "Term,NoEmp,NewExist,CreateJob,RetainedJob,FranchiseCode,UrbanRural,RevLineCr,LowDoc,ChgOffDate,"
    "DisbursementDate,DisbursementGross,BalanceGross,MIS_Status,ChgOffPrinGr,GrAppv,SBA_Appv,New,"
    "RealEstate,Portion,Recession,daysterm,xx,Default\r\n"
    "0,1004285007,SIMPLEX OFFICE SOLUTIONS,ANAHEIM,CA,92801,CALIFORNIA BANK & TRUST,CA,532420,15074,"
    "2001,36,1,1,0,0,1,0,Y,N,,15095,32812,0,P I F,0,30000,15000,0,0,0.5,0,1080,16175,0\r\n"
    '0,1005005006,"Winset, Inc. dba Bankers Hill",SAN DIEGO,CA,92103,CALIFORNIA BANK & TRUST,CA,'
    "531210,15188,2001,36,10,1,0,0,1,0,Y,N,,15218,30000,0,P I F,0,30000,15000,0,0,0.5,0,1080,16298,0\r\n"
)


def test_bank_example_mappings_on_real_sba_rows(tmp_path: Path) -> None:
    """The first and third rows of SBAcase.11.13.17.csv, copied as they are (BOM, CRLF)."""
    path = tmp_path / "sba.csv"
    path.write_bytes(SBA_SAMPLE.encode("utf-8"))
    target = MemoryTarget()
    customers = run_import(target, load_mapping(BANK_IMPORTS / "sba_customers.json"), path)
    applications = run_import(
        target, load_mapping(BANK_IMPORTS / "sba_credit_applications.json"), path)
    assert (customers.imported, applications.imported) == (2, 2)
    assert target.records["customer"][1] == {
        "id": "customer-2", "external_id": "1005005006",
        "company_name": "Winset, Inc. dba Bankers Hill", "industry_code": "531210",
        "employees": 10, "region": "CA", "city": "SAN DIEGO", "postal_code": "92103",
        "relationship_bank": "CALIFORNIA BANK & TRUST", "registered_on": "2001-08-01",
        "business_stage": "existing",
    }
    assert target.records["credit_limit_adjustment"][0] == {
        "id": "credit_limit_adjustment-3", "external_id": "1004285007", "customer_id": "customer-1",
        "current_limit": 0, "requested_limit": Decimal(30000), "applied_on": "2001-04-09",
        "reason": "SBA 7(a) loan (imported): new credit line for the amount the bank approved",
    }


# -- batches, rejects, JSON Lines ------------------------------------------------------------------


def test_keep_rejected_bounds_the_report_but_counts_every_reject(tmp_path: Path) -> None:
    import io

    path = write_csv(tmp_path, "N\n" + "".join(f"x{n}\n" for n in range(25)) + "7\n")
    sink = io.StringIO()
    report = run_import(MemoryTarget(), mapping_of({"n": {"column": "N", "type": "integer"}}), path,
                        rejects=sink, keep_rejected=10, batch_size=4)
    assert (report.total, report.imported, report.rejected_count, len(report.rejected)) == (26, 1, 25, 10)
    assert [row.row_number for row in report.rejected] == list(range(1, 11))
    assert len(sink.getvalue().splitlines()) == 25


def test_all_or_nothing_needs_a_transactional_target(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "A\n1\n")
    with pytest.raises(ValueError, match="all_or_nothing"):
        run_import(MemoryTarget(), mapping_of({"a": {"column": "A"}}), path, all_or_nothing=True)
    with pytest.raises(ValueError, match="batch_size"):
        run_import(MemoryTarget(), mapping_of({"a": {"column": "A"}}), path, batch_size=0)


def test_json_lines_cells_follow_the_csv_rules(tmp_path: Path) -> None:
    target = MemoryTarget()
    path = tmp_path / "rows.jsonl"
    path.write_text(
        '{"name": "  Ann  ", "size": "1,200", "flag": 1, "stage": 2, "meta": "raw text", "gone": null}\n'
        '{"name": "n/a", "size": 3, "flag": "yes", "stage": "2", "meta": {"k": [1.50]}}\n'
        '{}\n'
        '{"name": "Bob", "size": 2.5}\n', encoding="utf-8")
    mapping = compile_mapping({
        "form": "things", "source": {"format": "jsonl"}, "null_values": ["n/a"], "fields": {
            "name": {"column": "name"}, "size": {"column": "size", "type": "integer"},
            "flag": {"column": "flag", "type": "boolean"}, "stage": {"column": "stage", "map": {"2": "new"}},
            "meta": {"column": "meta", "type": "json"}, "gone": {"column": "gone", "default": "dflt"},
            "missing": {"column": "nowhere"}}})
    report = run_import(target, mapping, path)
    assert (report.total, report.skipped, report.imported) == (3, 1, 2)
    assert [(row.row_number, [(i.path, i.code) for i in row.issues]) for row in report.rejected] == [
        (4, [("/size", "import.bad_value")])]
    first, second = target.records["things"]
    assert first == {"id": first["id"], "name": "Ann", "size": 1200, "flag": True, "stage": "new",
                     "meta": "raw text", "gone": "dflt"}
    assert second == {"id": second["id"], "size": 3, "flag": True, "stage": "new",
                      "meta": {"k": [Decimal("1.50")]}, "gone": "dflt"}

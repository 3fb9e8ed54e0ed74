"""The batched import path stores exactly what `Engine.submit`, row by row, stores.

The same files are imported twice into the same (emptied) database: once with `one_by_one=True`
(each row through `Engine.submit`, one transaction per row) and once through the bulk path, with
big and tiny batches. Every row written (records, record_values, changes, audit, outbox, process
instances, their events and tasks) is compared after replacing generated ids by their order of
appearance, and so are the import reports. Runs on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from engine import BadRequest, Engine, ValidationFailed
from engine.forms.bulk import BulkSubmitter, fast_dumps, plainly_storable
from engine.jsoncodec import check_document, dumps
from engine.security import Principal

TABLES = ("records", "record_values", "changes", "audit_log", "outbox", "process_instances", "instance_events",
          "tasks")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX = re.compile(r":[0-9a-f]{32}$")


def snapshot(engine: Engine, forms: tuple[str, ...]) -> dict[str, Any]:
    """Every row the imports wrote, with ids replaced by labels in order of first appearance."""
    labels: dict[str, str] = {}

    def label(value: Any) -> Any:
        if isinstance(value, str):
            return _UUID.sub(lambda m: labels.setdefault(m.group(0), f"<id{len(labels)}>"), value)
        return value

    with engine.db.engine.connect() as connection:
        def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in connection.execute(text(sql))]

        changes = rows("SELECT entity, entity_id, scope, at FROM changes ORDER BY seq")
        for _, entity_id, _, _ in changes:
            label(entity_id)  # records, instances and tasks get their labels in write order
        by_id = {row[0]: row for row in rows(
            "SELECT id, form_key, form_version, data, row_version, created_at, updated_at, created_by FROM records")}
        records = [tuple(label(v) for v in by_id[entity_id]) for entity, entity_id, _, _ in changes
                   if entity == "record" and entity_id in by_id]
        values = sorted(tuple(label(v) for v in row) for row in rows(
            "SELECT record_id, form_key, field, value FROM record_values"))
        audit = [tuple(label(v) for v in row) for row in rows(
            "SELECT at, actor, action, object_type, object_id, detail FROM audit_log ORDER BY id")]
        outbox = [tuple(label(_HEX.sub(":<hex>", v) if isinstance(v, str) else v) for v in row) for row in rows(
            "SELECT topic, dedup_key, payload, status, attempts, created_at FROM outbox ORDER BY id")]
        instances = sorted(tuple(label(v) for v in row) for row in rows(
            "SELECT id, process_key, process_version, record_id, state, status, outcome, row_version, started_at, "
            "ended_at, started_by FROM process_instances"))
        events = [tuple(label(v) for v in row) for row in rows(
            "SELECT instance_id, at, event, from_state, to_state, action, task_id, actor, comment "
            "FROM instance_events ORDER BY id")]
        tasks = sorted(tuple(label(v) for v in row) for row in rows(
            "SELECT id, instance_id, state, entry, assignee_role, assignee_user, status, action, row_version, "
            "created_at FROM tasks"))
    return {"changes": [tuple(label(v) for v in row) for row in changes], "records": records,
            "record_values": values, "audit": audit, "outbox": outbox, "instances": instances, "events": events,
            "tasks": tasks, "forms": forms}


def wipe(engine: Engine) -> None:
    with engine.db.engine.begin() as connection:
        for table in TABLES:
            connection.execute(text(f"DELETE FROM {table}"))


def outcome(report: Any) -> tuple[Any, ...]:
    return (report.total, report.imported, report.already_present, report.skipped, report.rejected_count,
            [(row.row_number, [(i.path, i.code, i.message, dict(i.params)) for i in row.issues])
             for row in report.rejected])


def both_ways(engine: Engine, imports: list[tuple[str, Path, Path | None]], batch_size: int) -> None:
    """Run the imports one by one, then in bulk, from the same starting point; compare."""
    wipe(engine)
    slow = [outcome(engine.run_import(form, source, mapping, one_by_one=True)) for form, source, mapping in imports]
    expected = snapshot(engine, tuple(form for form, _, _ in imports))
    wipe(engine)
    fast = [outcome(engine.run_import(form, source, mapping, batch_size=batch_size))
            for form, source, mapping in imports]
    got = snapshot(engine, tuple(form for form, _, _ in imports))
    assert fast == slow
    for table in expected:
        assert got[table] == expected[table], table
    assert expected["records"]  # the comparison compared something


def write(tmp_path: Path, name: str, content: str | dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


CUSTOMERS = (
    "id,name,region,employees,zip,naics,since,stage\n"
    "C1,Acme Trading,Fujian,12,350001,423840,2020-01-31,1\n"
    "C2,Beta Ltd,Fujian,many,350002,,2020-02-01,2\n"          # employees is not an integer
    "C3,,Fujian,3,350003,,,\n"                                  # company name required
    "C4,Gamma 有限公司,Zhejiang,-1,31,99,2021-13-01,0\n"          # minimum, postal pattern, bad date
    "C1,Acme again,Fujian,1,,,,\n"                              # key already in the file
    ",,,,,,,\n"                                                 # blank: skipped
    "C5,Delta,Fujian,5,350005,52,2019-12-31,1,extra\n"          # one cell too many
    f"C6,{'Long name ' * 25},Fujian,7,350006,5242,2018-06-01,2\n"  # a name over 200 characters
    f"C7,Eta,{'R' * 64},8,350007,5242,2018-06-02,1\n"           # region exactly 64: value indexed
    "C8,Theta,Fujian,0,350008,5242,2018-06-03,1\n"
)
CUSTOMER_MAPPING = {
    "form": "customer", "key": "external_id", "source": {"format": "csv"},
    "fields": {"external_id": {"column": "id"}, "company_name": {"column": "name"},
               "region": {"column": "region"}, "employees": {"column": "employees", "type": "integer"},
               "postal_code": {"column": "zip"}, "industry_code": {"column": "naics"},
               "registered_on": {"column": "since", "type": "date"},
               "business_stage": {"column": "stage", "map": {"1": "existing", "2": "new"}, "null_values": ["0"]}},
}
APPLICATIONS = (
    "id,customer,current,requested,rating,reason\n"
    "A1,C1,1000000,1050000,low,\n"              # +5 %, low risk: approved by rule
    "A2,C1,1000000,1500000,medium,Expansion\n"  # +50 %: manager review
    "A3,C8,0,200000,,New line\n"                # new limit: increase empty, manager review
    "A4,C8,500000,500000,low,\n"                # requested equals current: rule
    "A5,C9,100,200,low,\n"                      # no such customer
    "A6,C1,1000000,1300000,high,\n"             # +30 %: reason required
    "A7,C1,100.005,200,low,x\n"                 # scale: 3 fraction digits
    "A2,C1,1,2,low,dup\n"                       # key already imported
)
APPLICATION_MAPPING = {
    "form": "credit_limit_adjustment", "key": "external_id", "source": {"format": "csv"},
    "fields": {"external_id": {"column": "id"},
               "customer_id": {"lookup": {"form": "customer", "field": "external_id", "column": "customer"}},
               "current_limit": {"column": "current", "type": "decimal"},
               "requested_limit": {"column": "requested", "type": "decimal"},
               "risk_rating": {"column": "rating"}, "reason": {"column": "reason"}},
}


@pytest.mark.parametrize("batch_size", [1000, 2])
def test_customers_and_applications_with_processes_store_the_same(bank: Engine, tmp_path: Path,
                                                                   batch_size: int) -> None:
    customers = write(tmp_path, "customers.csv", CUSTOMERS)
    applications = write(tmp_path, "applications.csv", APPLICATIONS)
    both_ways(bank, [
        ("customer", customers, write(tmp_path, "customers.json", CUSTOMER_MAPPING)),
        ("credit_limit_adjustment", applications, write(tmp_path, "applications.json", APPLICATION_MAPPING)),
    ], batch_size)


UNITS_FORM = {
    "kind": "form", "key": "org_unit", "title": "Organisational unit",
    "schema": {"type": "object", "required": ["code"], "additionalProperties": False, "properties": {
        "code": {"type": "string", "minLength": 1}, "name": {"type": "string"},
        "parent_id": {"type": "string"}, "budget": {"type": "number", "minimum": 0, "x-decimal": {"scale": 2}},
        "headcount": {"type": "integer"}, "budget_per_head": {"type": "number", "x-decimal": {"scale": 2}},
        "tags": {"type": "array", "items": {"type": "string"}}}},
    "computed": {"budget_per_head": {"rule": {"if": [{">": [{"var": "headcount"}, 0]},
                                                     {"/": [{"var": "budget"}, {"var": "headcount"}]}, None]}}},
    "refs": {"parent_id": {"form": "org_unit"}},
}
UNITS = (
    '{"code": "HQ", "name": "Head office", "budget": 1000000.00, "headcount": 3, "tags": ["root"]}\n'
    '{"code": "EAST", "name": "East", "parent": "HQ", "budget": 10.10, "headcount": 0}\n'
    '{"code": "NB", "name": "Ningbo", "parent": "EAST"}\n'
    '{"code": "XM", "name": "Xiamen", "parent": "SOUTH"}\n'      # its parent comes later: not found
    '{"code": "SOUTH", "name": "South", "parent": "HQ", "budget": 1e2}\n'
    '{"code": "FZ", "name": "Fuzhou", "parent": "SOUTH", "budget": -5}\n'
    '\n'
    '{"code": "EAST", "name": "East again"}\n'                    # key present (earlier in the file)
    '{"code": "BAD", "budget": NaN}\n'
    '[1, 2]\n'
    '{"code": "DUPE"}\n'
    '{"code": "DUPE2", "name": "dupe"}\n'
    '{"code": "C1", "parent": "DUPE"}\n'
    '{"code": "C2", "name": "x", "parent_id": "not-an-id"}\n'     # a direct ref that names nothing
    '{"code": "C3", "headcount": 4, "budget": 1.00, "tags": "none"}\n'
)
UNITS_MAPPING = {
    "form": "org_unit", "key": "code", "source": {"format": "jsonl"},
    "fields": {"code": {"column": "code"}, "name": {"column": "name"},
               "parent_id": {"lookup": {"form": "org_unit", "field": "code", "column": "parent"}},
               "budget": {"column": "budget", "type": "decimal"}, "headcount": {"column": "headcount", "type": "integer"},
               "tags": {"column": "tags", "type": "json"}},
}


@pytest.mark.parametrize("batch_size", [1000, 3, 1])
def test_a_form_that_refers_to_itself_sees_rows_created_earlier_in_the_file(bank: Engine, tmp_path: Path,
                                                                            batch_size: int) -> None:
    bank.upload(UNITS_FORM)
    units = write(tmp_path, "units.jsonl", UNITS)
    mapping = write(tmp_path, "units.json", {**UNITS_MAPPING})
    direct = dict(UNITS_MAPPING, fields={**UNITS_MAPPING["fields"], "parent_id": {"column": "parent_id"}})
    direct_mapping = write(tmp_path, "units_direct.json", direct)
    both_ways(bank, [("org_unit", units, mapping), ("org_unit", units, direct_mapping)], batch_size)

    wipe(bank)
    report = bank.run_import("org_unit", units, mapping, batch_size=batch_size)
    assert [(row.row_number, [i.code for i in row.issues]) for row in report.rejected] == [
        (4, ["import.ref_not_found"]), (6, ["record.minimum"]), (9, ["request.non_finite_number"]),
        (10, ["import.bad_row"]), (15, ["record.type"])]
    by_code = {item["data"]["code"]: item for item in bank.records("org_unit", limit=50)["items"]}
    assert by_code["NB"]["data"]["parent_id"] == by_code["EAST"]["id"]
    assert by_code["EAST"]["data"]["parent_id"] == by_code["HQ"]["id"]
    assert by_code["HQ"]["data"]["budget_per_head"] == Decimal("333333.33")
    assert "parent_id" not in by_code["C1"]["data"] or by_code["C1"]["data"]["parent_id"] == by_code["DUPE"]["id"]


# -- the bulk session against Engine.submit, document by document ---------------------------------


DOCUMENTS: list[Any] = [
    {"company_name": "Plain Co"},
    {"company_name": "Full Co", "uscc": "91350100M000100Y43", "employees": 10, "risk_level": "low",
     "registered_on": "2020-01-01", "area_type": "urban", "postal_code": "350001"},
    {"company_name": ""},                                   # empty means absent: required
    {"company_name": "Nul\x00Co"},                          # cannot be stored
    {"company_name": "Surrogate \ud800"},                   # cannot be stored
    {"company_name": "Float", "employees": 1.5},            # floats are refused
    {"company_name": "Huge", "employees": 10**45},          # number out of range
    {"company_name": "Big", "employees": 10**30},           # long integer, looked up by lookup_text
    {"company_name": "Dec", "employees": Decimal(7)},     # a decimal where an integer is expected
    {"company_name": "Extra", "favourite_colour": "blue"},  # additional property
    {"company_name": "Nested", "region": {"a": [1, 2]}},   # wrong type, nested value
    ["not", "an", "object"],
    {"company_name": "中文名称有限公司", "city": "福州"},
    {"company_name": "Long", "relationship_bank": "B" * 200, "city": "C" * 100},
]


def _submit(engine: Engine, data: Any, actor: Principal) -> tuple[str | None, list[tuple[str, str]]]:
    try:
        record = engine.submit("customer", data, actor)
    except (ValidationFailed, BadRequest) as exc:
        return None, [(issue.path, issue.code) for issue in exc.issues]
    return record["id"], []


def test_bulk_session_gives_submit_verdicts_and_rows_document_by_document(bank: Engine) -> None:
    actor = Principal("importer-1", frozenset({"clerk"}))
    wipe(bank)
    expected_verdicts = [_submit(bank, document, actor)[1] for document in DOCUMENTS]
    expected = snapshot(bank, ("customer",))
    wipe(bank)
    verdicts = []
    with BulkSubmitter(bank.db, bank.registry, bank.clock, actor).session("customer") as session:
        for document in DOCUMENTS:
            _, issues = session.add(document)
            verdicts.append([(issue.path, issue.code) for issue in issues])
        flushed = session.flush()
        assert (flushed.earlier, flushed.current or [], flushed.redo) == (None, [], False)
        assert not session.drain()
    assert verdicts == expected_verdicts
    got = snapshot(bank, ("customer",))
    for table in expected:
        assert got[table] == expected[table], table


def test_unflushed_rows_are_not_stored(bank: Engine) -> None:
    with BulkSubmitter(bank.db, bank.registry, bank.clock).session("customer") as session:
        assert session.add({"company_name": "Never"})[1] == []
    assert bank.records("customer")["total"] == 0


@pytest.mark.parametrize("document", [
    {}, {"a": "x", "b": 1, "c": True, "d": None, "e": Decimal("1.50"), "f": Decimal("-0"), "g": Decimal("1E+2")},
    {"a": "é\u2028\"\\\n\t", "b": -10**39, "c": [1, {"x": Decimal("0.000")}], "d": {"nested": ["a"]}},
    {"x": Decimal("12345678901234567890.123456789")}, {"x": 0}, {"x": False},
])
def test_fast_dumps_writes_what_dumps_writes(document: dict[str, Any]) -> None:
    assert fast_dumps(document) == dumps(document)


@pytest.mark.parametrize("document", [
    {"a": "x\x00"}, {"a": "\udc80"}, {"\udc80": 1}, {"a": 1.5}, {"a": 10**40}, {"a": Decimal("NaN")},
    {"a": Decimal("1E+41")}, {"a": Decimal("1." + "1" * 40)}, {"a": object()}, {"a": {"b": "\x00"}}, {1: "a"},
])
def test_plainly_storable_never_accepts_what_check_document_refuses(document: dict[str, Any]) -> None:
    assert not plainly_storable(document)
    with pytest.raises(BadRequest):
        check_document(document)


def test_plainly_storable_accepts_plain_records() -> None:
    document = {"a": "text é 中", "b": 10**39, "c": Decimal("-1.25"), "d": True, "e": None}
    check_document(document)
    assert plainly_storable(document)

"""Attack class: escapes from the DuckDB report engine — file readers (``read_csv``,
``read_parquet``, ``read_json``, ``read_text``, ``glob``...), replacement scans of file and
table names, ``COPY``, ``ATTACH``, ``EXPORT DATABASE``, ``INSTALL``/``LOAD``, ``SET``/``RESET``/
``PRAGMA`` on the locked configuration, secrets, ``getenv`` and catalog tables.

Two layers. A report definition cannot carry SQL: every name that reaches a query is a field of
the source form (checked at upload, 422 at the pointer) and every value is bound, so a label
holding SQL is only text. Below that, the mirror's own connection refuses every escape even if
a statement did get through. Payloads: 12 field names and 2 sources in report definitions, 2 values,
25 statements on a fresh mirror connection and the same 25 on a live engine's mirror: 66 cases.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import BANK
from tests.security.conftest import MODELER, assert_refused, definition_absent

BASE_REPORT = json.loads((BANK / "reports" / "customers_by_region_industry.json").read_text("utf-8"))

# (field name, code)
FIELD_NAMES = [
    ("read_csv", "definition.unknown_field"),
    ("read_parquet", "definition.unknown_field"),
    ("getenv", "definition.unknown_field"),
    ("duckdb_settings", "definition.unknown_field"),
    ("main.records", "definition.unknown_ref"),
    ("information_schema.tables", "definition.unknown_ref"),
    ("pg_catalog.pg_class", "definition.unknown_ref"),
    ("system.main", "definition.unknown_ref"),
    ("region.__class__", "definition.unknown_ref"),
    ("read_csv('/etc/passwd')", "definition.schema"),
    ("'/etc/passwd'", "definition.schema"),
    ("region; INSTALL httpfs", "definition.schema"),
]


@pytest.mark.parametrize(("field", "code"), FIELD_NAMES)
def test_a_report_names_only_fields_of_its_source(shared_client: Any, field: str, code: str) -> None:
    document = copy.deepcopy(BASE_REPORT)
    document["key"] = "escape"
    document["dimensions"][0]["field"] = field
    assert_refused(shared_client.post("/api/v1/definitions", headers=MODELER, json=document), 422, code,
                   "/dimensions/0/field")
    assert definition_absent(shared_client, "report", "escape")


@pytest.mark.parametrize("source", [{"form": "read_csv"}, {"form": "duckdb_tables"}])
def test_a_report_source_is_a_form(shared_client: Any, source: dict[str, str]) -> None:
    document = {**copy.deepcopy(BASE_REPORT), "key": "escape", "source": source}
    assert_refused(shared_client.post("/api/v1/definitions", headers=MODELER, json=document), 422,
                   "definition.unknown_form", "/source/form")


def test_sql_in_a_label_or_a_filter_value_is_only_text(shared_client: Any, shared_customer_id: str, tmp_path: Path) -> None:
    target = tmp_path / "copied.csv"
    payload = f"'); COPY (SELECT * FROM records) TO '{target}'; --"
    document = copy.deepcopy(BASE_REPORT)
    document.update(key="escape_text", filters=[{"field": "region", "op": "ne", "value": payload}])
    document["dimensions"][0]["labels"] = {"Fujian": payload}
    assert shared_client.post("/api/v1/definitions", headers=MODELER, json=document).status_code in (200, 201)
    result = shared_client.get("/api/v1/reports/escape_text")
    assert result.status_code == 200, result.text
    assert result.json()["rows"] == [[payload, "423840", 1]]  # the label, shown as text
    assert not target.exists()


ESCAPES = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/hostname')",
    "SELECT * FROM read_parquet('/tmp/x.parquet')",
    "SELECT * FROM read_json('/etc/hosts')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM 'x.csv'",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_csv('http://169.254.169.254/latest/meta-data/')",
    "COPY (SELECT 42) TO '{tmp}/out.csv'",
    "EXPORT DATABASE '{tmp}/export'",
    "ATTACH '{tmp}/other.db' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "CREATE SECRET (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET GLOBAL lock_configuration = false",
    "SET threads = 64",
    "SET memory_limit = '100GB'",
    "PRAGMA enable_profiling",
    "SELECT getenv('HOME')",
    "SELECT * FROM duckdb_extensions()",
]
REFUSALS = (duckdb.PermissionException, duckdb.InvalidInputException, duckdb.CatalogException)


def _escape(statement: str, tmp_path: Path) -> str:
    return statement.replace("{tmp}", str(tmp_path))


def _assert_nothing_written(tmp_path: Path) -> None:
    assert sorted(path.name for path in tmp_path.iterdir()) == []


@pytest.mark.parametrize("statement", ESCAPES)
def test_a_fresh_mirror_connection_refuses_the_escape(statement: str, tmp_path: Path) -> None:
    from engine.reports.mirror import connect_duckdb

    connection = connect_duckdb()
    try:
        with pytest.raises(REFUSALS):
            connection.execute(_escape(statement, tmp_path)).fetchall()
        assert connection.execute("SELECT current_setting('enable_external_access')").fetchone() == (False,)
    finally:
        connection.close()
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize("statement", ESCAPES)
def test_the_live_mirror_refuses_the_escape(shared_bank: Any, shared_customer_id: str, statement: str, tmp_path: Path) -> None:
    shared_bank.run_report("customers_by_region_industry", {})  # the mirror is open and caught up
    with pytest.raises(REFUSALS):
        shared_bank.mirror.execute(_escape(statement, tmp_path), [])
    _assert_nothing_written(tmp_path)
    rows = shared_bank.mirror.execute("SELECT current_setting('enable_external_access'), current_setting('lock_configuration')", [])
    assert rows == [(False, True)]

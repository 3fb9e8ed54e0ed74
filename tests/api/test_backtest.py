"""Rule backtest (Engine.backtest, POST /api/v1/definitions/backtest, `lowcode backtest`): a
candidate process replayed over stored records, inline rows and a CSV file, with routes, gate
choices, agreement, and rows counted by SQL and row-by-row evaluation; structured 4xx errors."""
from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engine.errors import DefinitionInvalid, Forbidden, ValidationFailed
from engine.facade import Engine
from engine.security import Principal

MODELER = {"X-User": "analyst-1", "X-Roles": "modeler"}

FORM = {
    "kind": "form", "key": "request", "title": "Request",
    "schema": {"type": "object", "properties": {
        "amount": {"type": "number", "x-decimal": {"scale": 2}},
        "risk": {"type": "string", "enum": ["low", "high"]}}, "required": ["amount"]},
}


def _process(limit: Any) -> dict[str, Any]:
    review = {"type": "task", "title": "Review", "assignee": {"role": "reviewer"}, "actions": {
        "approve": {"title": "Approve", "transitions": [
            {"to": "second_opinion", "when": {">": [{"var": "amount"}, 5000]}}, {"to": "approved"}]},
        "reject": {"title": "Reject", "transitions": [{"to": "rejected"}]}}}
    return {
        "kind": "process", "key": "request_flow", "form": "request", "title": "Request flow", "start": "triage",
        "states": {
            "triage": {"type": "auto", "title": "Triage", "transitions": [
                {"to": "approved", "when": {"and": [{"<=": [{"var": "amount"}, limit]},
                                                    {"==": [{"var": "risk"}, "low"]}]}},
                {"to": "review"}]},
            "review": review,
            "second_opinion": {**review, "title": "Second opinion", "actions": {
                "approve": {"title": "Approve", "transitions": [{"to": "approved"}]},
                "reject": {"title": "Reject", "transitions": [{"to": "rejected"}]}}},
            "approved": {"type": "end", "title": "Approved", "outcome": "approved"},
            "rejected": {"type": "end", "title": "Rejected", "outcome": "rejected"},
        },
    }


@pytest.fixture
def flow(engine: Engine) -> Engine:
    form = copy.deepcopy(FORM)
    engine.upload(form)
    engine.upload(_process(1000))
    engine.upload({**form, "process": "request_flow"})
    for amount, risk in [("500", "low"), ("999.99", "low"), ("1000.01", "low"), ("800", "high"), ("7000", None)]:
        engine.submit("request", {"amount": Decimal(amount), **({"risk": risk} if risk else {})})
    return engine


def test_a_candidate_over_stored_records_is_compared_with_the_route_each_instance_took(flow: Engine) -> None:
    same = flow.backtest(_process(1000))
    assert same["rows"] == 5 and same["comparison"]["agreement_pct"] == Decimal("100.00")
    assert same["comparison"]["actual"] == "instance route"
    looser = flow.backtest(_process(Decimal("1000.01")))
    routes = {route["route"]: route["count"] for route in looser["routes"]}
    assert routes == {"approved": 3, "review": 2}
    comparison = looser["comparison"]
    assert (comparison["agreed"], comparison["compared"], comparison["agreement_pct"]) == (4, 5, Decimal("80.00"))
    assert comparison["matrix"] == {"approved": {"approved": 2, "review": 1}, "review": {"review": 2}}
    gates = {gate["gate"]: gate["targets"] for gate in looser["gates"]}
    assert gates["/states/review/actions/approve/transitions"] == {"approved": 4, "second_opinion": 1}
    triage = next(rule for rule in looser["rules"] if rule["rule"] == "/states/triage/transitions/0/when")
    # The missing risk of the 7000 request is never compared: amount <= limit fails first.
    assert (triage["mode"], triage["sql_rows"], triage["row_rows"], triage["holds"]) == ("exact", 5, 0, 3)
    assert looser["evaluation"] == {"sql_rows": 10, "row_rows": 0}


def test_inline_rows_with_nulls_use_the_row_evaluator_where_sql_cannot_decide(flow: Engine) -> None:
    candidate = _process(1000)
    candidate["states"]["triage"]["transitions"][0]["when"] = {"==": [{"var": "risk"}, "low"]}
    rows = [{"data": {"amount": 1, "risk": "low"}, "actual": "approved"}, {"data": {"amount": 2}, "actual": "review"},
            {"data": {"amount": 3, "risk": "high"}}]
    result = flow.backtest(candidate, rows=rows)
    triage = result["rules"][0]
    assert (triage["sql_rows"], triage["row_rows"]) == (2, 1)  # null == "low": the decimal path gives up
    assert {route["route"]: route["count"] for route in result["routes"]} == {"approved": 1, "review": 2}
    assert (result["comparison"]["compared"], result["comparison"]["agreed"], result["comparison"]["unknown"]) == (2, 2, 1)


def test_backtest_needs_the_definition_roles_and_reports_bad_input_as_issues(flow: Engine) -> None:
    with pytest.raises(Forbidden):
        flow.backtest(_process(1000), actor=Principal("someone", frozenset({"clerk"})))
    broken = _process(1000)
    broken["states"]["triage"]["transitions"][0]["when"] = {"<=": [{"var": "amont"}, 1]}
    with pytest.raises(DefinitionInvalid) as bad:
        flow.backtest(broken)
    assert bad.value.issues[0].code == "definition.unknown_field"
    with pytest.raises(DefinitionInvalid) as wrong:
        flow.backtest(FORM)
    assert wrong.value.issues[0].code == "backtest.wrong_kind"
    with pytest.raises(ValidationFailed) as rows:
        flow.backtest(_process(1000), rows=[{"data": 1}])
    assert rows.value.issues[0].path == "/rows/0" and rows.value.issues[0].code == "backtest.bad_rows"


def test_http_backtest_answers_results_and_structured_errors(flow: Engine, client: Any) -> None:
    answer = client.post("/api/v1/definitions/backtest", json={"definition": _process(1000)}, headers=MODELER)
    assert answer.status_code == 200 and answer.json()["comparison"]["agreement_pct"] == 100
    forbidden = client.post("/api/v1/definitions/backtest", json={"definition": _process(1000)},
                            headers={"X-User": "c", "X-Roles": "clerk"})
    assert forbidden.status_code == 403 and forbidden.json()["errors"][0]["code"] == "definition.forbidden"
    unknown = client.post("/api/v1/definitions/backtest", json={"definition": _process(1000), "file": "/etc/passwd"},
                          headers=MODELER)
    assert unknown.status_code == 422
    assert [(e["path"], e["code"]) for e in unknown.json()["errors"]] == [("/file", "request.unknown_field")]
    missing = client.post("/api/v1/definitions/backtest", json={}, headers=MODELER)
    assert missing.status_code == 422 and missing.json()["errors"][0]["path"] == "/definition"
    invalid = client.post("/api/v1/definitions/backtest", json={"definition": {"kind": "process"}}, headers=MODELER)
    assert invalid.status_code == 422 and all({"path", "code", "message"} <= set(e) for e in invalid.json()["errors"])


def test_cli_backtests_a_csv_through_a_mapping_with_outcomes(flow: Engine, database_url: str, tmp_path: Path) -> None:
    from engine.cli import app

    data = tmp_path / "history.csv"
    data.write_text("amt,rating,decision\n10.50,low,Y\n2000,low,N\n30,,Y\nabc,high,N\n", encoding="utf-8")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({
        "form": "request", "source": {"format": "csv"}, "fields": {"amount": {"column": "amt", "type": "decimal"}, "risk": {"column": "rating"}},
        "outcome": {"column": "decision", "values": {"Y": "approved", "N": "rejected"},
                    "predicts": {"approved": "approved", "review": "rejected"}}}), encoding="utf-8")
    candidate = tmp_path / "candidate.json"
    candidate.write_text(json.dumps({"process": _process(1000), "form": {**FORM, "title": "Request (candidate)"}}),
                         encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["backtest", str(candidate), "--data", str(data), "--mapping", str(mapping),
                                 "--json", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["rows"] == 4 and body["rows_with_issues"] == 1  # "abc" is not a decimal
    assert {route["route"]: route["count"] for route in body["routes"]} == {"approved": 1, "review": 3}
    assert body["comparison"]["matrix"] == {"approved": {"approved": 1}, "review": {"approved": 1, "rejected": 2}}
    assert body["comparison"]["agreement_pct"] == 75
    table = runner.invoke(app, ["backtest", str(candidate), "--data", str(data), "--mapping", str(mapping),
                                "--database-url", database_url])
    assert table.exit_code == 0 and "agreement: 75.00 %" in table.output
    bad = runner.invoke(app, ["backtest", str(candidate), "--data", str(data), "--database-url", database_url])
    assert bad.exit_code == 2 and "backtest.mapping_required" in bad.output


def test_parallel_branch_conditions_are_counted_each_on_its_own(flow: Engine) -> None:
    def task(to: str) -> dict[str, Any]:
        return {"type": "task", "title": to, "assignee": {"role": "reviewer"},
                "actions": {"approve": {"title": "Approve", "transitions": [{"to": to}]}}}

    candidate = {
        "kind": "process", "key": "request_flow", "form": "request", "title": "Split", "start": "split",
        "states": {
            "split": {"type": "parallel", "join": "merge", "branches": [
                {"start": "legal", "when": {">": [{"var": "amount"}, 900]}},
                {"start": "risk", "when": {"==": [{"var": "risk"}, "high"]}}, {"start": "ops"}]},
            "legal": task("merge"), "risk": task("merge"), "ops": task("merge"), "merge": task("done"),
            "done": {"type": "end", "title": "Done", "outcome": "approved"}}}
    result = flow.backtest(candidate)
    targets = {gate["gate"]: gate["targets"] for gate in result["gates"]}["/states/split/branches"]
    # amounts 500, 999.99, 1000.01, 800 (high), 7000 (no risk: == "high" goes to the row evaluator)
    assert targets == {"legal": 3, "risk": 1, "ops": 5}
    assert [route["route"] for route in result["routes"]] == ["split"]
    risk = next(rule for rule in result["rules"] if rule["rule"] == "/states/split/branches/1/when")
    assert (risk["sql_rows"], risk["row_rows"], risk["holds"]) == (4, 1, 1)


def test_a_parquet_history_is_read_like_the_same_csv(flow: Engine, tmp_path: Path) -> None:
    import duckdb

    csv_path = tmp_path / "history.csv"
    csv_path.write_text("amt,rating,decision\n10.5,low,Y\n2000.25,low,N\n30,,Y\n", encoding="utf-8")
    parquet = tmp_path / "history.parquet"
    writer = duckdb.connect()
    writer.execute(f"COPY (SELECT * FROM read_csv('{csv_path}')) TO '{parquet}' (FORMAT parquet)")
    writer.close()
    mapping = {"form": "request", "source": {"format": "csv"},
               "fields": {"amount": {"column": "amt", "type": "decimal"}, "risk": {"column": "rating"}},
               "outcome": {"column": "decision", "values": {"Y": "approved", "N": "rejected"}}}
    from_csv = flow.backtest(_process(1000), data_path=csv_path, mapping=mapping)
    from_parquet = flow.backtest(_process(1000), data_path=parquet, mapping=mapping)
    for key in ("rows", "rows_with_issues", "routes", "gates", "comparison"):
        assert from_parquet[key] == from_csv[key], key
    assert {route["route"]: route["count"] for route in from_csv["routes"]} == {"approved": 1, "review": 2}
    with pytest.raises(ValidationFailed) as bad:
        flow.backtest(_process(1000), data_path=csv_path.with_suffix(".parquet").with_name("x.parquet"), mapping=mapping)
    assert bad.value.issues[0].code == "import.bad_source"


def test_with_roles_in_force_backtesting_needs_the_definition_upload_grant(bank_roles: Engine) -> None:
    candidate = json.loads((Path(__file__).resolve().parents[2] / "examples" / "bank" / "backtests"
                            / "credit_limit_new_lines.json").read_text(encoding="utf-8"))["process"]
    rows = [{"data": {"customer_id": "c", "current_limit": 0, "requested_limit": 1000}, "actual": "approved"}]
    with pytest.raises(Forbidden) as denied:
        bank_roles.backtest(candidate, rows=rows, actor=Principal("am-1", frozenset({"account_manager"})))
    assert denied.value.code == "access.denied"
    result = bank_roles.backtest(candidate, rows=rows, actor=Principal("model-1", frozenset({"modeler"})))
    assert [route["route"] for route in result["routes"]] == ["approved"]


def test_the_bank_backtest_candidates_are_never_loaded_as_definitions() -> None:
    folder = Path(__file__).resolve().parents[2] / "examples" / "bank" / "backtests"
    files = sorted(folder.glob("*.json"))
    assert len(files) >= 4
    for path in files:  # `lowcode load examples/bank` uploads every *.json with a kind
        assert "kind" not in json.loads(path.read_text(encoding="utf-8")), path.name

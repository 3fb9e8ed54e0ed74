"""Rule backtests over real applications: the Boston Fed mortgage applications (1,989, with the
real approve / deny decision) and the SBA 7(a) loans (2,101, with the later paid-in-full /
charged-off status), 4,090 in all. The candidates and mappings are the bank example's
(examples/bank/backtests/). For every rule the SQL path and the row evaluator give the same
answer on every row, and the counts are those computed here straight from the CSV with Decimal."""
from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal
from typing import Any

from realdata_support import BANK, data_file, read_csv

from engine.facade import Engine
from engine.forms.pipeline import run as run_pipeline
from engine.jsoncodec import loads
from engine.reports.mirror import connect_duckdb
from engine.rules.batch import evaluate_rules
from engine.definitions.backtest import compile_candidate, gates
from engine.definitions.backtest_source import compile_backtest_mapping, read_history

BACKTESTS = BANK / "backtests"
MORTGAGES = ("mortgage-applications-boston", "loanapp.csv")
SBA = ("sba-loans", "SBAcase.11.13.17.csv")


def _json(name: str) -> Any:
    return loads((BACKTESTS / name).read_bytes())


def _sql_equals_rows(engine: Engine, process: Any, form: Any, path: Any, mapping: Any) -> list[dict[str, Any]]:
    """Each gate rule over the history, once through DuckDB and once row by row with
    CompiledRule.holds: identical answers on every row. Returns the rule summaries."""
    spec, form_spec = compile_candidate(process, form, engine.registry.form)
    history, _ = read_history(path, compile_backtest_mapping(mapping), form_spec, max_rows=10_000)
    contexts = [{**row.data, "process": {"send_backs": 0, "started_by": None}} for row in history]
    rules = {f"{gate.pointer}/{t.index}": t.when for gate in gates(spec) for t in gate.transitions if t.when is not None}
    connection = connect_duckdb()
    try:
        outcomes = evaluate_rules(rules, contexts, connection=connection)
    finally:
        connection.close()
    summaries = []
    for name, rule in rules.items():
        by_row = tuple(rule.holds(context) for context in contexts)
        assert outcomes[name].results == by_row, name
        summaries.append({"rule": name, "mode": outcomes[name].mode, "sql": outcomes[name].sql_rows,
                          "rows": outcomes[name].row_rows})
    return summaries


def test_mortgage_candidate_over_real_decisions(engine: Engine) -> None:
    path = data_file(*MORTGAGES)
    bundle, mapping = _json("mortgage_triage.json"), _json("mortgage_loanapp.mapping.json")
    began = time.perf_counter()
    result = engine.backtest(bundle["process"], form=bundle["form"], data_path=path, mapping=BACKTESTS / "mortgage_loanapp.mapping.json")
    seconds = time.perf_counter() - began

    expected: Counter[str] = Counter()
    matrix: Counter[tuple[str, str]] = Counter()
    for row in read_csv(path):
        debt, price = Decimal(row["obrat"]), Decimal(row["loanprc"])
        clean = (row["pubrec"] == "0" and row["chist"] == "1" and int(row["mortg"]) <= 2 and row["unver"] == "0")
        if clean and debt <= 38 and price <= Decimal("0.95"):
            route = "auto_approved"
        elif row["pubrec"] == "1" or float(row["obrat"]) > 50 or row["cons"] in ("5", "6"):
            route = "risk_review"
        else:
            route = "underwriter_review"
        expected[route] += 1
        matrix[(route, "approved" if row["approve"] == "1" else "rejected")] += 1
    assert sum(expected.values()) == 1989
    assert {r["route"]: r["count"] for r in result["routes"]} == dict(expected)
    comparison = result["comparison"]
    assert {(route, label): n for route, counts in comparison["matrix"].items() for label, n in counts.items()} == dict(matrix)
    agreed = matrix[("auto_approved", "approved")] + matrix[("underwriter_review", "approved")] + matrix[("risk_review", "rejected")]
    assert (comparison["compared"], comparison["agreed"]) == (1989, agreed)
    assert result["rows_with_issues"] == 0
    assert all(rule["row_rows"] == 0 and rule["mode"] in ("exact", "native") for rule in result["rules"])
    print(f"\nmortgages: {result['rows']} applications in {seconds:.2f} s; routes {dict(expected)}; "
          f"agreement {comparison['agreement_pct']} %")
    assert seconds < 30

    summaries = _sql_equals_rows(engine, bundle["process"], bundle["form"], path, mapping)
    assert [summary["mode"] for summary in summaries] == ["exact", "native"]


def test_sba_candidate_over_real_loans(bank: Engine) -> None:
    path = data_file(*SBA)
    candidate, mapping = _json("credit_limit_new_lines.json")["process"], _json("sba_loans.mapping.json")
    began = time.perf_counter()
    result = bank.backtest(candidate, data_path=path, mapping=mapping)
    seconds = time.perf_counter() - began

    expected: Counter[str] = Counter()
    statuses: Counter[tuple[str, str]] = Counter()
    for row in read_csv(path):
        amount = Decimal(row["GrAppv"].replace(",", "").replace("$", ""))
        route = "approved" if amount <= 150000 else "risk_countersign" if amount > 1000000 else "manager_review"
        expected[route] += 1
        statuses[(route, {"P I F": "paid_in_full", "CHGOFF": "charged_off"}[row["MIS_Status"]])] += 1
    assert sum(expected.values()) == 2101
    assert {r["route"]: r["count"] for r in result["routes"]} == dict(expected)
    matrix = result["comparison"]["matrix"]
    assert {(route, label): n for route, counts in matrix.items() for label, n in counts.items()} == dict(statuses)
    rules = {rule["rule"]: rule for rule in result["rules"]}
    risk = rules["/states/triage/transitions/1/when"]
    # The file has no risk rating: `in` over it is left to the row evaluator unless the amount
    # part already decided the `or`.
    assert (risk["mode"], risk["sql_rows"], risk["row_rows"]) == ("native", expected["risk_countersign"],
                                                                  2101 - expected["risk_countersign"])
    print(f"\nSBA: {result['rows']} loans in {seconds:.2f} s; routes {dict(expected)}; "
          f"agreement {result['comparison']['agreement_pct']} %; rows by SQL {result['evaluation']['sql_rows']}, "
          f"row by row {result['evaluation']['row_rows']}")
    assert seconds < 30

    summaries = _sql_equals_rows(bank, candidate, None, path, mapping)
    assert sum(summary["sql"] + summary["rows"] for summary in summaries) == 2 * 2101


def test_pipeline_input_is_what_rules_see() -> None:
    """The mapping converts cells exactly (Decimal, never float): the 0.95 loan-to-price bound
    compares the CSV text, not its double."""
    bundle = _json("mortgage_triage.json")
    from engine.forms.compiler import compile_form

    form, issues = compile_form(bundle["form"], 0, lambda key: False)
    assert form is not None and not issues
    data = run_pipeline(form, {"loan_to_price": Decimal("0.950000001"), "loan_amount": 1, "applicant_income": 1,
                               "debt_ratio": Decimal(1)}).data
    assert data["loan_to_price"] == Decimal("0.950000001")


def test_backtest_over_2101_stored_sba_applications_compares_with_the_routes_taken(engine: Engine) -> None:
    path = data_file(*SBA)
    engine.load_dir(BANK, kinds=("form", "process"))
    assert engine.run_import("customer", path, BANK / "imports" / "sba_customers.json").imported == 2101
    assert engine.run_import("credit_limit_adjustment", path, BANK / "imports" / "sba_credit_applications.json").imported == 2101
    published = _json("../processes/credit_limit_adjustment.json")
    began = time.perf_counter()
    same = engine.backtest(published)
    seconds = time.perf_counter() - began
    # Imported new lines have no increase percentage: every instance went to the account manager.
    assert same["comparison"]["matrix"] == {"manager_review": {"manager_review": 2101}}
    assert same["comparison"]["agreement_pct"] == Decimal("100.00")

    candidate = engine.backtest(_json("credit_limit_new_lines.json")["process"])
    amounts = [Decimal(row["GrAppv"]) for row in read_csv(path)]
    small = sum(1 for amount in amounts if amount <= 150000)
    large = sum(1 for amount in amounts if amount > 1000000)
    assert candidate["comparison"]["matrix"] == {
        "approved": {"manager_review": small}, "manager_review": {"manager_review": 2101 - small - large},
        "risk_countersign": {"manager_review": large}}
    assert candidate["comparison"]["agreed"] == 2101 - small - large
    print(f"\nSBA stored: 2101 records backtested in {seconds:.2f} s (published process, agreement 100 %); "
          f"candidate would auto-approve {small}")
    assert seconds < 30

"""Rule evaluation benchmark: the engine's compiled rules (``engine.rules.compile_rule`` →
``CompiledRule.evaluate``) against raw datalogic-py on the same rules and the same data, in one
run, interleaved.

    .venv/bin/python benchmarks/rule_eval.py [--evaluations 20000] [--rounds 5]

The rules: every rule of the bank's definitions (``examples/bank``: computed fields, validation
rules, visibleWhen / requiredWhen conditions, process transition conditions), found by walking
the JSON files, plus a few typical rules of other shapes (membership, missing fields, string
building, a banding ``if``, iterations over an array of items).

engine: ``CompiledRule.evaluate(data)`` with ``data`` as the engine holds a record (parsed with
exact decimals: amounts are ``Decimal``). That is what a form submission or a process step calls:
the decimal evaluator for rules built from arithmetic and comparisons, iterations over an array
included (falling back to the native core when a value is outside what it decides), otherwise the
native core after converting the fields the rule reads to plain JSON, and the result converted
back.

raw: ``datalogic_py.Engine().compile(rule)`` once, then ``.evaluate(data)`` with ``data`` parsed
by ``json.loads`` (floats), i.e. the library alone.

Both sides get the same data records in the same order; the answers are checked to agree
(numerically, for numbers). Per rule, --rounds pairs of timed loops of --evaluations each,
alternating which side goes first. The ratio is engine evaluations/s over raw evaluations/s
(goal >= 0.5x).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import datalogic_py  # noqa: E402

from _machine import describe  # noqa: E402
from engine.jsoncodec import loads  # noqa: E402
from engine.rules import compile_rule  # noqa: E402

BANK = REPO / "examples" / "bank"
_RULE_KEYS = ("rule", "when", "visibleWhen", "requiredWhen")

CREDIT = [
    '{"customer_id": "c-1", "current_limit": 1000000.00, "requested_limit": 1050000.00, "increase_pct": 5.00, "risk_rating": "low"}',
    '{"customer_id": "c-2", "current_limit": 800000.00, "requested_limit": 1600000.00, "increase_pct": 100.00, "risk_rating": "medium", "reason": "New production line"}',
    '{"customer_id": "c-3", "current_limit": 0.00, "requested_limit": 300000.00, "risk_rating": "high", "reason": "First credit line"}',
]
COMPLAINT = [
    '{"channel": "Web", "product": "Mortgage", "received_on": "2024-03-04", "handled_on": "2024-03-06", "timely": true, "satisfaction": 8}',
    '{"channel": "Phone", "product": "Credit card", "received_on": "2024-05-17"}',
]
TYPICAL = [
    '{"company_name": "ACME TRADING LLC", "city": "FRESNO", "region": "CA", "employees": 120, "customer_id": "c-9", '
    '"items": [' + ", ".join(f'{{"sku": "S{n}", "amount": {n * 137.25:.2f}}}' for n in range(10)) + "]}",
    '{"company_name": "SMALL SHOP", "city": "IRVINE", "region": "OR", "employees": 12, '
    '"items": [' + ", ".join(f'{{"sku": "T{n}", "amount": {n * 11.5:.2f}}}' for n in range(4)) + "]}",
]
TYPICAL_RULES: dict[str, Any] = {
    "membership (in a list)": {"in": [{"var": "region"}, ["CA", "NY", "TX", "WA"]]},
    "missing fields": {"missing": ["customer_id", "reason", "company_name"]},
    "string building (cat)": {"cat": [{"var": "company_name"}, " / ", {"var": "city"}]},
    "banding (if / >=)": {"if": [{">=": [{"var": "employees"}, 500]}, "large",
                                 {">=": [{"var": "employees"}, 50]}, "medium", "small"]},
    "some item over 1000": {"some": [{"var": "items"}, {">": [{"var": "amount"}, 1000]}]},
    "sum of item amounts (reduce)": {"reduce": [{"var": "items"}, {"+": [{"var": "current.amount"}, {"var": "accumulator"}]}, 0]},
}


def bank_rules() -> list[tuple[str, Any, list[str]]]:
    """(label, rule, data texts) for every rule in examples/bank's forms and processes."""
    found: list[tuple[str, Any, list[str]]] = []

    def walk(node: Any, where: str, data: list[str]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _RULE_KEYS and isinstance(value, (dict, list)):
                    found.append((f"{where}/{key}", value, data))
                else:
                    walk(value, f"{where}/{key}", data)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}", data)

    for path in sorted((BANK / "forms").glob("*.json")) + sorted((BANK / "processes").glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        target = document.get("form", document.get("key"))
        data = {"credit_limit_adjustment": CREDIT, "complaint": COMPLAINT}.get(target)
        if data is None:
            continue
        walk({key: value for key, value in document.items() if key in ("computed", "rules", "conditions", "states")},
             f"{path.parent.name}/{path.stem}", data)
    return found


def same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same, a, b))
    return bool(a == b)


def timed(action: Callable[[Any], Any], inputs: list[Any], evaluations: int) -> float:
    count = len(inputs)
    start = time.perf_counter()
    for index in range(evaluations):
        action(inputs[index % count])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluations", type=int, default=20_000, help="evaluations per timed loop")
    parser.add_argument("--rounds", type=int, default=5, help="timed loop pairs per rule, interleaved")
    args, _ignored = parser.parse_known_args()  # run_all.sh passes every script the same extra arguments

    facts = describe(datalogic_py=_version("datalogic-py"))
    raw_engine = datalogic_py.Engine()
    cases = bank_rules() + [(f"typical: {label}", rule, TYPICAL) for label, rule in TYPICAL_RULES.items()]
    rows = []
    for label, rule, texts in cases:
        compiled, issues = compile_rule(rule, "")
        assert compiled is not None, (label, issues)
        raw = raw_engine.compile(rule)
        exact_inputs = [loads(text) for text in texts]
        float_inputs = [json.loads(text) for text in texts]
        for exact, plain in zip(exact_inputs, float_inputs):
            ours, theirs = compiled.evaluate(exact), raw.evaluate(plain)
            assert same(ours, theirs), (label, ours, theirs)
        engine_seconds = raw_seconds = 0.0
        for round_number in range(args.rounds):
            if round_number % 2 == 0:
                engine_seconds += timed(compiled.evaluate, exact_inputs, args.evaluations)
                raw_seconds += timed(raw.evaluate, float_inputs, args.evaluations)
            else:
                raw_seconds += timed(raw.evaluate, float_inputs, args.evaluations)
                engine_seconds += timed(compiled.evaluate, exact_inputs, args.evaluations)
        total = args.evaluations * args.rounds
        rows.append({"label": label, "path": "decimal" if compiled.decimal else "native",
                     "engine": total / engine_seconds, "raw": total / raw_seconds,
                     "engine_s": engine_seconds, "raw_s": raw_seconds})

    print("# Rule evaluation: engine (CompiledRule.evaluate) vs raw datalogic-py")
    for name, value in facts.items():
        print(f"- {name}: {value}")
    print(f"- {len(rows)} rules; per rule {args.rounds} x {args.evaluations:,} evaluations per side, interleaved")
    print()
    print("| rule | engine path | engine evals/s | raw datalogic-py evals/s | engine / raw |")
    print("| --- | --- | ---: | ---: | ---: |")
    for item in rows:
        print(f"| {item['label']} | {item['path']} | {item['engine']:,.0f} | {item['raw']:,.0f} | "
              f"{item['engine'] / item['raw']:.2f}x |")
    engine_total = sum(item["engine_s"] for item in rows)
    raw_total = sum(item["raw_s"] for item in rows)
    geomean = math.exp(sum(math.log(item["engine"] / item["raw"]) for item in rows) / len(rows))
    bank = [item for item in rows if not item["label"].startswith("typical")]
    bank_ratio = sum(item["raw_s"] for item in bank) / sum(item["engine_s"] for item in bank)
    print()
    print(f"- all rules, same number of evaluations each: engine / raw = {raw_total / engine_total:.2f}x "
          f"(geometric mean of the per-rule ratios {geomean:.2f}x)")
    print(f"- the bank's rules alone: {bank_ratio:.2f}x")
    print(f"- goal >= 0.5x: {'met' if raw_total / engine_total >= 0.5 else 'NOT met'} overall; "
          f"rules under 0.5x: {sum(1 for item in rows if item['engine'] / item['raw'] < 0.5)} of {len(rows)}")


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()

"""Same verdict in the browser: AJV 8 (``ajv/dist/2020`` + ``ajv-formats``, as a frontend would
run it) and the server agree on accept/reject wherever the JSON Schema alone decides.

For every bank form (and one edge form uploaded here for the pattern and format semantics the
bank forms do not use), the schema is the one a frontend gets: ``GET /forms/{key}/schema``. The
inputs are hand-written edge cases, probes generated from that schema, and every row of the real
imports as their mappings convert it.

The server's verdict is ``POST /forms/{key}/evaluate`` (the submission pipeline, storing
nothing; the real rows go through ``Engine.evaluate``, the same pipeline without HTTP), keeping
only the errors that come from the schema: not ``record.scale`` (x-decimal), rules, refs,
computed fields, nor a ``record.required`` raised by ``requiredWhen``. Two comparisons:

* every evaluated input: AJV on the instance the server validated (``data`` of the response:
  empty values dropped, hidden fields cleared, computed fields set) must give the server's
  schema verdict. This is "the same schema, the same instance, the same verdict";
* schema-only inputs (nothing the server alone decides changed the instance or the verdict):
  AJV on the input itself, after the documented empty-value normalization (``""`` and ``null``
  dropped), must give the server's *final* verdict: there the browser can know the answer.

A disagreement fails the test unless ``ajv_exclusions.json`` lists it with its reason; a listed
disagreement that no longer happens fails it too, so the list stays true.
"""
from __future__ import annotations

import fnmatch
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from agreement_corpus import EDGE_FORM, REAL_SOURCES, generated_cases, hand_cases, real_rows
from browser_support import (
    AGREEMENT,
    EXCLUSIONS_FILE,
    AgreementTally,
    Case,
    ServerResult,
    ajv_verdicts,
    schema_errors,
    server_only_reasons,
)

from engine import Engine
from engine.errors import EngineError
from engine.forms.compiler import build_validator
from engine.forms.pipeline import drop_empty
from engine.forms.pipeline import run as run_pipeline
from engine.forms.spec import FormSpec
from engine.jsoncodec import check_document, dumps
from tests.conftest import PG_URL, SHARED_DATA

BANK_FORMS = ("customer", "credit_limit_adjustment", "complaint")


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _evaluate_http(client: Any, case: Case) -> ServerResult:
    response = client.post(f"/api/v1/forms/{case.form}/evaluate", content=case.text().encode("utf-8", "surrogatepass"),
                           headers={"Content-Type": "application/json"})
    body = json.loads(response.text, parse_float=Decimal)
    if response.status_code != 200:
        return ServerResult(response.status_code, None, body.get("errors", []), {}, {})
    return ServerResult(200, body["data"], body["errors"], body["visible"], body["required"])


def _evaluate_spec(spec: FormSpec, case: Case) -> ServerResult:
    """What ``Engine.evaluate`` does, with the form's compiled spec looked up once."""
    try:
        check_document(case.data)
    except EngineError as exc:
        return ServerResult(exc.status, None, [{"path": "", "code": getattr(exc, "code", type(exc).__name__)}], {}, {})
    outcome = run_pipeline(spec, case.data)
    return ServerResult(200, outcome.data, [issue.to_dict("en") for issue in outcome.issues], outcome.visible,
                        outcome.required)


def _browser_instance(case: Case) -> Any:
    """The input as a browser form would validate it: parsed, "" and null dropped."""
    try:
        value = json.loads(case.text(), parse_float=Decimal, parse_constant=_no_constant) if case.body else case.data
    except ValueError:
        return None
    return drop_empty(value) if isinstance(value, dict) else value


def _load_exclusions() -> list[dict[str, str]]:
    document = json.loads(EXCLUSIONS_FILE.read_text(encoding="utf-8"))
    categories = document["categories"]
    assert all(isinstance(reason, str) and reason.strip() for reason in categories.values())
    entries: list[dict[str, str]] = document["exclusions"]
    for entry in entries:
        assert entry.get("category") in categories, f"exclusion without a known category (its reason): {entry}"
    return entries


@pytest.mark.skipif(bool(PG_URL), reason="database-independent (evaluate stores nothing): runs in the SQLite pass")
def test_ajv_and_server_agree_where_the_schema_alone_decides(
        bank: Engine, bank_client: Any, node_modules: Any, request: pytest.FixtureRequest) -> None:
    started = time.monotonic()
    upload = bank_client.post("/api/v1/definitions", content=dumps(EDGE_FORM),
                              headers={"Content-Type": "application/json", "X-User": "analyst", "X-Roles": "modeler"})
    assert upload.status_code == 201, upload.text
    served: dict[str, dict[str, Any]] = {}
    computed: dict[str, list[str]] = {}
    for key in (*BANK_FORMS, EDGE_FORM["key"]):
        response = bank_client.get(f"/api/v1/forms/{key}/schema")
        assert response.status_code == 200, response.text
        payload = json.loads(response.text, parse_float=Decimal)
        served[key], computed[key] = payload["schema"], payload["computed"]

    specs = {key: bank.registry.form(key) for key in served}
    # Hand-written cases go through HTTP (their JSON text matters: 1E2, -0, 1e400, NaN); the
    # others through the same pipeline in-process (HTTP would only add the JSON parsing).
    cases: list[Case] = list(hand_cases(served))
    results = [_evaluate_http(bank_client, case) for case in cases]
    for key, schema in served.items():
        generated = list(generated_cases(key, schema))
        cases += generated
        results += [_evaluate_spec(specs[key], case) for case in generated]
    names = [case.name for case in cases]
    duplicates = {name for name in names if names.count(name) > 1}
    assert not duplicates, f"case names must be unique (the exclusions name them): {sorted(duplicates)[:5]}"

    real_missing = []
    for label, form, parts, mapping in REAL_SOURCES:
        path = SHARED_DATA.joinpath(*parts)
        if not path.exists():
            real_missing.append(str(path))
            continue
        rows = list(real_rows(label, form, path, mapping))
        cases += rows
        results += [_evaluate_spec(specs[form], case) for case in rows]

    # AJV, once per form: the browser's instance (input after "" / null dropped) and the
    # instance the server validated.
    batches: dict[str, list[Any]] = {key: [] for key in served}
    slots: list[tuple[int | None, int | None]] = []
    for case, result in zip(cases, results):
        if result.status != 200:
            slots.append((None, None))
            continue
        batch = batches[case.form]
        batch.append(_browser_instance(case))
        batch.append(result.data)
        slots.append((len(batch) - 2, len(batch) - 1))
    ajv = ajv_verdicts([(key, served[key], batches[key]) for key in served])
    for key in served:
        assert ajv["forms"][key]["compileError"] is None, f"AJV cannot compile the served {key} schema: " \
                                                          f"{ajv['forms'][key]['compileError']}"

    tally = AgreementTally(bank_forms=len(BANK_FORMS), ajv=ajv["ajv"])
    disagreements: dict[str, str] = {}
    for case, result, (browser_slot, server_slot) in zip(cases, results, slots):
        schema = served[case.form]
        tally.sources[case.source] += 1
        reasons = server_only_reasons(_browser_instance(case), result, schema, computed[case.form])
        for reason in reasons:
            tally.server_only[reason] += 1
        if browser_slot is None or server_slot is None:
            continue  # refused before validation: nothing for a schema to say
        tally.compared += 1
        tally.forms[case.form] = tally.forms.get(case.form, 0) + 1
        verdicts = ajv["forms"][case.form]["verdicts"]
        on_server_instance, on_browser_instance = verdicts[server_slot], verdicts[browser_slot]
        server_schema_errors = schema_errors(result, schema)
        problems = []
        if on_server_instance["valid"] != (not server_schema_errors):
            problems.append("AJV on the instance the server validated says "
                            f"{_verdict(on_server_instance['valid'])}, the server's schema check says "
                            f"{_verdict(not server_schema_errors)}")
        if not reasons:
            tally.schema_only += 1
            if on_browser_instance["valid"] != (not result.errors):
                problems.append(f"schema-only input: AJV in the browser says {_verdict(on_browser_instance['valid'])}, "
                                f"the server says {_verdict(not result.errors)}")
        if problems:
            rs_valid = build_validator(schema).is_valid(result.data)
            disagreements[case.name] = (
                "; ".join(problems) + f"\n    input: {case.text()[:300]}\n    server errors: {result.errors[:4]}"
                f"\n    AJV errors: {on_server_instance['errors'][:4] or on_browser_instance['errors'][:4]}"
                f"\n    jsonschema-rs on the served schema: {_verdict(rs_valid)}")
        else:
            tally.agreed += 1

    exclusions = _load_exclusions()
    unexplained = {name: text for name, text in disagreements.items()
                   if not any(fnmatch.fnmatchcase(name, entry["case"]) for entry in exclusions)}
    stale = [entry["case"] for entry in exclusions
             if not any(fnmatch.fnmatchcase(name, entry["case"]) for name in disagreements)]
    tally.excluded = len(disagreements) - len(unexplained)
    for name in disagreements.keys() - unexplained.keys():
        entry = next(entry for entry in exclusions if fnmatch.fnmatchcase(name, entry["case"]))
        tally.by_category[entry["category"]] += 1
    tally.seconds = time.monotonic() - started
    request.config.stash[AGREEMENT] = tally
    if real_missing:
        tally.sources["(real data absent: " + ", ".join(real_missing) + ")"] = 0
    message = []
    if unexplained:
        message.append(f"{len(unexplained)} disagreement(s) not listed in {EXCLUSIONS_FILE.name}:\n" + "\n".join(
            f"  {name}: {text}" for name, text in sorted(unexplained.items())))
    if stale:
        message.append(f"listed in {EXCLUSIONS_FILE.name} but no longer disagreeing (remove them): {stale}")
    assert not message, "\n".join(message)


def _verdict(valid: bool) -> str:
    return "valid" if valid else "invalid"

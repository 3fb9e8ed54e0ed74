"""Helpers of the browser-side checks: running the Node scripts of ``tests/js``, reading the
server's verdict on an input, and the tally behind the summary line printed at the end of a run."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.jsoncodec import dumps

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "tests" / "js"
EXCLUSIONS_FILE = Path(__file__).resolve().parent / "ajv_exclusions.json"

SERVER_ONLY_CODES = frozenset({"record.scale", "record.ref_not_found", "record.rule_error", "record.compute_error"})
"""``record.*`` codes that do not come from the JSON Schema. Codes without the ``record.``
prefix are the forms' own cross-field rule codes, server-only too."""


ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip with ``reason``; on CI (``CI=true``) fail instead: there the tool must be there."""
    if ON_CI:
        pytest.fail(f"{reason} (CI=true: .ci/run must provide it)")
    pytest.skip(reason)


def run_node(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``tests/js/<script>`` with Node; fail the test with Node's output if it fails."""
    result = subprocess.run(["node", str(JS_DIR / script), *args], cwd=JS_DIR, capture_output=True, check=False,
                            text=True, timeout=timeout, env={**os.environ, "NODE_NO_WARNINGS": "1"})
    if result.returncode != 0:
        pytest.fail(f"node {script} failed (exit {result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def ajv_verdicts(forms: list[tuple[str, Mapping[str, Any], list[Any]]]) -> dict[str, Any]:
    """AJV's verdict on each instance: ``{form: {"compileError", "verdicts": [{valid, errors}]}}``.

    Instances may hold ``Decimal``: they are written as JSON numbers, which Node reads as doubles,
    as a browser does."""
    with tempfile.TemporaryDirectory(prefix="lowcode-ajv-") as tmp:
        source, target = Path(tmp) / "in.json", Path(tmp) / "out.json"
        payload = {"forms": [{"key": key, "schema": schema, "instances": instances}
                             for key, schema, instances in forms]}
        source.write_text(dumps(payload), encoding="utf-8")
        run_node("ajv_verdicts.mjs", str(source), str(target))
        result: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    return result


@dataclass(frozen=True)
class Case:
    """One input to a form."""

    form: str
    name: str
    """Stable and unique: the exclusions file names cases by it (shell-style patterns allowed)."""
    source: str
    """``hand`` (written for a semantic edge), ``generated`` (from the served schema), or the
    real file a row came from."""
    data: Any = None
    body: str | None = None
    """The exact JSON text sent to the server, when the text matters (``1E2``, ``-0``, ``1e400``)."""

    def text(self) -> str:
        return self.body if self.body is not None else dumps(self.data)

    def value(self) -> Any:
        return json.loads(self.text(), parse_float=Decimal) if self.body is not None else self.data


@dataclass(frozen=True)
class ServerResult:
    """What ``POST /forms/{key}/evaluate`` (or ``Engine.evaluate``) said about one input."""

    status: int
    data: Any
    errors: list[dict[str, Any]]
    visible: Mapping[str, bool]
    required: Mapping[str, bool]


def schema_errors(result: ServerResult, schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The server's errors that come from the JSON Schema alone: not the decimal scale, not
    rules, refs or computed fields, and not ``record.required`` raised by a ``requiredWhen``."""
    required = set(schema.get("required", []))
    kept = []
    for error in result.errors:
        code = str(error["code"])
        if not code.startswith("record.") or code in SERVER_ONLY_CODES:
            continue
        if code == "record.required":
            name = str(error["path"])[1:]
            if "/" not in name and result.required.get(name) and name not in required:
                continue
        kept.append(error)
    return kept


def server_only_reasons(case_input: Any, result: ServerResult, schema: Mapping[str, Any],
                        computed: list[str]) -> list[str]:
    """Why the server's final verdict on this input is not the schema's alone (empty: it is)."""
    if result.status != 200:
        codes = ",".join(sorted({str(error["code"]) for error in result.errors}))
        return [f"request refused before validation ({codes})"]
    reasons = []
    codes = [str(error["code"]) for error in result.errors]
    if "record.scale" in codes:
        reasons.append("decimal scale (x-decimal)")
    if any(not code.startswith("record.") or code == "record.rule_error" for code in codes):
        reasons.append("cross-field rule")
    if "record.compute_error" in codes:
        reasons.append("computed field could not be computed")
    if "record.ref_not_found" in codes:
        reasons.append("reference")
    schema_kept = schema_errors(result, schema)
    if sum(error["code"] == "record.required" for error in result.errors) > \
            sum(error["code"] == "record.required" for error in schema_kept):
        reasons.append("requiredWhen")
    if isinstance(case_input, Mapping):
        if any(name in case_input for name in computed):
            reasons.append("client-sent computed value replaced")
        if any(not shown and name in case_input for name, shown in result.visible.items()):
            reasons.append("hidden field cleared (visibleWhen)")
    return reasons


@dataclass
class AgreementTally:
    forms: dict[str, int] = field(default_factory=dict)
    """Inputs compared, per form."""
    compared: int = 0
    agreed: int = 0
    schema_only: int = 0
    excluded: int = 0
    server_only: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)
    """Listed disagreements per category of the exclusions file."""
    bank_forms: int = 0
    ajv: str = ""
    seconds: float = 0.0


AGREEMENT = pytest.StashKey[AgreementTally]()


def summary_lines(tally: AgreementTally) -> Iterator[str]:
    extra = len(tally.forms) - tally.bank_forms
    forms = f"{tally.bank_forms} bank forms" + (f" + {extra} edge form" if extra else "")
    yield (f"AJV agreement: {tally.agreed}/{tally.compared} inputs agree across {forms} "
           f"({tally.schema_only} schema-only cases; {tally.excluded} listed disagreements; "
           f"AJV {tally.ajv}; {tally.seconds:.1f}s)")
    if tally.by_category:
        yield "  listed disagreements: " + ", ".join(
            f"{category} {count}" for category, count in sorted(tally.by_category.items()))
    yield "  inputs: " + ", ".join(f"{name} {count}" for name, count in sorted(tally.sources.items()))
    if tally.server_only:
        yield "  decided by the server only: " + ", ".join(
            f"{reason} {count}" for reason, count in sorted(tally.server_only.items()))

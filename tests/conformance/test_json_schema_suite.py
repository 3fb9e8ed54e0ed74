"""JSON-Schema-Test-Suite, draft 2020-12, through the engine's validator factory.

Every test of every file runs through :func:`engine.forms.compiler.build_validator` (the same
jsonschema-rs validator a form gets: formats asserted, offline), with the data parsed the way
the engine parses records (``Decimal`` for fractions). The files directly in ``draft2020-12/``
are required; from ``optional/`` the parts the engine promises (``format`` asserted for date,
date-time, email and uri; ECMA-262 patterns as AJV reads them; big and exact numbers) are
required too, the rest is reported. Every deviation is listed, with its reason, in
``exclusions.json``; a listed test that starts to agree fails too, so the list stays true.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from conformance_support import SHARED_DATA, load_exact, load_exclusions, require_data, tally

from engine.forms import compiler as form_compiler
from engine.forms.compiler import build_validator

SUITE = ("json-schema-test-suite", "tests", "draft2020-12")
ROOT = SHARED_DATA.joinpath(*SUITE)

# Optional files whose behaviour the engine promises (issue 3): they must pass like required ones.
ASSERTED_OPTIONAL = frozenset(
    {
        "optional/format/date.json",
        "optional/format/date-time.json",
        "optional/format/email.json",
        "optional/format/uri.json",
        "optional/ecmascript-regex.json",
        "optional/non-bmp-regex.json",
        "optional/bignum.json",
        "optional/float-overflow.json",
    }
)


def _suite_files() -> list[str]:
    if not ROOT.is_dir():
        return ["absent"]
    names = [path.relative_to(ROOT).as_posix() for path in sorted(ROOT.rglob("*.json"))]
    return sorted(names, key=lambda name: (name.count("/"), name))


def _kind(name: str) -> str:
    if "/" not in name:
        return "required"
    return "asserted" if name in ASSERTED_OPTIONAL else "optional"


def _matches(entry: Mapping[str, Any], name: str, group: str, test: str) -> bool:
    return bool(
        entry["file"] == name
        and entry.get("group", group) == group
        and entry.get("test", test) == test
    )


@pytest.mark.parametrize("name", _suite_files())
def test_json_schema_test_suite(name: str, tallies: dict[str, Any]) -> None:
    require_data(*SUITE)
    require_data(*SUITE, name)
    document = load_exclusions()["json-schema-test-suite"]
    entries = [entry for entry in document["exclusions"] if entry["file"] == name]
    used: set[int] = set()
    kind = _kind(name)
    counts = tally(tallies, f"jsts.{kind}")
    disagreements: list[str] = []
    stale: list[str] = []
    for group in load_exact(ROOT / name):
        schema = group["schema"]
        validator: Any = None
        build_error = ""
        try:
            validator = build_validator(schema)
        except Exception as exc:  # noqa: BLE001 - a refused schema is a verdict to compare
            build_error = str(exc).splitlines()[0][:120]
        for case in group["tests"]:
            counts.total += 1
            where = f"{group['description']!r} / {case['description']!r}"
            if validator is None:
                agrees, got = False, f"schema refused: {build_error}"
            else:
                try:
                    valid = bool(validator.is_valid(case["data"]))
                    agrees, got = valid == case["valid"], f"valid={valid}"
                except Exception as exc:  # noqa: BLE001
                    agrees, got = False, f"raised {type(exc).__name__}: {str(exc)[:120]}"
            hits = [
                index for index, entry in enumerate(entries)
                if _matches(entry, name, group["description"], case["description"])
            ]
            if hits:
                used.update(hits)
                counts.exclude(entries[hits[0]]["category"])
                if agrees:
                    stale.append(where)
                continue
            if agrees:
                counts.passed += 1
            else:
                counts.failed += 1
                disagreements.append(f"{where}: expected valid={case['valid']}, got {got}")
    unused = [entries[index] for index in range(len(entries)) if index not in used]
    problems = []
    if disagreements:
        problems.append(f"{len(disagreements)} test(s) disagree:\n  " + "\n  ".join(disagreements))
    if stale and kind != "optional":
        problems.append(
            "listed in exclusions.json but now agree (remove them):\n  " + "\n  ".join(stale)
        )
    if unused:
        problems.append(f"exclusions.json entries that match no test: {unused}")
    if problems and (kind != "optional" or unused):
        pytest.fail(f"{name}: " + "\n".join(problems), pytrace=False)


def test_remote_ref_exclusions_are_refused_at_upload() -> None:
    """The `remote-ref` exclusions are not silent gaps: the upload check refuses those schemas
    (definition.remote_ref) before any validator is built."""
    require_data(*SUITE)
    check = getattr(form_compiler, "_check_schema", None)
    if check is None:
        pytest.skip("engine.forms.compiler._check_schema is gone: verify the upload refusal elsewhere")
    document = load_exclusions()["json-schema-test-suite"]
    not_refused = []
    for entry in document["exclusions"]:
        if entry["category"] != "remote-ref":
            continue
        for group in load_exact(ROOT / entry["file"]):
            if entry.get("group", group["description"]) != group["description"]:
                continue
            codes = {issue.code for issue in check(group["schema"])}
            if "definition.remote_ref" not in codes:
                not_refused.append(f"{entry['file']}: {group['description']}")
    assert not not_refused, f"remote-ref exclusions the upload check accepts: {not_refused}"

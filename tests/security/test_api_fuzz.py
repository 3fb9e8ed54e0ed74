"""API fuzzing: schemathesis over the whole OpenAPI document of the bank app, once per bank
role (``examples/bank/roles.json``; the development identities when it is absent), each caller
authenticated by an API token of its own (by ``X-User``/``X-Roles`` before tokens existed).

Each operation gets valid input (by its documented schema) for every role, and invalid input
(negative mode) for one role (admin): the refusal of invalid input does not depend on the caller.
Checks on every response: no server error (5xx), the status code is one the operation documents,
the body matches the documented schema for it, and the content type is a documented one.
Bounded for CI: ``LOWCODE_FUZZ_EXAMPLES`` examples per operation, role and mode (default 4), so
the whole run stays within a couple of minutes on two cores. Every failure is collected (not
only the first) and the figures are printed per role (``-s``).
"""
from __future__ import annotations

import json
import os
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the test extra (pip install -e .[test])")
from schemathesis import GenerationMode  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

from tests.conftest import BANK  # noqa: E402

EXAMPLES = int(os.environ.get("LOWCODE_FUZZ_EXAMPLES") or 4)
"""Examples per operation, role and mode (valid input, and input the document says is invalid)."""
DEV_IDENTITIES = {"modeler": ["modeler"], "staff": ["account_manager", "risk_officer"], "anonymous": []}


def _roles() -> dict[str, list[str]]:
    path = BANK / "roles.json"
    if not path.exists():
        return DEV_IDENTITIES
    return {role: [role] for role in json.loads(path.read_text("utf-8"))["roles"]}


ROLES = _roles()
NEGATIVE_ROLE = "admin" if "admin" in ROLES else sorted(ROLES)[0]
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.response_schema_conformance, schemathesis.checks.content_type_conformance]


@pytest.fixture(scope="module")
def fuzz_app(shared_bank: Any, shared_customer_id: str) -> Any:
    from engine.api.app import create_app

    return create_app(shared_bank)


@pytest.fixture(scope="module")
def credentials(shared_bank: Any) -> dict[str, dict[str, str]]:
    """Request headers per role: a bearer API token when the engine issues them."""
    headers: dict[str, dict[str, str]] = {}
    for name, roles in ROLES.items():
        if hasattr(shared_bank, "create_token"):
            token = shared_bank.create_token(f"fuzz-{name}", roles).token
            headers[name] = {"Authorization": f"Bearer {token}"}
        else:
            headers[name] = {"X-User": f"fuzz-{name}", **({"X-Roles": ",".join(roles)} if roles else {})}
    return headers


@pytest.fixture(scope="module")
def api_schema(fuzz_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


FIGURES: dict[str, int] = {"operations": 0, "examples": 0, "failures": 0, "no_negative": 0}


def _fuzz_operation(operation: Any, mode: Any, headers: dict[str, str], failures: list[str]) -> None:
    seen: set[str] = set()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case: Any) -> None:
        FIGURES["examples"] += 1
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        except BaseException as exc:  # noqa: BLE001 - every check failure is collected, not only the first
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            message = f"{operation.label}: {type(exc).__name__}: {str(exc).strip()[:600]}"
            if message not in seen:
                seen.add(message)
                failures.append(message)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        FIGURES["no_negative"] += 1  # nothing in its input can be made invalid (no parameters, no body)


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_operation_answers_as_documented(api_schema: Any, credentials: dict[str, dict[str, str]], role: str) -> None:
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        # invalid input is refused the same whatever the caller: tried with one role (time)
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if role == NEGATIVE_ROLE else (GenerationMode.POSITIVE,)
        for mode in modes:
            _fuzz_operation(operation, mode, credentials[role], failures)
    FIGURES["operations"] = operations
    FIGURES["failures"] += len(failures)
    print(f"fuzz {role}: {operations} operations, {FIGURES['examples']} examples so far, {len(failures)} failures")
    assert not failures, "\n\n".join(failures)

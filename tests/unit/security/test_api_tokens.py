"""API tokens: what a token may be created with, expiry texts, and the command line."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from engine import Engine
from engine.errors import BadRequest, NotFound, Unauthenticated
from engine.security.tokens import parse_expiry

NOW = datetime(2026, 1, 5, 1, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("text", "expected"), [
    ("never", None), ("NEVER", None), ("90m", NOW + timedelta(minutes=90)), ("12h", NOW + timedelta(hours=12)),
    ("30d", NOW + timedelta(days=30)), ("2w", NOW + timedelta(weeks=2)),
    ("2026-02-01", datetime(2026, 2, 1, tzinfo=timezone.utc)),
    ("2026-02-01T08:00:00+08:00", datetime(2026, 2, 1, 0, 0, tzinfo=timezone.utc)),
    ("2026-02-01T00:00:00Z", datetime(2026, 2, 1, tzinfo=timezone.utc)),
])
def test_expiry_texts(text: str, expected: datetime | None) -> None:
    assert parse_expiry(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "5x", "-3d", "1.5d", "2026-02-01T00:00:00", "tomorrow", "١٢h", "99999999d"])
def test_bad_expiry_texts(text: str) -> None:
    with pytest.raises(BadRequest) as refusal:
        parse_expiry(text, NOW)
    assert refusal.value.code == "token.bad_expiry"


@pytest.mark.parametrize(("user", "roles", "attributes", "expires", "code"), [
    ("", [], {}, None, "token.bad_user"), (" admin", [], {}, None, "token.bad_user"),
    ("a" * 129, [], {}, None, "token.bad_user"), ("ad\nmin", [], {}, None, "token.bad_user"),
    ("u", ["ad min"], {}, None, "token.bad_role"), ("u", ["a,b"], {}, None, "token.bad_role"),
    ("u", [], {"1x": "v"}, None, "token.bad_attribute"), ("u", [], {"k": "v" * 257}, None, "token.bad_attribute"),
    ("u", [], {}, timedelta(seconds=-1), "token.bad_expiry"), ("u", [], {}, timedelta(0), "token.bad_expiry"),
    ("u", [], {}, timedelta(days=3651), "token.bad_expiry"),
])
def test_what_a_token_cannot_be_created_with(engine: Engine, user: str, roles: list[str], attributes: dict[str, str],
                                             expires: timedelta | None, code: str) -> None:
    expires_at = None if expires is None else engine.clock.now() + expires
    with pytest.raises(BadRequest) as refusal:
        engine.create_token(user, roles, attributes, expires_at=expires_at)
    assert refusal.value.code == code
    assert engine.tokens() == []


def test_tokens_are_distinct_and_revoking_an_unknown_id_is_404(engine: Engine) -> None:
    issued = {engine.create_token("u", []).token for _ in range(20)}
    assert len(issued) == 20
    with pytest.raises(NotFound):
        engine.revoke_token("tok_nope")
    with pytest.raises(NotFound):
        engine.revoke_token("x" * 500)


def test_authenticate_without_a_header_and_without_trust_is_auth_required(engine: Engine) -> None:
    from dataclasses import replace

    engine.settings = replace(engine.settings, trust_identity_headers=False)
    with pytest.raises(Unauthenticated) as refusal:
        engine.authenticate(None)
    assert (refusal.value.code, refusal.value.status) == ("auth.required", 401)


def test_the_command_line_creates_lists_and_revokes(engine: Engine) -> None:
    from engine.cli import app

    runner = CliRunner()
    url = engine.db.url
    created = runner.invoke(app, ["tokens", "create", "--user", "ops-1", "--roles", "admin, auditor", "--attr",
                                  "region=east", "--expires", "7d", "--note", "on call", "--database-url", url])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    assert token.startswith("lct_") and len(token) == 47
    principal = engine.authenticate(f"Bearer {token}")
    assert (principal.id, principal.roles, dict(principal.attributes)) == ("ops-1", frozenset({"admin", "auditor"}),
                                                                            {"region": "east"})
    listed = runner.invoke(app, ["tokens", "list", "--json", "--database-url", url])
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["user"], row["roles"], row["note"], row["revoked_at"]) == ("ops-1", ["admin", "auditor"], "on call", None)
    assert token not in listed.stdout
    revoked = runner.invoke(app, ["tokens", "revoke", row["id"], "--database-url", url])
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(Unauthenticated) as refusal:
        engine.authenticate(f"Bearer {token}")
    assert refusal.value.code == "auth.token_revoked"
    missing = runner.invoke(app, ["tokens", "revoke", "tok_nope", "--database-url", url])
    assert missing.exit_code == 2 and "token.not_found" in missing.output
    bad = runner.invoke(app, ["tokens", "create", "--user", "u", "--attr", "novalue", "--database-url", url])
    assert bad.exit_code == 2 and "token.bad_attribute" in bad.output


def test_creating_a_token_with_a_role_no_roles_definition_names_warns(engine: Engine) -> None:
    from engine.cli import app

    url = engine.db.url
    runner = CliRunner()
    before = runner.invoke(app, ["tokens", "create", "--user", "u", "--roles", "nosuchrole", "--database-url", url])
    assert before.exit_code == 0 and "warning" not in before.stderr  # no roles definition: nothing to check against
    engine.upload({"kind": "roles", "key": "staff", "title": "Staff", "roles": {"auditor": {"may": ["audit.read"]}}})
    typo = runner.invoke(app, ["tokens", "create", "--user", "u", "--roles", "auditor,nosuchrole", "--database-url", url])
    assert typo.exit_code == 0, typo.output
    assert "warning: role(s) nosuchrole are not in the loaded roles definition (known: auditor)" in " ".join(typo.stderr.split())
    fine = runner.invoke(app, ["tokens", "create", "--user", "u", "--roles", "auditor", "--database-url", url])
    assert fine.exit_code == 0 and "warning" not in fine.stderr

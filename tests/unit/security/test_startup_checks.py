"""Production mode refuses to start with unsafe authentication settings; development starts."""
from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from engine.config import Settings
from engine.security.jwt import JWTSettings
from engine.security.startup import DEVELOPMENT_SECRET, startup_issues

GOOD_SECRET = "Zq8-vX2_pL5mN9rT3wY7bC1dF4gH6jK0sA"
BASE = Settings(mode="production", jwt=JWTSettings(secret=GOOD_SECRET))


def codes(settings: Settings) -> list[str]:
    return [issue.code for issue in startup_issues(settings)]


def public_pem(key: object) -> str:
    return key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_a_safe_production_configuration_starts() -> None:
    assert codes(BASE) == []
    assert codes(replace(BASE, jwt=JWTSettings(algorithm="off"))) == []  # API tokens only, said explicitly
    assert codes(replace(BASE, trust_identity_headers=True, trust_identity_headers_acknowledged=True)) == []


@pytest.mark.parametrize(("secret", "code"), [
    (None, "startup.jwt_secret_missing"), ("", "startup.jwt_secret_missing"),
    ("changeme", "startup.jwt_secret_default"), ("SECRET", "startup.jwt_secret_default"),
    ("your-256-bit-secret", "startup.jwt_secret_default"), (DEVELOPMENT_SECRET, "startup.jwt_secret_default"),
    ("short-but-random-Q7x", "startup.jwt_secret_weak"), ("a" * 64, "startup.jwt_secret_weak"),
    ("abababababababababababababababab", "startup.jwt_secret_weak"),
])
def test_production_refuses_a_missing_default_or_weak_secret(secret: str | None, code: str) -> None:
    assert codes(replace(BASE, jwt=JWTSettings(secret=secret))) == [code]


def test_development_starts_without_a_secret_and_with_trusted_headers() -> None:
    development = Settings(jwt=JWTSettings(secret=None), trust_identity_headers=True)
    assert codes(development) == []
    assert codes(replace(development, jwt=JWTSettings(secret="changeme"))) == []


def test_production_refuses_trusted_headers_unless_acknowledged() -> None:
    assert codes(replace(BASE, trust_identity_headers=True)) == ["startup.trusted_headers_unacknowledged"]


def test_rs256_needs_a_usable_rsa_public_key() -> None:
    rs256 = replace(BASE, jwt=JWTSettings(algorithm="RS256"))
    assert codes(rs256) == ["startup.jwt_key_missing"]
    good = public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert codes(replace(rs256, jwt=JWTSettings(algorithm="RS256", public_key=good))) == []
    small = public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    elliptic = public_pem(ec.generate_private_key(ec.SECP256R1()))
    for key in (small, elliptic, "not a key"):
        for mode in ("production", "development"):  # a broken key is refused in any mode
            settings = replace(rs256, mode=mode, jwt=JWTSettings(algorithm="RS256", public_key=key))
            assert codes(settings) == ["startup.jwt_key_invalid"], (key[:30], mode)


def test_unknown_modes_and_algorithms_are_refused() -> None:
    assert codes(replace(BASE, mode="prod")) == ["startup.unknown_mode"]
    assert replace(BASE, mode="prod").production  # and a misspelt mode is treated as production
    assert codes(replace(BASE, mode="development", jwt=JWTSettings(algorithm="HS512"))) == [
        "startup.jwt_algorithm_unsupported"]


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    key_file = tmp_path / "secret.txt"
    key_file.write_text(GOOD_SECRET + "\n")
    for name, value in {"LOWCODE_MODE": " Production ", "LOWCODE_JWT_ALGORITHM": "hs256",
                        "LOWCODE_JWT_SECRET_FILE": str(key_file), "LOWCODE_JWT_ISSUER": "https://idp",
                        "LOWCODE_TRUST_IDENTITY_HEADERS": "yes", "LOWCODE_JWT_LEEWAY_SECONDS": "5",
                        "LOWCODE_JWT_ATTRIBUTE_CLAIMS": "branch, desk,"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert (settings.mode, settings.jwt.algorithm, settings.jwt.secret, settings.jwt.issuer, settings.jwt.leeway_seconds) == (
        "production", "HS256", GOOD_SECRET, "https://idp", 5)
    assert (settings.trust_identity_headers, settings.trust_identity_headers_acknowledged) == (True, False)
    assert settings.jwt.attribute_claims == ("branch", "desk")
    assert GOOD_SECRET not in repr(settings)
    monkeypatch.setenv("LOWCODE_TRUST_IDENTITY_HEADERS", "0")
    assert Settings.from_env().trust_identity_headers is False


@pytest.mark.parametrize("command", [["serve"], ["worker", "--once"]])
def test_serve_and_worker_exit_2_naming_the_problem(command: list[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    from engine.cli import app

    env = {"LOWCODE_MODE": "production", "LOWCODE_JWT_SECRET": "changeme", "LOWCODE_TRUST_IDENTITY_HEADERS": "1",
           "LOWCODE_DATABASE_URL": f"sqlite:///{tmp_path / 'never.db'}"}
    result = CliRunner().invoke(app, command, env=env)
    assert result.exit_code == 2, result.output
    assert "startup.jwt_secret_default" in result.output and "startup.trusted_headers_unacknowledged" in result.output
    assert not (tmp_path / "never.db").exists()  # refused before touching the database

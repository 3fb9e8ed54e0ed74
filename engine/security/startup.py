"""What the authentication settings must be before ``lowcode serve`` or ``lowcode worker``
start (and before :func:`engine.api.app.create_app` builds an app).

In any mode: ``LOWCODE_MODE`` is ``development`` or ``production``; the JWT algorithm is one
the engine knows; a configured RS256 key is an RSA public key of at least 2048 bits.

In production mode (``LOWCODE_MODE=production``) also:

- JWT on (the default, HS256): a secret of at least 32 bytes with at least 10 different
  characters that is not a known placeholder (``secret``, ``changeme``, jwt.io's example, the
  README's development value, ...). RS256: a public key. Deployments that use API tokens only
  say so with ``LOWCODE_JWT_ALGORITHM=off``;
- ``LOWCODE_TRUST_IDENTITY_HEADERS=1`` only together with
  ``LOWCODE_TRUST_IDENTITY_HEADERS_ACKNOWLEDGED=1``: with trusted headers anyone who can reach
  the engine past the gateway can claim any user, so the operator states that only the gateway
  can (network policy, mTLS).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import Issue
from engine.security.jwt import ALGORITHMS, OFF, load_public_key

if TYPE_CHECKING:
    from engine.config import Settings

MODES = ("development", "production")
MIN_SECRET_BYTES = 32
MIN_SECRET_VARIETY = 10
DEVELOPMENT_SECRET = "development-only-jwt-secret-do-not-use-in-production"
"""The value the README uses for local experiments; refused in production."""
KNOWN_SECRETS = frozenset({
    "secret", "changeme", "change-me", "change_me", "changeit", "password", "development", "dev", "test",
    "lowcode", "jwt-secret", "jwt_secret", "jwtsecret", "supersecret", "super-secret", "mysecret",
    "your-256-bit-secret", "your-secret-key", "secret-key", "secretkey", "default", DEVELOPMENT_SECRET,
})


class StartupRefused(Exception):
    """The engine must not start with these settings; ``issues`` says why."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(issue.code for issue in issues))


def startup_issues(settings: Settings) -> list[Issue]:
    issues: list[Issue] = []
    if settings.mode not in MODES:
        issues.append(Issue("LOWCODE_MODE", "startup.unknown_mode", {"mode": settings.mode[:32], "expected": ", ".join(MODES)}))
    jwt = settings.jwt
    if jwt.algorithm not in (*ALGORITHMS, OFF):
        issues.append(Issue("LOWCODE_JWT_ALGORITHM", "startup.jwt_algorithm_unsupported",
                            {"algorithm": jwt.algorithm[:32], "expected": ", ".join((*ALGORITHMS, OFF))}))
    if jwt.algorithm == "RS256" and jwt.public_key:
        try:
            load_public_key(jwt.public_key)
        except ValueError as exc:
            issues.append(Issue("LOWCODE_JWT_PUBLIC_KEY", "startup.jwt_key_invalid", {"reason": str(exc)[:120]}))
    if settings.mode == "development":
        return issues
    if jwt.algorithm == "HS256":
        issues.extend(_secret_issues(jwt.secret))
    elif jwt.algorithm == "RS256" and not jwt.public_key:
        issues.append(Issue("LOWCODE_JWT_PUBLIC_KEY", "startup.jwt_key_missing", {}))
    if settings.trust_identity_headers and not settings.trust_identity_headers_acknowledged:
        issues.append(Issue("LOWCODE_TRUST_IDENTITY_HEADERS", "startup.trusted_headers_unacknowledged", {}))
    return issues


def _secret_issues(secret: str | None) -> list[Issue]:
    if not secret:
        return [Issue("LOWCODE_JWT_SECRET", "startup.jwt_secret_missing", {})]
    if secret.strip().lower() in KNOWN_SECRETS:
        return [Issue("LOWCODE_JWT_SECRET", "startup.jwt_secret_default", {})]
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES or len(set(secret)) < MIN_SECRET_VARIETY:
        return [Issue("LOWCODE_JWT_SECRET", "startup.jwt_secret_weak",
                      {"bytes": MIN_SECRET_BYTES, "variety": MIN_SECRET_VARIETY})]
    return []


def check_startup(settings: Settings) -> None:
    issues = startup_issues(settings)
    if issues:
        raise StartupRefused(issues)

"""Who is calling: the principal of a request's headers.

- ``Authorization: Bearer <token>`` (the scheme in any case, RFC 7235): a token starting with
  ``lct_`` is an API token (:mod:`engine.security.tokens`), anything else a JWT
  (:mod:`engine.security.jwt`). Only one ``Authorization`` header may be given.
- Without it, the ``X-User`` / ``X-Roles`` headers name the caller **only** when the deployment
  trusts them (``LOWCODE_TRUST_IDENTITY_HEADERS=1``: behind a gateway that authenticates the
  user and sets those headers itself, removing any the client sent); a request without
  ``X-User`` is then the anonymous principal. Otherwise those headers are ignored.
- Anything else is 401 :class:`Unauthenticated` with a code per reason (see ``CODES``).

Credentials are read from headers only: a ``?token=`` or ``?access_token=`` query parameter is
never looked at (it would end up in access logs and browser histories).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime

from engine.errors import BadRequest, Unauthenticated
from engine.security.jwt import JWTSettings, JWTVerifier
from engine.security.principal import Principal
from engine.security.tokens import PREFIX, TokenStore

CODES = {
    "auth.required": "no credentials",
    "auth.malformed": "the Authorization header is not `Bearer <token>`",
    "auth.unsupported_scheme": "a scheme other than Bearer",
    "auth.multiple_credentials": "more than one Authorization header",
    "auth.token_unknown": "an API token that was never issued",
    "auth.token_revoked": "a revoked API token",
    "auth.token_expired": "an expired API token or JWT",
    "auth.token_not_yet_valid": "a JWT before its nbf",
    "auth.token_invalid": "a JWT that cannot be decoded or whose signature does not verify",
    "auth.token_algorithm": "a JWT of another algorithm than the configured one (none included)",
    "auth.claims_invalid": "a JWT without exp or sub, or with a wrong iss, aud, roles or attributes",
}
"""Every 401 code, with what causes it."""

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 §2.1
MAX_TOKEN_CHARS = 8192
ANONYMOUS = "anonymous"


class Authenticator:
    """Resolves credentials with the engine's current settings (read at each call, so a test
    or an operator that replaces them is obeyed at once)."""

    def __init__(self, tokens: TokenStore, trust_identity_headers: Callable[[], bool],
                 jwt_settings: Callable[[], JWTSettings], now: Callable[[], datetime]) -> None:
        self._tokens = tokens
        self._trusted = trust_identity_headers
        self._jwt_settings = jwt_settings
        self._now = now
        self._verifier: JWTVerifier | None = None

    def verifier(self) -> JWTVerifier:
        settings = self._jwt_settings()
        if self._verifier is None or self._verifier.settings is not settings:
            self._verifier = JWTVerifier(settings)
        return self._verifier

    def principal(self, headers: Sequence[tuple[bytes, bytes]]) -> Principal:
        """The principal of raw (ASGI) request headers, or :class:`Unauthenticated`."""
        authorization = [value for name, value in headers if name.lower() == b"authorization"]
        if len(authorization) > 1:
            raise Unauthenticated("auth.multiple_credentials")
        if authorization:
            return self.bearer(_bearer_token(authorization[0]))
        if self._trusted():
            return trusted_identity(headers)
        raise Unauthenticated("auth.required")

    def bearer(self, token: str) -> Principal:
        """The principal of a bearer token's text."""
        if token.startswith(PREFIX):
            return self._tokens.principal(token)
        return self.verifier().principal(token, self._now())


def _bearer_token(raw: bytes) -> str:
    try:
        value = raw.decode("ascii").strip(" \t")
    except UnicodeDecodeError:
        raise Unauthenticated("auth.malformed") from None
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated("auth.malformed" if not rest else "auth.unsupported_scheme")
    token = rest.lstrip(" ")
    if not token or len(token) > MAX_TOKEN_CHARS or not _B64TOKEN.fullmatch(token):
        raise Unauthenticated("auth.malformed")
    return token


def trusted_identity(headers: Sequence[tuple[bytes, bytes]]) -> Principal:
    """The gateway's ``X-User`` / ``X-Roles`` (comma-separated), read as UTF-8."""
    user = (_utf8(headers, b"x-user", "X-User") or ANONYMOUS).strip()[:128] or ANONYMOUS
    roles = frozenset(role.strip() for role in (_utf8(headers, b"x-roles", "X-Roles") or "").split(",") if role.strip())
    return Principal(user, roles)


def _utf8(headers: Sequence[tuple[bytes, bytes]], wanted: bytes, name: str) -> str | None:
    for key, raw in headers:
        if key.lower() == wanted:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("request.bad_header", path=name, params={"name": name, "reason": "not UTF-8"}) from None
    return None

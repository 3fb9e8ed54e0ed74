"""JWT bearer tokens: verified with the one algorithm and key the deployment configured, their
claims turned into a :class:`Principal`.

Configuration (``JWTSettings.from_environ``, read once at start-up):

- ``LOWCODE_JWT_ALGORITHM``: ``HS256`` (default), ``RS256``, or ``off`` (JWT refused; API
  tokens only);
- ``LOWCODE_JWT_SECRET`` (or ``LOWCODE_JWT_SECRET_FILE``): the HS256 key, at least 32 bytes
  in production mode;
- ``LOWCODE_JWT_PUBLIC_KEY`` (PEM text) or ``LOWCODE_JWT_PUBLIC_KEY_FILE``: the RS256 key
  (RSA, at least 2048 bits);
- ``LOWCODE_JWT_ISSUER`` / ``LOWCODE_JWT_AUDIENCE``: when set, ``iss`` must equal it and ``aud``
  must name it; a token with an ``aud`` is refused when no audience is configured;
- ``LOWCODE_JWT_LEEWAY_SECONDS`` (default 30): clock skew allowed on ``exp`` and ``nbf``;
- ``LOWCODE_JWT_ATTRIBUTE_CLAIMS``: comma-separated top-level claims copied into the
  principal's attributes (identity providers put custom claims such as a region there).

What a token must be:

- its header's ``alg`` is exactly the configured one: ``none``, any other HMAC or RSA size, and
  an HS256 token signed with the RS256 public key (algorithm confusion) are refused before the
  signature is looked at (``auth.token_algorithm``); PyJWT is also called with that one
  algorithm only, and refuses a PEM key as an HMAC secret;
- ``exp`` is required and checked, with ``nbf`` when present, against the engine's clock (not
  the wall clock) with the leeway;
- ``sub`` names the user (at most 128 characters); ``roles`` is a list of role names;
  ``attributes`` an object of text values (e.g. ``{"region": "east"}``), to which the
  configured top-level attribute claims are added (text values too).

Keys in ``jku``, ``x5u``, ``jwk`` or ``kid`` headers are never fetched nor used.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from engine.errors import BadRequest, Unauthenticated
from engine.security.principal import Principal

ALGORITHMS = ("HS256", "RS256")
OFF = "off"
MAX_TOKEN_CHARS = 8192
USER_ID_MAX = 128
ROLE_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
ATTRIBUTE_VALUE_MAX = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class JWTSettings:
    algorithm: str = "HS256"
    """``HS256``, ``RS256`` or ``off``."""
    secret: str | None = field(default=None, repr=False)
    public_key: str | None = field(default=None, repr=False)
    """PEM text of the RSA public key (RS256)."""
    issuer: str | None = None
    audience: str | None = None
    leeway_seconds: int = 30
    attribute_claims: tuple[str, ...] = ()
    """Top-level claims copied into the attributes (LOWCODE_JWT_ATTRIBUTE_CLAIMS)."""

    @property
    def enabled(self) -> bool:
        return self.algorithm != OFF and bool(self.secret if self.algorithm == "HS256" else self.public_key)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> JWTSettings:
        algorithm = (environ.get("LOWCODE_JWT_ALGORITHM") or "HS256").strip()
        algorithm = OFF if algorithm.lower() == OFF else algorithm.upper()
        return cls(
            algorithm=algorithm,
            secret=_value_or_file(environ, "LOWCODE_JWT_SECRET"),
            public_key=_value_or_file(environ, "LOWCODE_JWT_PUBLIC_KEY"),
            issuer=environ.get("LOWCODE_JWT_ISSUER") or None,
            audience=environ.get("LOWCODE_JWT_AUDIENCE") or None,
            leeway_seconds=int(environ.get("LOWCODE_JWT_LEEWAY_SECONDS") or 30),
            attribute_claims=tuple(name.strip() for name in (environ.get("LOWCODE_JWT_ATTRIBUTE_CLAIMS") or "").split(",")
                                   if name.strip()),
        )


def _value_or_file(environ: Mapping[str, str], name: str) -> str | None:
    """``NAME`` itself, else the text of the file ``NAME_FILE`` names (trailing newline cut)."""
    value = environ.get(name)
    if value:
        return value
    path = environ.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(os.path.expanduser(path)).read_text(encoding="utf-8").rstrip("\r\n") or None
    except OSError as exc:
        raise BadRequest("startup.key_file_unreadable", path=f"{name}_FILE",
                         params={"name": f"{name}_FILE", "reason": type(exc).__name__}) from None


def load_public_key(pem: str) -> RSAPublicKey:
    """The RSA public key of a PEM text; ValueError when it is not one (or under 2048 bits)."""
    key = load_pem_public_key(pem.encode("utf-8"))
    if not isinstance(key, RSAPublicKey):
        raise ValueError("not an RSA public key")
    if key.key_size < 2048:
        raise ValueError(f"RSA key of {key.key_size} bits; at least 2048 needed")
    return key


class JWTVerifier:
    """Verifies tokens with one configured algorithm and key; built once per settings."""

    def __init__(self, settings: JWTSettings) -> None:
        self.settings = settings
        self._key: Any = None
        if settings.algorithm == "HS256" and settings.secret:
            self._key = settings.secret.encode("utf-8")
        elif settings.algorithm == "RS256" and settings.public_key:
            self._key = load_public_key(settings.public_key)  # ValueError: startup checks report it

    def principal(self, token: str, now: datetime) -> Principal:
        """The principal the token names, or :class:`Unauthenticated` with the reason's code."""
        settings = self.settings
        if self._key is None or settings.algorithm not in ALGORITHMS:
            raise Unauthenticated("auth.token_invalid", params={"reason": "bearer tokens of this form are not accepted here"})
        try:
            header = pyjwt.get_unverified_header(token)
        except pyjwt.PyJWTError:
            raise Unauthenticated("auth.token_invalid", params={"reason": "not a JWT"}) from None
        if header.get("alg") != settings.algorithm:
            raise Unauthenticated("auth.token_algorithm", params={"expected": settings.algorithm})
        try:
            claims: dict[str, Any] = pyjwt.decode(
                token, self._key, algorithms=[settings.algorithm],
                options={"verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                         "verify_aud": False, "verify_iss": False, "verify_sub": False, "verify_jti": False,
                         "require": []})
        except pyjwt.InvalidSignatureError:
            raise Unauthenticated("auth.token_invalid", params={"reason": "signature does not verify"}) from None
        except (pyjwt.PyJWTError, ValueError, TypeError):
            raise Unauthenticated("auth.token_invalid", params={"reason": "cannot be decoded"}) from None
        self._check_times(claims, now)
        self._check_issuer_and_audience(claims)
        return principal_of_claims(claims, settings.attribute_claims)

    def _check_times(self, claims: Mapping[str, Any], now: datetime) -> None:
        leeway = self.settings.leeway_seconds
        at = now.timestamp()
        if "exp" not in claims:
            raise Unauthenticated("auth.claims_invalid", params={"claim": "exp", "reason": "required"})
        expires = _number(claims, "exp")
        if at > expires + leeway:
            raise Unauthenticated("auth.token_expired")
        if "nbf" in claims and at + leeway < _number(claims, "nbf"):
            raise Unauthenticated("auth.token_not_yet_valid")
        if "iat" in claims:
            _number(claims, "iat")

    def _check_issuer_and_audience(self, claims: Mapping[str, Any]) -> None:
        settings = self.settings
        if settings.issuer is not None and claims.get("iss") != settings.issuer:
            raise Unauthenticated("auth.claims_invalid", params={"claim": "iss", "reason": "not the configured issuer"})
        audience = claims.get("aud")
        if audience is None:
            if settings.audience is not None:
                raise Unauthenticated("auth.claims_invalid", params={"claim": "aud", "reason": "required"})
            return
        named = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else None
        if named is None or not all(isinstance(item, str) for item in named):
            raise Unauthenticated("auth.claims_invalid", params={"claim": "aud", "reason": "must be a text or a list of texts"})
        if settings.audience is None or settings.audience not in named:
            raise Unauthenticated("auth.claims_invalid", params={"claim": "aud", "reason": "not this service"})


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Unauthenticated("auth.claims_invalid", params={"claim": name, "reason": "must be a number of seconds"})
    return float(value)


def principal_of_claims(claims: Mapping[str, Any], attribute_claims: tuple[str, ...] = ()) -> Principal:
    """``sub`` → id, ``roles`` → roles, ``attributes`` and the ``attribute_claims`` present →
    attributes; each checked."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not check_user_id(subject):
        raise Unauthenticated("auth.claims_invalid", params={"claim": "sub", "reason": "must name the user (1 to 128 characters)"})
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(role, str) and ROLE_NAME.fullmatch(role) for role in roles):
        raise Unauthenticated("auth.claims_invalid", params={"claim": "roles", "reason": "must be a list of role names"})
    attributes = claims.get("attributes", {})
    if not isinstance(attributes, dict) or not check_attributes(attributes):
        raise Unauthenticated("auth.claims_invalid", params={"claim": "attributes", "reason": "must be an object of texts"})
    attributes = dict(attributes)
    for name in attribute_claims:
        if name in claims:
            if not check_attributes({name: claims[name]}):
                raise Unauthenticated("auth.claims_invalid", params={"claim": name[:64], "reason": "must be a text"})
            attributes[name] = claims[name]
    return Principal(subject, frozenset(roles), attributes)


def check_user_id(user: str) -> bool:
    return 0 < len(user) <= USER_ID_MAX and user.strip() == user and not _CONTROL.search(user)


def check_attributes(attributes: Mapping[Any, Any]) -> bool:
    return all(isinstance(name, str) and ATTRIBUTE_NAME.fullmatch(name) and isinstance(value, str)
               and len(value) <= ATTRIBUTE_VALUE_MAX and not _CONTROL.search(value)
               for name, value in attributes.items())

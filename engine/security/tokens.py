"""API tokens: long random secrets handed out once, kept only as their SHA-256, revocable.

A token is ``lct_`` and 43 URL-safe base64 characters (256 random bits). The table keeps its
SHA-256 (hex) as the lookup key with the user, roles, attributes, times and a note, never the
token: whoever reads the database cannot authenticate with what they read.

Looking a token up by its hash is constant-time in the secret: the database compares hashes,
and an attacker who varies a token's characters changes its whole hash, so the comparison's
timing says nothing about how close a guess was (the stored hash is compared once more with
``hmac.compare_digest``). Plain SHA-256 suffices, unlike for passwords, because the secret has
256 bits of entropy: nothing can be guessed from its hash. ``last_used_at`` is written at most
once a minute per token, so authenticating is not a write per request.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Mapping

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from engine.clock import Clock
from engine.errors import BadRequest, NotFound, Unauthenticated, Unavailable
from engine.jsoncodec import dumps, loads
from engine.security.jwt import ATTRIBUTE_NAME, ROLE_NAME, check_attributes, check_user_id
from engine.security.principal import SYSTEM, Principal
from engine.store import Database
from engine.store.models import ApiTokenRow, AuditRow

PREFIX = "lct_"
TOKEN = re.compile(r"lct_[A-Za-z0-9_\-]{43}")
LAST_USED_EVERY = timedelta(minutes=1)
MAX_LIFETIME = timedelta(days=3650)
NOTE_MAX = 200
_RELATIVE = re.compile(r"([0-9]{1,5})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

log = logging.getLogger("engine.security")


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """What is known about a token, without its secret."""

    id: str
    user: str
    roles: tuple[str, ...]
    attributes: Mapping[str, str]
    note: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        def stamp(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {"id": self.id, "user": self.user, "roles": list(self.roles), "attributes": dict(self.attributes),
                "note": self.note, "created_at": stamp(self.created_at), "created_by": self.created_by,
                "expires_at": stamp(self.expires_at), "revoked_at": stamp(self.revoked_at),
                "last_used_at": stamp(self.last_used_at)}

    @classmethod
    def of(cls, row: ApiTokenRow) -> TokenInfo:
        return cls(row.id, row.user_id, tuple(loads(row.roles)), dict(loads(row.attributes)), row.note,
                   row.created_at, row.created_by, row.expires_at, row.revoked_at, row.last_used_at)


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: its secret (shown this once) and its record."""

    token: str = field(repr=False)
    info: TokenInfo


class TokenStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def create(self, user: str, roles: Iterable[str] = (), attributes: Mapping[str, str] | None = None, *,
               expires_at: datetime | None = None, note: str = "", actor: Principal = SYSTEM) -> IssuedToken:
        """A new token for ``user``; 400 ``token.bad_*`` at the part that cannot be used."""
        now = self._clock.now()
        role_list = sorted(set(roles))
        attributes = dict(attributes or {})
        if not check_user_id(user):
            raise BadRequest("token.bad_user", path="user")
        for role in role_list:
            if not isinstance(role, str) or not ROLE_NAME.fullmatch(role):
                raise BadRequest("token.bad_role", path="roles", params={"role": str(role)[:64]})
        if not check_attributes(attributes):
            bad = next((name for name in attributes if not (isinstance(name, str) and ATTRIBUTE_NAME.fullmatch(name))), "")
            raise BadRequest("token.bad_attribute", path=f"attributes/{str(bad)[:64]}" if bad else "attributes")
        if expires_at is not None:
            if expires_at.tzinfo is None or not now < expires_at <= now + MAX_LIFETIME:
                raise BadRequest("token.bad_expiry", path="expires", params={"days": MAX_LIFETIME.days})
        if len(note) > NOTE_MAX:
            raise BadRequest("token.bad_note", path="note", params={"limit": NOTE_MAX})
        token = new_token()
        row = ApiTokenRow(id="tok_" + secrets.token_hex(8), token_hash=token_hash(token), user_id=user,
                          roles=dumps(role_list), attributes=dumps(attributes), note=note, created_at=now,
                          created_by=actor.id, expires_at=expires_at)
        with self._db.transaction() as session:
            session.add(row)
            session.add(AuditRow(at=now, actor=actor.id, action="token.create", object_type="api_token", object_id=row.id,
                                 detail=dumps({"user": user, "roles": role_list, "attributes": attributes,
                                               "expires_at": None if expires_at is None else expires_at.isoformat()})))
        return IssuedToken(token, TokenInfo.of(row))

    def listing(self) -> list[TokenInfo]:
        with self._db.read() as session:
            rows = session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.created_at, ApiTokenRow.id)).all()
            return [TokenInfo.of(row) for row in rows]

    def revoke(self, token_id: str, actor: Principal = SYSTEM) -> TokenInfo:
        """Revoke the token (at once: the next request with it is 401 ``auth.token_revoked``);
        revoking it again changes nothing. 404 ``token.not_found``."""
        now = self._clock.now()
        with self._db.transaction() as session:
            row = session.get(ApiTokenRow, token_id) if len(token_id) <= 32 else None
            if row is None:
                raise NotFound("token.not_found", params={"id": token_id[:32]})
            if row.revoked_at is None:
                row.revoked_at, row.revoked_by = now, actor.id
                session.add(AuditRow(at=now, actor=actor.id, action="token.revoke", object_type="api_token",
                                     object_id=row.id, detail=dumps({"user": row.user_id})))
            return TokenInfo.of(row)

    def principal(self, token: str) -> Principal:
        """The principal of a presented token, or :class:`Unauthenticated`:
        ``auth.token_unknown``, ``auth.token_revoked`` or ``auth.token_expired``."""
        if not TOKEN.fullmatch(token):
            raise Unauthenticated("auth.token_unknown")
        digest = token_hash(token)
        now = self._clock.now()
        try:
            info = self._lookup(digest, now)
        except DBAPIError as exc:  # a database that does not answer is not a bad token: 503, not 500
            log.warning("api token lookup: the database did not answer (%s)", type(exc.orig).__name__)
            raise Unavailable("store.unavailable", params={"type": type(exc.orig).__name__}) from None
        if info.last_used_at is None or now - info.last_used_at >= LAST_USED_EVERY:
            self._touch(info.id, now)
        return Principal(info.user, frozenset(info.roles), dict(info.attributes))

    def _lookup(self, digest: str, now: datetime) -> TokenInfo:
        with self._db.read() as session:
            row = session.scalars(select(ApiTokenRow).where(ApiTokenRow.token_hash == digest)).first()
            if row is None or not hmac.compare_digest(row.token_hash, digest):
                raise Unauthenticated("auth.token_unknown")
            if row.revoked_at is not None:
                raise Unauthenticated("auth.token_revoked")
            if row.expires_at is not None and now >= row.expires_at:
                raise Unauthenticated("auth.token_expired")
            return TokenInfo.of(row)

    def _touch(self, token_id: str, now: datetime) -> None:
        try:
            with self._db.transaction() as session:
                session.execute(update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=now))
        except DBAPIError as exc:  # a busy database must not refuse an authenticated request
            log.warning("api token %s: last_used_at not updated (%s)", token_id, type(exc.orig).__name__)


def parse_expiry(text: str, now: datetime) -> datetime | None:
    """``never``; a span from now (``90m``, ``12h``, ``30d``, ``2w``); a date (midnight UTC); or an
    ISO-8601 instant with its offset. 400 ``token.bad_expiry`` otherwise."""
    text = text.strip()
    if text.lower() == "never":
        return None
    relative = _RELATIVE.fullmatch(text)
    if relative:
        return now + timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=timezone.utc)
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise BadRequest("token.bad_expiry", path="expires", params={"days": MAX_LIFETIME.days})
    return instant

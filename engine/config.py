"""Settings from the environment. Read once at start-up; the engine never reads os.environ
elsewhere."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

from engine.notify.settings import OutboxSettings
from engine.reports.settings import ReportSettings
from engine.security.keyring import KeySettings
from engine.security.jwt import JWTSettings

DEFAULT_DATABASE_URL = "sqlite:///var/lowcode.db"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    max_body_bytes: int = 1_048_576
    """Request bodies above this are refused before they are read whole."""
    definition_roles: frozenset[str] = frozenset({"admin", "modeler"})
    """Roles that may upload definitions (the command line acts as the system)."""
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    """Outbox delivery: endpoints, outbound allow-list, signing secret, retries (engine.notify)."""
    supervisor_roles: frozenset[str] = frozenset({"admin"})
    """Roles that may transfer any task and cancel any case."""
    reports: ReportSettings = field(default_factory=ReportSettings)
    """Report queries: DuckDB memory limit, threads and query timeout (engine.reports.settings)."""
    mode: str = "development"
    """LOWCODE_MODE: ``development`` or ``production``; production refuses to start with unsafe
    authentication settings (engine.security.startup) and serves the API docs to principals only."""
    jwt: JWTSettings = field(default_factory=JWTSettings)
    """JWT bearer verification: algorithm, key, issuer, audience (LOWCODE_JWT_*; engine.security.jwt)."""
    trust_identity_headers: bool = False
    """LOWCODE_TRUST_IDENTITY_HEADERS=1: take the caller from X-User / X-Roles when no bearer token
    is given (only behind a gateway that authenticates and sets them; engine.security.authentication)."""
    trust_identity_headers_acknowledged: bool = False
    """LOWCODE_TRUST_IDENTITY_HEADERS_ACKNOWLEDGED=1: the operator states that only the gateway can
    reach the engine; production refuses trusted headers without it."""
    timer_lease: timedelta = timedelta(seconds=60)
    """How long a worker's claim keeps due timers from other workers (LOWCODE_TIMER_LEASE_SECONDS)."""
    encryption: KeySettings = field(default_factory=KeySettings)
    """Master keys of sensitive fields (LOWCODE_MASTER_KEY, LOWCODE_MASTER_KEY_FILE, LOWCODE_MODE;
    engine.security.keyring)."""
    audit_roles: frozenset[str] = frozenset({"auditor"})
    """Roles that may read and export the audit log (LOWCODE_AUDIT_ROLES)."""
    clock: str | None = None
    """LOWCODE_CLOCK: unset for the system clock; ``file:PATH`` for a clock read from a file
    that a test moves (several processes then share one fake time; see engine.clock). Refused
    in production mode."""

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("LOWCODE_DATABASE_URL") or DEFAULT_DATABASE_URL,
            max_body_bytes=int(os.environ.get("LOWCODE_MAX_BODY_BYTES", "1048576")),
            supervisor_roles=frozenset(
                role.strip() for role in os.environ.get("LOWCODE_SUPERVISOR_ROLES", "admin").split(",") if role.strip()
            ),
            definition_roles=frozenset(
                role.strip() for role in os.environ.get("LOWCODE_DEFINITION_ROLES", "admin,modeler").split(",") if role.strip()
            ),
            outbox=OutboxSettings.from_environ(os.environ),
            reports=ReportSettings.from_environ(os.environ),
            mode=(os.environ.get("LOWCODE_MODE") or "development").strip().lower(),
            jwt=JWTSettings.from_environ(os.environ),
            trust_identity_headers=_flag(os.environ.get("LOWCODE_TRUST_IDENTITY_HEADERS")),
            trust_identity_headers_acknowledged=_flag(os.environ.get("LOWCODE_TRUST_IDENTITY_HEADERS_ACKNOWLEDGED")),
            timer_lease=timedelta(seconds=float(os.environ.get("LOWCODE_TIMER_LEASE_SECONDS") or 60)),
            clock=os.environ.get("LOWCODE_CLOCK") or None,
            encryption=KeySettings.from_environ(os.environ),
            audit_roles=frozenset(
                role.strip() for role in os.environ.get("LOWCODE_AUDIT_ROLES", "auditor").split(",") if role.strip()
            ),
        )

    @property
    def production(self) -> bool:
        """Anything but ``development`` is treated as production (a misspelt mode fails closed)."""
        return self.mode != "development"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")

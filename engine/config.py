"""Settings from the environment. Read once at start-up; the engine never reads os.environ
elsewhere."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

from engine.notify.settings import OutboxSettings
from engine.reports.settings import ReportSettings

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
    timer_lease: timedelta = timedelta(seconds=60)
    """How long a worker's claim keeps due timers from other workers (LOWCODE_TIMER_LEASE_SECONDS)."""
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
            timer_lease=timedelta(seconds=float(os.environ.get("LOWCODE_TIMER_LEASE_SECONDS") or 60)),
            clock=os.environ.get("LOWCODE_CLOCK") or None,
        )

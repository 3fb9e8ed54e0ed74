"""Settings from the environment. Read once at start-up; the engine never reads os.environ
elsewhere."""
from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///var/lowcode.db"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    max_body_bytes: int = 1_048_576
    """Request bodies above this are refused before they are read whole."""
    definition_roles: frozenset[str] = frozenset({"admin", "modeler"})
    """Roles that may upload definitions (the command line acts as the system)."""

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("LOWCODE_DATABASE_URL") or DEFAULT_DATABASE_URL,
            max_body_bytes=int(os.environ.get("LOWCODE_MAX_BODY_BYTES", "1048576")),
            definition_roles=frozenset(
                role.strip() for role in os.environ.get("LOWCODE_DEFINITION_ROLES", "admin,modeler").split(",") if role.strip()
            ),
        )

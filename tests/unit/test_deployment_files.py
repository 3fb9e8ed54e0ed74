"""The container files: the image runs in production mode with its secrets from the
environment, built with the steps of scripts/offline_install_check.sh; compose has no secret
of its own and makes the user supply each one (``${NAME:?...}``), listed in .env.example."""
from __future__ import annotations

import re
from pathlib import Path

from engine.config import Settings
from engine.security.startup import startup_issues

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("POSTGRES_PASSWORD", "LOWCODE_JWT_SECRET", "LOWCODE_MASTER_KEY")


def _environment(service: str) -> dict[str, str]:
    """The ``environment:`` mapping of a compose service (read as text: no YAML library needed)."""
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    block = re.search(rf"^  {service}:\n(.*?)(?=^  \S|^\S|\Z)", text, re.MULTILINE | re.DOTALL)
    assert block is not None, service
    env = re.search(r"^    environment:\n((?:      .*\n)+)", block.group(1), re.MULTILINE)
    assert env is not None, service
    return dict(line.strip().split(": ", 1) for line in env.group(1).splitlines())


def test_the_image_runs_in_production_built_as_the_offline_check_builds() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith("#")]
    assert any(re.search(r"\bLOWCODE_MODE=production\b", line) for line in instructions)
    assert not re.search(r"LOWCODE_(JWT_SECRET|MASTER_KEY)=", "\n".join(instructions))  # no secret baked in
    assert "scripts/offline_install_check.sh --wheelhouse-only" in dockerfile
    assert "pip install --no-index --find-links=/wheels lowcode-engine" in dockerfile


def test_compose_makes_the_user_supply_every_secret() -> None:
    app, db = _environment("app"), _environment("db")
    assert app["LOWCODE_MODE"] == "production"
    for name, value in (("LOWCODE_JWT_SECRET", app["LOWCODE_JWT_SECRET"]),
                        ("LOWCODE_MASTER_KEY", app["LOWCODE_MASTER_KEY"]),
                        ("POSTGRES_PASSWORD", db["POSTGRES_PASSWORD"])):
        assert re.fullmatch(r"\$\{" + name + r":\?[^}]+\}", value), value  # required, no default
    assert "${POSTGRES_PASSWORD:?" in app["LOWCODE_DATABASE_URL"]
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for name in SECRETS:
        assert re.search(rf"^{name}=$", example, re.MULTILINE), name  # listed, left empty
    assert example.lower().count("change me") >= len(SECRETS)


def test_production_refuses_what_an_unfilled_or_placeholder_env_gives(monkeypatch) -> None:
    app = _environment("app")
    for name in list(app):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOWCODE_MODE", app["LOWCODE_MODE"])
    assert [issue.code for issue in startup_issues(Settings.from_env())] == ["startup.jwt_secret_missing"]
    monkeypatch.setenv("LOWCODE_JWT_SECRET", "change me".replace(" ", ""))
    assert [issue.code for issue in startup_issues(Settings.from_env())] == ["startup.jwt_secret_default"]

"""One setting decides development or production: LOWCODE_MODE. The start-up checks, the
master keys and the test clock read it the same way (anything but ``development`` is
production); LOWCODE_ENVIRONMENT is no setting."""
from __future__ import annotations

import pytest

from engine.clock import ClockConfigError, clock_from_setting
from engine.config import Settings
from engine.security.keyring import KeySettings


@pytest.mark.parametrize(("mode", "production"), [(None, False), ("development", False), (" Development ", False),
                                                  ("production", True), ("prod", True), ("staging", True)])
def test_lowcode_mode_decides_for_settings_keys_and_clock(monkeypatch: pytest.MonkeyPatch, mode: str | None,
                                                          production: bool) -> None:
    monkeypatch.delenv("LOWCODE_ENVIRONMENT", raising=False)
    if mode is None:
        monkeypatch.delenv("LOWCODE_MODE", raising=False)
    else:
        monkeypatch.setenv("LOWCODE_MODE", mode)
    settings = Settings.from_env()
    assert settings.production is production
    assert settings.encryption.production is production  # the keys fail closed like the start-up checks
    if production:
        with pytest.raises(ClockConfigError):
            clock_from_setting("file:/tmp/clock", production=settings.production)


def test_lowcode_environment_is_not_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOWCODE_MODE", raising=False)
    monkeypatch.setenv("LOWCODE_ENVIRONMENT", "production")
    settings = Settings.from_env()
    assert not hasattr(settings, "environment")
    assert (settings.production, settings.encryption.production) == (False, False)

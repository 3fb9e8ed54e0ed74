"""Outbox settings: where messages go, what may be reached, and how hard to retry.

Read from the environment mapping that :meth:`engine.config.Settings.from_env` passes in; the
engine never reads ``os.environ`` elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Mapping

from engine.notify.errors import NotifyConfigError

DEFAULT_STAFF_ROLES = frozenset({"admin", "operator"})


@dataclass(frozen=True)
class OutboxSettings:
    outbound_allow: tuple[str, ...] = ()
    """Hosts (``hooks.example.com``, ``*.example.com``) and CIDRs (``10.20.0.0/16``) that
    outgoing HTTP may reach. A private, loopback, link-local or otherwise special address is
    reachable only through a CIDR listed here (cloud metadata addresses only by their exact
    address)."""
    event_webhooks: tuple[str, ...] = ()
    """URLs that receive every integration event (channel ``event``) whose topic matches
    :attr:`event_topics`. None: events are marked delivered with the note ``outbox.no_subscriber``."""
    event_topics: tuple[str, ...] = ("*",)
    """Topic patterns (``fnmatch``: ``instance.*``) the event webhooks subscribe to."""
    notify_webhook_url: str | None = None
    """Endpoint of the ``webhook`` notification channel."""
    sms_url: str | None = None
    """Endpoint of the SMS adapter (channel ``sms``)."""
    app_push_url: str | None = None
    """Endpoint of the app-push adapter (channel ``app``)."""
    secret: str | None = field(default=None, repr=False)
    """HMAC key that signs every outgoing request; required once any endpoint is configured."""
    ca_file: str | None = None
    """PEM bundle of the CAs to trust for https endpoints (an internal CA); default: the system's."""
    timeout: timedelta = timedelta(seconds=5)
    """Connect and read timeout of one HTTP request."""
    max_attempts: int = 8
    """A message that failed this many times (retryable failures) goes dead."""
    backoff_base: timedelta = timedelta(seconds=30)
    backoff_cap: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=5)
    """How long a claimed message stays invisible to other workers while one sends it."""
    language: str = "en"
    """Language of notification texts when the message names none (``en`` or ``zh-CN``)."""
    staff_roles: frozenset[str] = DEFAULT_STAFF_ROLES
    """Roles that may list and retry dead letters."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> OutboxSettings:
        """Read the ``LOWCODE_OUTBOUND_*``, ``LOWCODE_OUTBOX_*``, ``LOWCODE_EVENT_*`` and
        adapter URL variables; raises :class:`NotifyConfigError` on a malformed number."""

        def words(name: str, default: str = "") -> tuple[str, ...]:
            raw = environ.get(name, default)
            return tuple(part.strip() for part in raw.replace("\n", ",").split(",") if part.strip())

        def seconds(name: str, default: timedelta) -> timedelta:
            raw = environ.get(name)
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise NotifyConfigError("outbox.bad_config", params={"setting": name, "reason": "not a number"}) from None
            if not 0 < value < 10**7:
                raise NotifyConfigError("outbox.bad_config", params={"setting": name, "reason": "out of range"})
            return timedelta(seconds=value)

        attempts_raw = environ.get("LOWCODE_OUTBOX_MAX_ATTEMPTS", "8")
        if not attempts_raw.strip().isdigit() or not 1 <= int(attempts_raw) <= 100:
            raise NotifyConfigError("outbox.bad_config", params={"setting": "LOWCODE_OUTBOX_MAX_ATTEMPTS",
                                                                 "reason": "an integer from 1 to 100"})
        return cls(
            outbound_allow=words("LOWCODE_OUTBOUND_ALLOW"),
            event_webhooks=words("LOWCODE_EVENT_WEBHOOKS"),
            event_topics=words("LOWCODE_EVENT_TOPICS", "*") or ("*",),
            notify_webhook_url=environ.get("LOWCODE_NOTIFY_WEBHOOK_URL") or None,
            sms_url=environ.get("LOWCODE_SMS_URL") or None,
            app_push_url=environ.get("LOWCODE_APP_PUSH_URL") or None,
            secret=environ.get("LOWCODE_OUTBOX_SECRET") or None,
            ca_file=environ.get("LOWCODE_OUTBOUND_CA_FILE") or None,
            timeout=seconds("LOWCODE_OUTBOUND_TIMEOUT_SECONDS", timedelta(seconds=5)),
            max_attempts=int(attempts_raw),
            backoff_base=seconds("LOWCODE_OUTBOX_BACKOFF_BASE_SECONDS", timedelta(seconds=30)),
            backoff_cap=seconds("LOWCODE_OUTBOX_BACKOFF_CAP_SECONDS", timedelta(hours=1)),
            lease=seconds("LOWCODE_OUTBOX_LEASE_SECONDS", timedelta(minutes=5)),
            language=environ.get("LOWCODE_NOTIFY_LANGUAGE") or "en",
            staff_roles=frozenset(words("LOWCODE_OUTBOX_ROLES", "admin,operator")),
        )

    def endpoints(self) -> dict[str, str]:
        """Every configured endpoint URL by the setting that names it (for start-up checks)."""
        named = {f"LOWCODE_EVENT_WEBHOOKS[{index}]": url for index, url in enumerate(self.event_webhooks)}
        for name, url in (("LOWCODE_NOTIFY_WEBHOOK_URL", self.notify_webhook_url), ("LOWCODE_SMS_URL", self.sms_url),
                          ("LOWCODE_APP_PUSH_URL", self.app_push_url)):
            if url:
                named[name] = url
        return named


__all__ = ["DEFAULT_STAFF_ROLES", "OutboxSettings"]

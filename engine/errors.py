"""Errors as values: a stable ``code``, a JSON pointer ``path`` and ``params``; the message is
rendered at the edge in the caller's language (en or zh-CN).

    EngineError                  status
    ├── BadRequest               400  the request itself cannot be read
    ├── Unauthenticated          401  no principal: credentials missing, malformed, expired or revoked
    ├── Forbidden                403
    ├── NotFound                 404
    ├── Conflict                 409  a concurrent change won; retry on fresh data
    ├── PreconditionFailed       412  the If-Match version is stale: the record changed since
    ├── PreconditionRequired     428  an update came without If-Match
    └── Invalid                  422  carries a list of issues
        ├── ValidationFailed         a record breaks its form
        └── DefinitionInvalid        an uploaded definition breaks its meta-schema or semantics

Outbox delivery adds its own branch (retryable vs permanent): see ``engine/notify/errors.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from engine.messages import render_message

DEFAULT_LANGUAGE = "en"
LANGUAGES = ("en", "zh-CN")


@dataclass(frozen=True)
class Issue:
    """One problem, located by a JSON pointer into the document it is about."""

    path: str
    code: str
    params: Mapping[str, Any] = field(default_factory=dict)
    messages: Mapping[str, str] | None = None
    """Author-supplied messages by language (form rules); override the catalogue."""

    def message(self, language: str = DEFAULT_LANGUAGE) -> str:
        if self.messages:
            return self.messages.get(language) or self.messages.get(DEFAULT_LANGUAGE) or next(
                iter(self.messages.values())
            )
        return render_message(self.code, self.params, language)

    def to_dict(self, language: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
        body: dict[str, Any] = {"path": self.path, "code": self.code, "message": self.message(language)}
        if self.params:
            body["params"] = dict(self.params)
        return body


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    status: int = 400

    def __init__(self, code: str, *, path: str = "", params: Mapping[str, Any] | None = None) -> None:
        self.code = code
        self.path = path
        self.params: Mapping[str, Any] = dict(params or {})
        super().__init__(f"{code} {path} {dict(self.params)}".strip())

    @property
    def issues(self) -> list[Issue]:
        return [Issue(self.path, self.code, self.params)]

    def to_body(self, language: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
        return {"errors": [issue.to_dict(language) for issue in self.issues]}


class BadRequest(EngineError):
    """The request cannot be read: malformed JSON, non-finite number, too deep."""

    status = 400


class Unauthenticated(EngineError):
    """No principal: the credentials are missing, malformed, unknown, expired or revoked."""

    status = 401


class Forbidden(EngineError):
    """The actor may not do this."""

    status = 403


class NotFound(EngineError):
    """No such definition, record, task or instance."""

    status = 404


class Conflict(EngineError):
    """A concurrent change got there first."""

    status = 409


class PreconditionFailed(EngineError):
    """The caller's copy is stale: the record changed since it was read (``If-Match``)."""

    status = 412


class PreconditionRequired(EngineError):
    """An update must name the version it was based on (``If-Match``)."""

    status = 428


class Unavailable(EngineError):
    """A service the request needs (the database) does not answer; trying again later may work."""

    status = 503


class Invalid(EngineError):
    """A document breaks its rules; every issue is reported at once."""

    status = 422

    def __init__(self, issues: list[Issue]) -> None:
        self._issues = list(issues)
        first = self._issues[0] if self._issues else Issue("", "invalid")
        super().__init__(first.code, path=first.path, params=first.params)

    @property
    def issues(self) -> list[Issue]:
        return self._issues


class ValidationFailed(Invalid):
    """A record breaks its form's schema or rules."""


class DefinitionInvalid(Invalid):
    """An uploaded definition breaks its meta-schema or a semantic check."""


def negotiate_language(accept_language: str | None) -> str:
    """Pick ``zh-CN`` or ``en`` from an ``Accept-Language`` header (quality values honoured)."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        token, _, quality = part.strip().partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            weight = 0.0
        tag = token.strip().lower()
        if tag.startswith("zh"):
            choices.append((weight, -index, "zh-CN"))
        elif tag.startswith("en") or tag == "*":
            choices.append((weight, -index, "en"))
    if not choices:
        return DEFAULT_LANGUAGE
    best = max(choices)
    return best[2] if best[0] > 0 else DEFAULT_LANGUAGE

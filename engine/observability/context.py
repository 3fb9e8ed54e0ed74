"""The id of the request being served, for everything written while serving it.

An ASGI middleware (``engine.api.observability``) sets :data:`REQUEST_ID` for the duration of a
request; audit rows (``AuditRow.request_id``) and JSON log lines read it. Outside a request
(the worker, the command line) it is ``None``. A :class:`contextvars.ContextVar` follows the
request into the thread pool that runs synchronous endpoints."""
from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("lowcode_request_id", default=None)

MAX_REQUEST_ID_LENGTH = 128
_SANE = re.compile(r"[A-Za-z0-9._-]{1,%d}" % MAX_REQUEST_ID_LENGTH)


def current_request_id() -> str | None:
    """The id of the request this code runs for, or ``None``."""
    return REQUEST_ID.get()


def accept_request_id(incoming: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token (1 to 128 of ``[A-Za-z0-9._-]``),
    else a new uuid4: a hostile header (newlines, control characters, a kilobyte of text)
    never reaches logs or the audit log."""
    if incoming is not None and _SANE.fullmatch(incoming):
        return incoming
    return str(uuid.uuid4())


__all__ = ["MAX_REQUEST_ID_LENGTH", "REQUEST_ID", "accept_request_id", "current_request_id"]

"""An ASGI middleware that refuses request bodies over a size limit before they are read whole:
by ``Content-Length`` when given, else while streaming."""
from __future__ import annotations

from typing import Any, Awaitable, Callable, MutableMapping

from engine.api.responses import ExactJSONResponse
from engine.errors import negotiate_language
from engine.messages import render_message

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        language = negotiate_language(headers.get(b"accept-language", b"").decode("latin-1"))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, language)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await self._refuse(scope, receive, send, language)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, language: str) -> None:
        message = render_message("request.too_large", {"limit": self.max_bytes}, language)
        response = ExactJSONResponse(
            {"errors": [{"path": "", "code": "request.too_large", "message": message}]}, status_code=413
        )
        await response(scope, receive, send)

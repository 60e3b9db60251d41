"""ASGI middleware every response goes through: a request body limit enforced before anything
reads the body, and the security headers of a page that holds children's and police data.

The body limit answers 413 from the Content-Length header alone, before authentication and
before any parsing, and counts the bytes of a body sent without one (chunked), refusing it as
soon as it passes the limit: a multi-gigabyte upload costs the server next to nothing.
The default (1 MiB) covers every JSON body; the routes that take files name their own limit."""

from __future__ import annotations

from typing import Awaitable, Callable

Scope = dict
Message = dict
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Pages load their scripts and styles from /static only: no inline script, no framing.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                           "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


async def _answer(send: Send, status: int, detail: str) -> None:
    body = ('{"detail":"' + detail + '"}').encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for a request body over `max_bytes` (or over `larger[path]` on those paths), checked
    before the application reads it."""

    def __init__(self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None):
        self.app = app
        self.default_bytes = max_bytes
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.default_bytes)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _answer(send, 400, "Content-Length is not a number")
                return
            if int(length) > limit:
                await _answer(send, 413, f"request body of {int(length)} bytes is larger than {limit} bytes")
                return
        seen = 0
        started = answered = False

        async def counted_receive() -> Message:
            nonlocal seen, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Answered here, whatever the application makes of the disconnect it now sees.
                    answered = True
                    if not started:
                        await _answer(send, 413, f"request body larger than {limit} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if not answered:
                raise
            # The application failed on the body cut off under it (a client disconnect, to it):
            # the client already has its 413.


class SecurityHeaders:
    """CSP, nosniff, no referrer, no framing on every response; HSTS when served over TLS."""

    def __init__(self, app: ASGIApp, *, hsts: bool):
        self.app = app
        self.headers = SECURITY_HEADERS + ((HSTS,) if hsts else ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in self.headers if k not in present]
            await send(message)

        await self.app(scope, receive, with_headers)

"""The door of the ``/v1`` routes: the API key is checked and the body capped before anything is read or parsed.

FastAPI reads and parses a request's body before it runs a route's dependencies, so a key check
written as a dependency comes too late: a client without a key could make the server hold
bodies of any size. This ASGI middleware runs first. It refuses a missing or unknown key (401)
without reading the body, refuses a body larger than the route allows (413) from its declared
length or as soon as the bytes received pass the cap, and only then hands the body, read once, to
the app. The matched key is left in the request's state (``request.state.api_key``) for the
route, and the request is counted for the audit trail (serving/request_audit.py). After the body,
the connection is read on, so that a client that disconnects is seen (:class:`_Replay`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.api_keys import HEADER, ApiKey, matching_key

TEXT_BODY_BYTES = 64 * 1024  # /v1/understand: 2,000 characters of JSON are far below this


class Guard:
    """``keys()`` gives the accepted keys; ``cap(path)`` the largest body a route takes; ``seen(key, path)``
    is told of each authenticated request."""

    def __init__(self, app: ASGIApp, keys: Callable[[], tuple[ApiKey, ...]], cap: Callable[[str], int],
                 seen: Callable[[ApiKey, str], None]) -> None:
        self.app, self.keys, self.cap, self.seen = app, keys, cap, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = matching_key(headers.get(HEADER), self.keys())
        if key is None:
            await _refuse(send, 401, f"missing or unknown API key: send it in the {HEADER} header",
                          {"www-authenticate": HEADER})
            return
        cap = self.cap(scope["path"])
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await _refuse(send, 413, f"a body of {int(declared)} bytes is over the {cap} this route takes")
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > cap:
                await _refuse(send, 413, f"the body is over the {cap} bytes this route takes")
                return
        scope.setdefault("state", {})["api_key"] = key
        self.seen(key, scope["path"])
        replay = _Replay(bytes(body), receive)
        try:
            await self.app(scope, replay, send)
        finally:
            replay.close()


class _Replay:
    """The body read here, then the connection's own messages: its disconnect.

    Reading past the body starts at once, in a task: the server then reads the connection while the
    request waits (uvicorn stops reading a connection whose body filled its buffer until the app
    asks again), so a client that has gone is seen as gone by ``request.is_disconnected()`` when
    admission control asks (serving/admission.py), not one question later.
    """

    def __init__(self, body: bytes, receive: Receive) -> None:
        self._body: bytes | None = body
        self._after: asyncio.Future[Message] = asyncio.ensure_future(receive())

    async def __call__(self) -> Message:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        # shielded: a caller that gives up (is_disconnected asks without waiting) must not stop the reading
        return await asyncio.shield(self._after)

    def close(self) -> None:
        self._after.cancel()


async def _refuse(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    payload = json.dumps({"detail": detail}).encode()
    raw: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json"),
                                      (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": raw}
    await send(start)
    await send({"type": "http.response.body", "body": payload})

"""The API level of the double lock: ASGI and WSGI middleware that ask before the
routes that run dangerous actions, and answer in HTTP when the answer is no.

- deny → 403, a JSON body with the verdict, the reason and the detail;
- step_up → 401 with ``WWW-Authenticate: Bearer error="insufficient_user_authentication"``
  and ``max_age`` (RFC 9470), so that standard clients know to re-authenticate;
- no session on the request → 401 ``error="invalid_token"``;
- allow → the route runs, with the decision in ``scope["doublelock.decision"]`` (ASGI)
  or ``environ["doublelock.decision"]`` (WSGI).

A request's ``Idempotency-Key`` header, when present, is its intent id: a client's
retry of an action that ran is a duplicate, denied.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

from doublelock.verdict import Decision, Verdict
from sdk.client import Doublelock, Subject

Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Route:
    """Requests with ``method`` whose path matches ``pattern`` (shell-style, ``*``
    spans slashes too) run ``action``."""

    method: str
    pattern: str
    action: str

    def matches(self, method: str, path: str) -> bool:
        return method in ("*", self.method.upper()) and fnmatch.fnmatchcase(path, self.pattern)


# Headers by which a POST asks a framework to treat it as another method.
OVERRIDES: Final = ("x-http-method-override", "x-http-method", "x-method-override")


def canonical(path: str) -> str:
    """The path as routers see it: ``//a/./b/`` is ``/a/b``, so that no spelling of a
    guarded route slips past its pattern."""
    normal = posixpath.normpath("/" + path.lstrip("/"))
    return "/" if normal in ("/", "//") else normal.rstrip("/")


def action_for(routes: Iterable[Route], method: str, path: str,
               overrides: Iterable[str] = ()) -> str | None:
    """The action of the first route matching the request under any method it may be
    taken for (``*``: any, for websockets)."""
    methods = {method.upper(), *(m.upper() for m in overrides if m)}
    path = canonical(path)
    return next((r.action for r in routes for m in methods if r.matches(m, path)), None)


def refusal(decision: Decision | None) -> tuple[int, Headers, bytes]:
    """The HTTP answer to a request that must not run (None: it has no session)."""
    if decision is None:
        return _json(401, {"error": "unauthenticated"},
                     [("WWW-Authenticate", 'Bearer error="invalid_token", '
                                           'error_description="No live session"')])
    step_up = decision.verdict is Verdict.STEP_UP
    body: dict[str, Any] = {
        "error": "insufficient_user_authentication" if step_up else "forbidden",
        "verdict": decision.verdict.value, "reason": decision.reason.value,
        "detail": decision.detail, "intent_id": decision.intent_id}
    if not step_up:
        return _json(403, body)
    challenge = ('Bearer error="insufficient_user_authentication", '
                 'error_description="A more recent authentication is required"')
    if decision.max_auth_age_ms is not None:
        challenge += f', max_age="{decision.max_auth_age_ms // 1000}"'
    body["max_age"] = None if decision.max_auth_age_ms is None else decision.max_auth_age_ms // 1000
    body["min_auth_level"] = decision.min_auth_level
    return _json(401, body, [("WWW-Authenticate", challenge)])


def _json(status: int, body: dict[str, Any], headers: Headers | None = None
          ) -> tuple[int, Headers, bytes]:
    return status, [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                    *(headers or [])], json.dumps(body).encode()


ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]],
                    Callable[[MutableMapping[str, Any]], Awaitable[None]]], Awaitable[None]]


class AsgiGuard:
    def __init__(self, app: ASGIApp, client: Doublelock, routes: Iterable[Route],
                 subject_of: Callable[[MutableMapping[str, Any]], Subject | None],
                 timeout: float | None = None) -> None:
        """``subject_of(scope)``: the session behind the request, or None."""
        self.app, self.client, self.routes = app, client, tuple(routes)
        self.subject_of, self.timeout = subject_of, timeout

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in (scope.get("headers") or [])}
        method = scope.get("method", "*") if scope["type"] == "http" else "*"
        action = action_for(self.routes, method, scope["path"],
                            [headers[k.encode()].decode("latin-1") for k in OVERRIDES
                             if k.encode() in headers])
        if action is None:
            return await self.app(scope, receive, send)
        subject = self.subject_of(scope)
        decision = None
        if subject is not None:
            key = headers.get(b"idempotency-key")
            intent = self.client.intent(subject, action, scope["path"],
                                        intent_id=key.decode("latin-1") if key else None)
            decision = await self.client.check_async(intent, self.timeout)
            if decision.allowed:
                scope["doublelock.decision"] = decision
                return await self.app(scope, receive, send)
        if scope["type"] == "websocket":  # refused before the handshake is accepted
            await send({"type": "websocket.close", "code": 1008})
            return None
        status, answer, body = refusal(decision)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in answer]})
        await send({"type": "http.response.body", "body": body})
        return None


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_REASONS = {401: "401 Unauthorized", 403: "403 Forbidden"}


class WsgiGuard:
    def __init__(self, app: WSGIApp, client: Doublelock, routes: Iterable[Route],
                 subject_of: Callable[[dict[str, Any]], Subject | None],
                 timeout: float | None = None) -> None:
        """``subject_of(environ)``: the session behind the request, or None."""
        self.app, self.client, self.routes = app, client, tuple(routes)
        self.subject_of, self.timeout = subject_of, timeout

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        action = action_for(self.routes, environ["REQUEST_METHOD"],
                            environ.get("PATH_INFO") or "/",
                            [environ.get("HTTP_" + k.upper().replace("-", "_"), "")
                             for k in OVERRIDES])
        if action is None:
            return self.app(environ, start_response)
        subject = self.subject_of(environ)
        decision = None
        if subject is not None:
            intent = self.client.intent(subject, action, environ.get("PATH_INFO") or "/",
                                        intent_id=environ.get("HTTP_IDEMPOTENCY_KEY"))
            decision = self.client.check(intent, self.timeout)
            if decision.allowed:
                environ["doublelock.decision"] = decision
                return self.app(environ, start_response)
        status, headers, body = refusal(decision)
        start_response(_REASONS[status], [*headers, ("Content-Length", str(len(body)))])
        return [body]

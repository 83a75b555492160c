"""A small web application that enforces doublelock at both levels.

- UI: a list of projects with "delete" and "transfer ownership". Before either runs,
  the page's request goes through the middleware; a step_up opens a re-authentication
  prompt, and the retry after it is allowed. An idle countdown shows how long the
  session has left.
- API: the same routes under /api answer JSON; a refused call gets 403 (deny) or 401
  with ``WWW-Authenticate: Bearer error="insufficient_user_authentication"``.

The application is its own identity service here, so it publishes the lifecycle too:
created at login, activity on each real request, heartbeat on the countdown's poll,
reauthenticated, logged_out. Tokens are like stateless bearer tokens: after a logout
the app still recognises one, and it is doublelock that refuses it.
"""

from __future__ import annotations

import html
import json
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

from doublelock.policy import Policy
from sdk import Doublelock, Lifecycle, Route, Subject, WsgiGuard

PAGE: Final = (Path(__file__).parent / "page.html").read_text()
USERS: Final = {"alice": "wonderland", "bob": "builder"}  # an example's accounts
ROUTES: Final = (
    Route("DELETE", "/api/projects/*", "project.delete"),
    Route("POST", "/api/projects/*/transfer", "project.transfer"),
)
Start = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Login:
    user_id: str
    device_id: str


class ExampleApp:
    def __init__(self, dl: Doublelock, lifecycle: Lifecycle, policy: Policy) -> None:
        self.dl, self.lifecycle, self.policy = dl, lifecycle, policy
        self.tokens: dict[str, Login] = {}  # token (the session id) → whose
        self.projects = {"p1": ["Apollo", "alice"], "p2": ["Borealis", "alice"],
                         "p3": ["Cassini", "bob"]}
        self.lock = threading.Lock()
        self.wsgi = WsgiGuard(self._app, dl, ROUTES, self.subject_of)

    def __call__(self, environ: dict[str, Any], start: Start) -> Iterable[bytes]:
        return self.wsgi(environ, start)

    # -- who is asking ---------------------------------------------------------------
    def token_of(self, environ: dict[str, Any]) -> str | None:
        bearer = str(environ.get("HTTP_AUTHORIZATION", ""))
        if bearer.startswith("Bearer "):
            return bearer[7:]
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        return str(cookie["token"].value) if "token" in cookie else None

    def subject_of(self, environ: dict[str, Any]) -> Subject | None:
        token = self.token_of(environ)
        login = self.tokens.get(token or "")
        if token is None or login is None:
            return None
        channel = "ui" if environ.get("HTTP_X_CHANNEL") == "ui" else "api"
        return Subject(token, login.user_id, environ.get("REMOTE_ADDR", "127.0.0.1"),
                       login.device_id, channel)

    # -- routes ------------------------------------------------------------------------
    def _app(self, environ: dict[str, Any], start: Start) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/"
        subject = self.subject_of(environ)
        if (method, path) == ("POST", "/login"):
            return self.login(environ, start)
        if subject is None:
            if path.startswith("/api/"):
                return _json(start, "401 Unauthorized", {"error": "unauthenticated"})
            return _html(start, PAGE.replace("{{body}}", LOGIN_FORM))
        if path == "/api/ping":  # the countdown's poll: background traffic, not activity
            self.lifecycle.heartbeat(subject.session_id)
            return _json(start, "200 OK", {"ok": True})
        self.lifecycle.activity(subject.session_id, ip=subject.ip, device_id=subject.device_id)
        if (method, path) == ("GET", "/"):
            return _html(start, self.page(subject))
        if (method, path) == ("POST", "/reauth"):
            return self.reauth(environ, start, subject)
        if (method, path) == ("POST", "/logout"):
            self.lifecycle.logged_out(subject.session_id)
            return _json(start, "200 OK", {"ok": True},
                         [("Set-Cookie", "token=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")])
        parts = path.strip("/").split("/")  # api, projects, <id>[, transfer]
        if len(parts) >= 3 and parts[:2] == ["api", "projects"]:
            return self.project(environ, start, subject, parts[2], parts[3:])
        return _json(start, "404 Not Found", {"error": "not found"})

    def login(self, environ: dict[str, Any], start: Start) -> Iterable[bytes]:
        form = _form(environ)
        user, password = form.get("user", ""), form.get("password", "")
        if USERS.get(user) != password or not user:
            return _json(start, "401 Unauthorized", {"error": "wrong user or password"})
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        device = cookie["device"].value if "device" in cookie else secrets.token_hex(8)
        token = secrets.token_urlsafe(18)
        self.tokens[token] = Login(user, device)
        ip = environ.get("REMOTE_ADDR", "127.0.0.1")
        self.lifecycle.created(token, user, ip=ip, device_id=device, auth_level=2)
        return _json(start, "200 OK", {"ok": True}, [
            ("Set-Cookie", f"token={token}; Path=/; HttpOnly; SameSite=Strict"),
            ("Set-Cookie", f"device={device}; Path=/; Max-Age=31536000; SameSite=Strict")])

    def reauth(self, environ: dict[str, Any], start: Start, subject: Subject
               ) -> Iterable[bytes]:
        if USERS.get(subject.user_id) != _form(environ).get("password"):
            return _json(start, "401 Unauthorized", {"error": "wrong password"})
        self.lifecycle.reauthenticated(subject.session_id, auth_level=2, ip=subject.ip,
                                       device_id=subject.device_id)
        return _json(start, "200 OK", {"ok": True})

    def project(self, environ: dict[str, Any], start: Start, subject: Subject,
                project_id: str, rest: list[str]) -> Iterable[bytes]:
        with self.lock:
            project = self.projects.get(project_id)
            if project is None or project[1] != subject.user_id:
                return _json(start, "404 Not Found", {"error": "no such project of yours"})
            # Only reached on allow: the middleware asked doublelock first.
            if environ["REQUEST_METHOD"] == "DELETE":
                del self.projects[project_id]
                return _json(start, "200 OK", {"deleted": project_id})
            if rest == ["transfer"]:
                new_owner = _form(environ).get("new_owner", "")
                if new_owner not in USERS:
                    return _json(start, "400 Bad Request", {"error": "no such user"})
                project[1] = new_owner
                return _json(start, "200 OK", {"transferred": project_id, "to": new_owner})
        return _json(start, "404 Not Found", {"error": "not found"})

    def page(self, subject: Subject) -> str:
        with self.lock:
            mine = [(pid, name) for pid, (name, owner) in self.projects.items()
                    if owner == subject.user_id]
        rows = "\n".join(PROJECT_ROW.format(id=pid, name=html.escape(name)) for pid, name in mine)
        body = APP_BODY.format(user=html.escape(subject.user_id), rows=rows or EMPTY_ROW,
                               token=json.dumps(subject.session_id),
                               idle_s=self.policy.idle_timeout // 1000)
        return PAGE.replace("{{body}}", body)


def _form(environ: dict[str, Any]) -> dict[str, str]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(min(length, 64 * 1024)).decode() if length else ""
    if environ.get("CONTENT_TYPE", "").startswith("application/json"):
        loaded = json.loads(raw or "{}")
        return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
    return {k: v[0] for k, v in parse_qs(raw).items()}


def _json(start: Start, status: str, body: dict[str, Any],
          headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = json.dumps(body).encode()
    start(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                   ("Content-Length", str(len(data))), *(headers or [])])
    return [data]


def _html(start: Start, page: str) -> list[bytes]:
    data = page.encode()
    start("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
                     ("Content-Length", str(len(data)))])
    return [data]


LOGIN_FORM: Final = """
<main class="card narrow">
  <h1>Sign in</h1>
  <form id="login">
    <label>User <input name="user" value="alice" autocomplete="username"></label>
    <label>Password <input name="password" type="password" autocomplete="current-password"></label>
    <button type="submit">Sign in</button>
    <p class="hint">alice / wonderland, bob / builder</p>
    <p id="login-error" class="error" hidden></p>
  </form>
</main>
"""

APP_BODY: Final = """
<header>
  <strong>Projects</strong>
  <span>signed in as <b id="user">{user}</b></span>
  <span id="idle" data-idle-s="{idle_s}" title="Signed out after this long without activity">
    idle timeout in <b id="idle-left">…</b></span>
  <button id="logout" class="quiet">Log out</button>
</header>
<main class="card">
  <p id="status" role="status" hidden></p>
  <table>
    <thead><tr><th>Project</th><th>Transfer to</th><th></th></tr></thead>
    <tbody id="projects">{rows}</tbody>
  </table>
</main>
<dialog id="reauth">
  <form id="reauth-form" method="dialog">
    <h2>Confirm it's you</h2>
    <p id="reauth-why">This action needs a recent sign-in.</p>
    <label>Password <input name="password" type="password" autocomplete="current-password"></label>
    <p id="reauth-error" class="error" hidden></p>
    <menu><button value="cancel" formnovalidate class="quiet">Cancel</button>
          <button id="reauth-submit" value="ok">Confirm</button></menu>
  </form>
</dialog>
<script>const TOKEN = {token};</script>
"""

PROJECT_ROW: Final = """<tr data-project="{id}"><td>{name}</td>
  <td><form class="transfer"><input name="new_owner" placeholder="user" size="8">
      <button>Transfer</button></form></td>
  <td><button class="delete danger">Delete</button></td></tr>"""

EMPTY_ROW: Final = '<tr><td colspan="3" class="hint">No projects left.</td></tr>'

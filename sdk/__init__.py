"""The application side of doublelock: ask before a dangerous action, act on allow.

    from sdk import Doublelock, Subject, guard

    dl = Doublelock(app="billing")
    with guard(dl, "payments.transfer", Subject(session_id, user_id, ip, device_id)):
        transfer()

docs/SDK.md has the whole API: check/check_async, guard/guarded, the ASGI and WSGI
middleware, and the lifecycle helpers for identity services.
"""

from sdk.client import Doublelock, Subject
from sdk.guard import AlreadyRan, Blocked, guard, guarded
from sdk.lifecycle import Lifecycle
from sdk.middleware import AsgiGuard, Route, WsgiGuard, refusal

__all__ = ["AlreadyRan", "AsgiGuard", "Blocked", "Doublelock", "Lifecycle", "Route",
           "Subject", "WsgiGuard", "guard", "guarded", "refusal"]

"""Run the code of a dangerous action only on allow, and never twice for one intent.

    with guard(dl, "project.delete", subject, resource="project/42"):
        delete_project(42)

    @guarded(dl, "account.delete")
    def delete_account(subject: Subject, account_id: str) -> None: ...

The body does not run unless the decision is an allow (``Blocked`` carries the
decision otherwise). An intent id whose body ran once is refused in this process
(``AlreadyRan``), and the worker denies it as ``duplicate_intent`` in every other.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, ParamSpec, TypeVar

from doublelock.verdict import Decision
from sdk.client import Doublelock, Subject

# Intent ids whose body ran, remembered per process; the worker remembers them all.
REMEMBERED: Final = 100_000

P = ParamSpec("P")
R = TypeVar("R")


class Blocked(Exception):
    """The action must not run; ``decision`` says why (deny or step_up)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"{decision.action}: {decision.verdict.value} "
                         f"({decision.reason.value}) {decision.detail}".rstrip())
        self.decision = decision


class AlreadyRan(Exception):
    def __init__(self, intent_id: str) -> None:
        super().__init__(f"the action of intent {intent_id!r} ran already")
        self.intent_id = intent_id


class _Ran:
    def __init__(self) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, intent_id: str) -> bool:
        return intent_id in self._ids

    def claim(self, intent_id: str) -> None:
        with self._lock:
            if intent_id in self._ids:
                raise AlreadyRan(intent_id)
            self._ids[intent_id] = None
            if len(self._ids) > REMEMBERED:
                self._ids.popitem(last=False)


_RAN: Final = _Ran()


class guard:  # lower case: used like a function, `with guard(...)`
    """A context manager, sync (``with``) or async (``async with``); entering it
    returns the allow decision, or raises ``Blocked`` or ``AlreadyRan``."""

    def __init__(self, client: Doublelock, action: str, subject: Subject,
                 resource: str = "", *, intent_id: str | None = None,
                 timeout: float | None = None) -> None:
        self.client = client
        self.intent = client.intent(subject, action, resource, intent_id=intent_id)
        self.timeout = timeout

    def _admit(self, decision: Decision) -> Decision:
        if not decision.allowed:
            raise Blocked(decision)
        # Claimed before the body runs: a body that fails half-way has still run.
        _RAN.claim(decision.intent_id)
        return decision

    def _known(self) -> None:
        if self.intent.intent_id in _RAN:  # not even asked: its body ran here
            raise AlreadyRan(self.intent.intent_id)

    def __enter__(self) -> Decision:
        self._known()
        return self._admit(self.client.check(self.intent, self.timeout))

    def __exit__(self, *exc: Any) -> None:
        return None

    async def __aenter__(self) -> Decision:
        self._known()
        return self._admit(await self.client.check_async(self.intent, self.timeout))

    async def __aexit__(self, *exc: Any) -> None:
        return None


def guarded(client: Doublelock, action: str,
            resource: Callable[..., str] | None = None) -> Callable[[Callable[P, R]],
                                                                     Callable[P, R]]:
    """A decorator: the function's first argument is the ``Subject``; an
    ``intent_id=`` keyword, if passed, is taken off for the intent (a client's
    idempotency key). ``resource`` makes the resource from the call's arguments."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        def guard_for(args: Any, kwargs: Any) -> guard:
            intent_id = kwargs.pop("intent_id", None)
            subject = args[0] if args else kwargs.get("subject")
            if not isinstance(subject, Subject):
                raise TypeError(f"{fn.__qualname__}: the first argument must be a Subject")
            named = "" if resource is None else resource(*args, **kwargs)
            return guard(client, action, subject, named, intent_id=intent_id)

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with guard_for(args, kwargs):
                    return await fn(*args, **kwargs)
            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with guard_for(args, kwargs):
                return fn(*args, **kwargs)
        return run

    return decorate

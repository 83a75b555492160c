"""Where the worker sends a decision: the reply topic an intent asks for, only if it is
named after the decisions topic and exists; else the decisions topic, counted."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from doublelock.events import Intent
from streams.replies import Replies

INTENT = Intent("I1", "S1", "U1", "a.b", "r", 1_778_576_400_000, "192.0.2.1", "D1", "api", "app")


def test_routes() -> None:
    reads: list[int] = []

    async def partitions() -> dict[str, int]:
        reads.append(1)
        return {"doublelock.decisions.billing": 8, "doublelock.intents": 4}

    replies = Replies("doublelock.decisions", partitions)

    def route(**fields: object) -> tuple[str, int | None]:
        return asyncio.run(replies.route(replace(INTENT, **fields)))  # type: ignore[arg-type]

    assert asyncio.run(replies.route(None)) == ("doublelock.decisions", None)
    assert route() == ("doublelock.decisions", None)
    assert route(reply_to="doublelock.decisions.billing", reply_partition=7) == (
        "doublelock.decisions.billing", 7)
    assert route(reply_to="doublelock.decisions.billing") == (
        "doublelock.decisions.billing", None)
    assert replies.unroutable == 0
    for hostile in ({"reply_to": "doublelock.intents"},  # not named after the decisions topic
                    {"reply_to": "doublelock.decisionsX"},
                    {"reply_to": "doublelock.decisions.nobody"},  # does not exist
                    {"reply_to": "doublelock.decisions.billing", "reply_partition": 8},
                    {"reply_to": "doublelock.decisions.billing", "reply_partition": -1}):
        assert route(**hostile) == ("doublelock.decisions", None), hostile
    assert replies.unroutable == 5
    # One read of the topic list served every name: invented names cost no more reads
    # until it is a second old.
    assert reads == [1]

"""Refine: draft, then rounds of critique and revision until `stop` holds.

Each round critiques the current draft; if `stop(draft, critique)` holds the
draft is final, otherwise it is revised with the critique. `rounds` counts
the critiques made. Without `stop`, every round revises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hive.runtime.trace import Trace
from hive.runtime.values import Record, truthy


async def refine(
    draft: Callable[[], Awaitable[Record]],
    critique: Callable[[Record, int], Awaitable[Record]],
    revise: Callable[[Record, Record, int], Awaitable[Record]],
    stop: Callable[[Record, Record, int], Awaitable[object]] | None,
    rounds: int,
    trace: Trace,
    path: str,
) -> Record:
    current = await draft()
    done = 0
    stopped = False
    for r in range(rounds):
        review = await critique(current, r)
        done += 1
        if stop is not None and truthy(await stop(current, review, r)):
            stopped = True
            break
        current = await revise(current, review, r)
    trace.event("refine", path, rounds=done, stopped=stopped)
    return Record({**current, "rounds": done})

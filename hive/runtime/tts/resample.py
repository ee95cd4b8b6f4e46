"""Rejection sampling: re-sample a call until a condition (a verifier) accepts it.

Attempts run one after another (each may depend on the verifier of the
last), at most `max_attempts`. The result is the first accepted attempt, or
the last one with `accepted: false` when none was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hive.runtime.trace import Trace
from hive.runtime.values import Record, truthy


async def resample(
    attempt: Callable[[int], Awaitable[Record]],
    accept: Callable[[Record, int], Awaitable[object]],
    max_attempts: int,
    trace: Trace,
    path: str,
) -> Record:
    verdicts = []
    result: Record | None = None
    for k in range(max_attempts):
        result = await attempt(k)
        ok = truthy(await accept(result, k))
        verdicts.append(ok)
        if ok:
            break
    assert result is not None  # max_attempts >= 1 (the compiler checks it)
    accepted = verdicts[-1]
    trace.event("resample", path, verdicts=verdicts, accepted=accepted, attempts=len(verdicts))
    return Record({**result, "accepted": accepted, "attempts": len(verdicts)})

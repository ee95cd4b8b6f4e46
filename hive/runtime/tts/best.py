"""Best-of-N: the candidate with the highest (or, `lowest=true`, the lowest) score.

Scores are computed concurrently (a scorer agent per candidate, or a field).
A candidate whose score is not a number (the scorer's reply had none) ranks
below every scored one; ties go to the lowest index. If no candidate has a
score, the first one wins with a null score.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from hive.runtime.calls import gather_all
from hive.runtime.errors import RunError
from hive.runtime.trace import Trace
from hive.runtime.values import Record

Score = Callable[[int, Record], Awaitable[Any]]


def as_score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def pick(scores: list[Any], lowest: bool = False) -> int:
    """Index of the best numeric score (ties: lowest index); 0 when none is numeric."""
    best, best_value = 0, None
    for i, raw in enumerate(scores):
        value = as_score(raw)
        if value is None:
            continue
        if best_value is None or (value < best_value if lowest else value > best_value):
            best, best_value = i, value
    return best


async def best(
    candidates: list[Record], score: Score, trace: Trace, path: str, lowest: bool = False
) -> Record:
    if not candidates:
        raise RunError("best() over an empty list")
    scores = await gather_all([score(i, c) for i, c in enumerate(candidates)])
    index = pick(scores, lowest)
    trace.event("best", path, scores=scores, winner=index, lowest=lowest)
    chosen = candidates[index]
    if not isinstance(chosen, dict):
        return chosen  # a plain value (a number, a string) has no field to carry the score
    return Record({**chosen, "score": as_score(scores[index])})

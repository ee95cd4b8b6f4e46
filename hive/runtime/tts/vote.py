"""Majority vote, with early stopping over samples still being generated.

The winner is the most frequent key; a tie goes to the key seen first (the
lowest sample index). Samples whose key is null (the field was not found in
the reply) do not vote. Over running samples, the vote stops as soon as the
leader cannot be caught (its count exceeds the runner-up's plus every sample
not yet counted), and the remaining samples are cancelled. Samples are
counted in index order, so the stopping point, the winner (the lowest-index
sample with the winning key) and its `votes` never depend on completion order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from hive.runtime.trace import Trace
from hive.runtime.values import Record

Key = Callable[[int, Record], Awaitable[Any]]


def _hashable(value: Any) -> Hashable:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def majority(keys: list[Any]) -> tuple[int | None, int]:
    """(index of the winner's first sample, its votes) over `keys` (None: no vote)."""
    counts: dict[Hashable, int] = {}
    first: dict[Hashable, int] = {}
    for i, key in enumerate(keys):
        if key is None:
            continue
        h = _hashable(key)
        counts[h] = counts.get(h, 0) + 1
        first.setdefault(h, i)
    if not counts:
        return None, 0
    best = max(counts, key=lambda h: (counts[h], -first[h]))
    return first[best], counts[best]


def _winner(index: int | None, votes: int, candidates: list[Any]) -> Any:
    """The winning element; a record gets its `votes` (other values are returned as is)."""
    chosen = candidates[index if index is not None else 0]
    return Record({**chosen, "votes": votes}) if isinstance(chosen, dict) else chosen


async def vote(candidates: list[Record], key: Key, trace: Trace, path: str) -> Record:
    """Vote over results already computed."""
    if not candidates:
        from hive.runtime.errors import RunError

        raise RunError("vote() over an empty list")
    keys = [await key(i, c) for i, c in enumerate(candidates)]
    index, votes = majority(keys)
    trace.event("vote", path, keys=keys, winner=index, votes=votes, counted=len(keys))
    return _winner(index, votes, list(candidates))


async def vote_early(
    samples: list[Awaitable[Record]], key: Key, trace: Trace, path: str, early_stop: bool = True
) -> Record:
    """Vote over samples as they finish; stop once the winner is certain.

    Decisions look only at the longest run of finished samples from index 0 (a
    sample that finishes out of order waits for those before it), so where the vote
    stops, its winner and its count depend on the samples' keys alone, never on
    which finished first.
    """
    n = len(samples)
    tasks = [asyncio.ensure_future(s) for s in samples]
    index_of = {task: i for i, task in enumerate(tasks)}
    results: list[Any] = [None] * n
    errors: list[BaseException | None] = [None] * n
    keys: list[Any] = [None] * n
    finished_at: list[bool] = [False] * n
    prefix = 0  # samples [0, prefix) are finished and keyed
    pending = set(tasks)
    try:
        while pending:
            finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                i = index_of[task]
                finished_at[i] = True
                # Read every outcome (no "exception never retrieved"); a failure counts only
                # when the index-order count reaches it, so whether the vote fails does not
                # depend on which sample finished first.
                errors[i] = None if task.cancelled() else task.exception()
                if errors[i] is None and not task.cancelled():
                    results[i] = task.result()
            while prefix < n and finished_at[prefix]:
                if errors[prefix] is not None:
                    raise errors[prefix]
                keys[prefix] = await key(prefix, results[prefix])
                prefix += 1
                if early_stop and prefix < n and _decided(keys[:prefix], n - prefix):
                    break
            if early_stop and prefix < n and _decided(keys[:prefix], n - prefix):
                break
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    counted = keys[:prefix]
    index, votes = majority(counted)
    trace.event(
        "vote", path, keys=counted, winner=index, votes=votes, counted=prefix,
        stopped_early=prefix < n, cancelled=len(pending),
    )  # fmt: skip
    return _winner(index, votes, results)


def _decided(keys: list[Any], remaining: int) -> bool:
    """Whether the leader over `keys` stays ahead whatever `remaining` more samples say."""
    counts: dict[Hashable, int] = {}
    for key in keys:
        if key is not None:
            h = _hashable(key)
            counts[h] = counts.get(h, 0) + 1
    if not counts:
        return False
    ranked = sorted(counts.values(), reverse=True)
    runner_up = ranked[1] if len(ranked) > 1 else 0
    return ranked[0] > runner_up + remaining

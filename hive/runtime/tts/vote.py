"""Majority vote, with early stopping over samples still being generated.

The winner is the most frequent key; a tie goes to the key seen first (the
lowest sample index). Samples whose key is null (the field was not found in
the reply) do not vote. Over running samples, the vote stops as soon as the
leader cannot be caught (its count exceeds the runner-up's plus every sample
still running), and the remaining samples are cancelled. The winner's record
is the lowest-index sample with the winning key; the vote waits for every
lower-index sample first, so the result never depends on completion order.
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


def _winner(index: int | None, votes: int, candidates: list[Record | None]) -> Record:
    chosen = candidates[index if index is not None else 0]
    assert chosen is not None
    return Record({**chosen, "votes": votes})


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
    """Vote over samples as they finish; stop once the winner is certain."""
    n = len(samples)
    tasks = [asyncio.ensure_future(s) for s in samples]
    index_of = {task: i for i, task in enumerate(tasks)}
    results: list[Record | None] = [None] * n
    keys: list[Any] = [None] * n
    done = [False] * n
    pending = set(tasks)
    decided: int | None = None
    try:
        while pending:
            finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(finished, key=index_of.__getitem__):
                i = index_of[task]
                results[i] = task.result()  # a failed sample fails the vote
                keys[i] = await key(i, results[i])
                done[i] = True
            if early_stop and pending:
                decided = _decided(keys, done)
                if decided is not None:
                    break
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    counted = [k if d else None for k, d in zip(keys, done, strict=True)]
    index, votes = majority(counted)
    trace.event(
        "vote", path, keys=counted, winner=index, votes=votes, counted=sum(done),
        stopped_early=bool(pending), cancelled=len(pending),
    )  # fmt: skip
    return _winner(index, votes, results)


def _decided(keys: list[Any], done: list[bool]) -> int | None:
    """The winner's index if no unfinished sample can change the result, else None."""
    remaining = done.count(False)
    counts: dict[Hashable, int] = {}
    for key, finished in zip(keys, done, strict=True):
        if finished and key is not None:
            h = _hashable(key)
            counts[h] = counts.get(h, 0) + 1
    if not counts:
        return None
    ranked = sorted(counts.values(), reverse=True)
    lead = ranked[0]
    runner_up = ranked[1] if len(ranked) > 1 else 0
    if lead <= runner_up + remaining:
        return None
    leader = next(h for h, c in counts.items() if c == lead)
    first = next(
        i for i, k in enumerate(keys) if done[i] and k is not None and _hashable(k) == leader
    )
    if not all(done[:first]):
        return None  # a lower-index sample may still be the winner's representative
    return first

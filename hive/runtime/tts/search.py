"""Beam search and tree-of-thought over step-wise generation.

A state is `{text, steps, score}`; the root is empty. Each level expands
every state on the frontier `branch` times (one call of the expand agent
per child, each with its own seed), appends the step to the state
(`steps`, and `text` joined by newlines), scores every child (the score
agent, concurrently), drops empty steps and duplicate texts, and keeps the
best `width` children (ties: the earlier child). After `depth` levels the
best state wins. `beam(width, branch, depth)` and `tree(breadth, keep,
depth)` are the same search: the tree expands each kept thought `breadth`
times and keeps `keep` per level (default: `breadth`). A child whose score
is not a number ranks last. If a level yields no child, the search stops and
the best state so far wins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hive.runtime.calls import gather_all
from hive.runtime.trace import Trace
from hive.runtime.tts.best import as_score
from hive.runtime.values import Record, RecordList

Expand = Callable[[Record, tuple[int, int, int]], Awaitable[Record]]
Score = Callable[[Record, tuple[int, int, int]], Awaitable[Any]]


def root() -> Record:
    return Record(text="", steps=RecordList(), score=0.0)


def child(state: Record, step: str) -> Record:
    text = f"{state['text']}\n{step}" if state["text"] else step
    return Record(text=text, steps=RecordList([*state["steps"], step]), score=None)


def keep_best(children: list[Record], width: int) -> list[Record]:
    """Distinct non-empty children, best `width` by score (stable: earlier wins ties)."""
    seen: set[str] = set()
    unique = []
    for c in children:
        if c["steps"][-1] and c["text"] not in seen:
            seen.add(c["text"])
            unique.append(c)
    ranked = sorted(
        range(len(unique)),
        key=lambda i: (
            as_score(unique[i]["score"]) is None,
            -(as_score(unique[i]["score"]) or 0),
            i,
        ),
    )
    return [unique[i] for i in ranked[:width]]


async def search(
    expand: Expand,
    score: Score,
    *,
    width: int,
    branch: int,
    depth: int,
    trace: Trace,
    path: str,
    kind: str = "beam",
) -> Record:
    frontier = [root()]
    for level in range(depth):
        jobs = [(b, k, state) for b, state in enumerate(frontier) for k in range(branch)]
        steps = await gather_all([expand(state, (level, b, k)) for b, k, state in jobs])
        children = [
            child(state, str(step.get("text", "")).strip())
            for (_, _, state), step in zip(jobs, steps, strict=True)
        ]
        scores = await gather_all(
            [score(c, (level, b, k)) for c, (b, k, _) in zip(children, jobs, strict=True)]
        )
        for c, s in zip(children, scores, strict=True):
            c["score"] = as_score(s)
        kept = keep_best(children, width)
        trace.event(
            kind, path, level=level, expanded=len(children),
            scores=[c["score"] for c in children], kept=[c["text"] for c in kept],
        )  # fmt: skip
        if not kept:
            break
        frontier = kept
    return frontier[0]

"""Hotspot mode: re-sample an earlier path from one of its most uncertain positions.

An approximate sampler (not the model's distribution over whole paths): a
re-sample of a context that already has a finished path P keeps P's tokens
up to a branch position j, draws a token at j that no earlier path took
from there, and continues by normal (exact-mode) sampling. The positions
before j cost no forward pass and, through the radix cache, no prefill.

The branch rule, from P's stored distributions:
  score(j) = entropy(j) * unexplored(j)
- entropy (nats) of the stored distribution at j: where the model hesitated,
  a different choice is plausible; a confident position scores ~0;
- unexplored(j): the probability of the tokens no earlier path took at j, so
  a re-sample always differs from every path through that prefix (a
  duplicate path is wasted work for a vote), and spent positions fade.
Position is deliberately not in the score: a late branch saves more but
keeps more of a path that was rejected (with a (j + 1) / len(P) factor, a
2-problem smoke run of `hive bench resample` was 1.59x faster but solved
neither problem; exact sampling solved one). The saving then depends on where
the model hesitates.
Among the HOTSPOT_CANDIDATES best positions, j is drawn with probability
proportional to its score, and the new token in proportion to the
unexplored tokens' probabilities, both from the request's own generator. With
no finished path, or no position with unexplored mass (greedy, or
everything tried), the request samples exactly as in exact mode.
"""

from __future__ import annotations

import math

import torch

from hive.runtime.engine.logits_cache import LogitsCache, TrieNode
from hive.runtime.engine.sampler import draw_uniform

HOTSPOT_CANDIDATES = 4


def branch_point(
    cache: LogitsCache, key: tuple, generator: torch.Generator
) -> tuple[list[int], int, list[float]] | None:
    """(P's tokens before j, the new token at j, their raw logprobs), or None."""
    paths = cache.completed.get(key)
    root = cache.entries.get(key)
    if not paths or root is None:
        return None
    base = paths[-1]
    candidates: list[tuple[float, int, TrieNode]] = []
    node: TrieNode | None = root
    for j, token in enumerate(base):
        if node is None or not node.alive:
            break
        dist = node.dist
        if dist is not None and dist.entropy > 0:
            unexplored = sum(
                p
                for t, p in zip(dist.ids, dist.probabilities(), strict=True)
                if t not in node.children
            )
            score = dist.entropy * unexplored
            if score > 0:
                candidates.append((score, j, node))
        node = node.children.get(token)
    if not candidates:
        return None
    best = sorted(candidates, key=lambda c: (-c[0], c[1]))[:HOTSPOT_CANDIDATES]
    _, j, at = best[_pick([c[0] for c in best], draw_uniform(generator))]
    dist = at.dist
    assert dist is not None
    options = [
        (t, p, lp)
        for t, p, lp in zip(dist.ids, dist.probabilities(), dist.logprobs, strict=True)
        if t not in at.children
    ]
    token, _, token_logprob = options[_pick([o[1] for o in options], draw_uniform(generator))]
    return base[:j], token, [*_logprobs(root, base[:j]), token_logprob]


def _pick(weights: list[float], u: float) -> int:
    """Inverse CDF over `weights` (in order) for a draw u in [0, 1)."""
    target = u * sum(weights)
    running = 0.0
    for i, w in enumerate(weights):
        running += w
        if target < running:
            return i
    return len(weights) - 1


def _logprobs(root: TrieNode, tokens: list[int]) -> list[float]:
    """The stored raw logprob of each token of a path (nan where its row kept no such token)."""
    out = []
    node: TrieNode | None = root
    for token in tokens:
        dist = node.dist if node is not None else None
        value = math.nan
        if dist is not None and token in dist.ids:
            value = dist.logprobs[list(dist.ids).index(token)]
        out.append(value)
        node = node.children.get(token) if node is not None else None
    return out

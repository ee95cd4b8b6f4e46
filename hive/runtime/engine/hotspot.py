"""Hotspot mode: re-sample an earlier path at its uncertain positions, keep the rest.

An approximate sampler (not the model's distribution over whole paths): a
re-sample of a context that already has a finished path P keeps P's tokens
up to a branch position j, draws a token at j that no earlier path took
from there, then copies P's tokens after j for as long as P's stored
distribution there was confident (entropy below STABLE_ENTROPY nats), up to
P's next uncertain position, where the model samples again and normal
(exact-mode) sampling goes on, drafts included (drafts.py). The positions
before j cost no forward pass and, through the radix cache, no prefill; the copied ones cost no forward
pass either, only their share of one prefill (decode steps are what a
re-sample saves, and on a CPU a decode step costs as much as dozens of
prefill tokens). The copy is the approximation: the copied tokens were
confident after P's token at j, not after the new one (their logprobs are
P's). Measured on `hive bench resample` (BENCHMARKS.md): with the copy,
re-sampling ran 1.50x faster than the cache off on one seed (1.11x before),
1.25x per attempt; pooled over five seeds (`--seeds 5`), 1.72x fewer steps
and 1.50x in wall time on a memory-bound CPU, one seed's ratio ranging from
1.38x to 2.26x in steps. On all 40 arithmetic problems, 1.23x against the earlier
rule's 1.30x, and both solved fewer problems than exact sampling (11 and 9 of
40, against 14): hotspot mode trades accuracy for speed. On the 8 problems,
other thresholds did worse, and not in order: 0.15, 0.5, 0.7 and 1.0 nats
took 27.9, 24.0, 36.3 and 28.4 s against 0.3's 22.4-23.0 s.
Copying more makes paths that run on to max_tokens, and what a threshold
saves depends on which problems it happens to solve, which sets the number
of attempts.
Re-sampling a copied path again only when the model's token matches P's at
P's position was measured too, and gave nothing (22.4 s). Verifying the copied
tokens as a draft instead (exact sampling after the branch) took 557 steps
against the copy's 413 and solved 2 of 8 problems against 3: dropped.

The branch rule, from P's stored distributions:
  score(j) = entropy(j) * unexplored(j)
- entropy (nats) of the stored distribution at j: where the model hesitated,
  a different choice is plausible; a confident position scores ~0;
- unexplored(j): the probability of the tokens no earlier path took at j, so
  a re-sample always differs from every path through that prefix (a
  duplicate path is wasted work for a vote), and spent positions fade.
Position is deliberately not in the score: a late branch saves more but
keeps more of a path that was rejected. Measured with a weight
((j + 1) / len(P))^a (BENCHMARKS.md, "Hotspot's branch position against
accuracy"): a = 0.5 took 2.40x fewer steps than the cache off on the
benchmark, but on all 40 problems solved 12 of 80 runs against exact
sampling's 26 (a = 0.25: 14; this rule: 21), fewer problems a minute than
the cache off, where this rule solves more (5.8 against 5.2). The saving then
depends on where the model hesitates.
Among the HOTSPOT_CANDIDATES best positions, j is drawn with probability
proportional to its score, and the new token in proportion to the
unexplored tokens' probabilities, both from the request's own generator. With
no finished path, or no position with unexplored mass (greedy, or
everything tried), the request samples exactly as in exact mode.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from hive.runtime.engine.logits_cache import LogitsCache, TrieNode
from hive.runtime.engine.sampler import draw_uniform
from hive.runtime.engine.stored_distribution import StoredDistribution

HOTSPOT_CANDIDATES = 4
STABLE_ENTROPY = 0.3  # nats: a position of P below it is copied after a branch


class Branch(NamedTuple):
    """A re-sample's start: P's tokens before j, the new token, P's copied tokens after
    it; and their logprobs (raw, from the stored rows; nan where a row kept no such
    token)."""

    tokens: list[int]
    logprobs: list[float]


def branch_point(cache: LogitsCache, key: tuple, generator: torch.Generator) -> Branch | None:
    """Where a re-sample of `key` starts (None: no finished path, or nothing unexplored)."""
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
    tail, tail_logprobs = _stable_tail(at.children.get(base[j]), base[j + 1 :])
    return Branch(
        [*base[:j], token, *tail], [*_logprobs(root, base[:j]), token_logprob, *tail_logprobs]
    )


def _stable_tail(node: TrieNode | None, tokens: list[int]) -> tuple[list[int], list[float]]:
    """The first `tokens` of P (from `node`, P's trie node after its token at j) whose
    stored distributions were confident, with their logprobs."""
    tail: list[int] = []
    logprobs: list[float] = []
    for token in tokens:
        dist = node.dist if node is not None and node.alive else None
        if dist is None or dist.entropy > STABLE_ENTROPY:
            break
        tail.append(token)
        logprobs.append(_logprob(dist, token))
        node = node.children.get(token)  # type: ignore[union-attr]
    return tail, logprobs


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
        out.append(_logprob(dist, token) if dist is not None else math.nan)
        node = node.children.get(token) if node is not None else None
    return out


def _logprob(dist: StoredDistribution, token: int) -> float:
    ids = list(dist.ids)
    return dist.logprobs[ids.index(token)] if token in ids else math.nan

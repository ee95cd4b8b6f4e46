"""Logits Cache drafts: an earlier path's continuation, verified in one forward pass.

A path that has left its trie (a token no earlier path took from there) is
in new territory: every position needs the model. But re-samples of one
context keep saying the same things in places (the numbers of the problem,
"so the answer is"), at other positions than the earlier paths did. So after
each of its tokens, a request looks up its last two tokens in the finished
paths of its key (the most recent occurrence) and proposes the tokens that
followed there, at most `EngineConfig.draft_tokens` of them.

The step then runs the request's last token and the draft together (k + 1
decode rows on the request's pages instead of one) and samples each position
in turn with the request's own generator, as k + 1 decode steps would:
position i is sampled only if the token sampled before it equals the draft's
token there, so its distribution is the one the model computes for this
path. The first mismatch (or a stop) ends it; the K/V written for the
rejected draft tokens is dropped (`num_kv` goes back, their pages are
freed). So a request's tokens do not depend on the drafts (the exactness
contract; as in any batch, a row's logits may differ from a lone decode
row's in the last float bits), only the number of sequential steps does:
each accepted draft token is one step fewer. A CPU decode step reads all the
weights whatever its rows (the default model's GEMMs: 64 ms for 1 row, 78 ms
for 8 on the Zen 3 machine), so a few more rows cost less than the steps they
save; the confidence cut keeps the rows to those likely to be taken
(BENCHMARKS.md, "Logits Cache drafts").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hive.runtime.engine.logits_cache import TrieNode

# A draft ends before the token at which the chance that it is taken whole, by the
# earlier path's own probabilities, falls below this (BENCHMARKS.md: 0.2 drafted 31%
# more tokens for the same steps).
MIN_DRAFT_CONFIDENCE = 0.5

# (second-last, last token) -> (the path, its tokens' probabilities, the index in it of
# the token that followed)
Continuations = dict[tuple[int, int], tuple[list[int], list[float], int]]


def path_confidences(root: TrieNode, path: list[int]) -> list[float]:
    """The probability of each token of a finished path under the distribution stored
    where it was sampled (0 where that is no longer stored)."""
    out = []
    node: TrieNode | None = root
    for token in path:
        dist = node.dist if node is not None and node.alive else None
        out.append(dist.probability(token) if dist is not None else 0.0)
        node = node.children.get(token) if node is not None else None
    return out


def index_path(continuations: Continuations, path: list[int], confidences: list[float]) -> None:
    """Record `path`'s bigrams; a later path's occurrence replaces an earlier one's."""
    for i in range(len(path) - 2):
        continuations[(path[i], path[i + 1])] = (path, confidences, i + 2)


def propose(
    continuations: Continuations | None, tokens: list[int], max_len: int
) -> tuple[int, ...]:
    """The tokens that followed `tokens`' last two in an earlier path, at most `max_len`,
    while that path's own probability of taking them all stays MIN_DRAFT_CONFIDENCE or
    more (none if there is no such bigram)."""
    if not continuations or max_len <= 0 or len(tokens) < 2:
        return ()
    found = continuations.get((tokens[-2], tokens[-1]))
    if found is None:
        return ()
    path, confidences, start = found
    end, chance = start, 1.0
    while end < min(len(path), start + max_len):
        chance *= confidences[end]
        if chance < MIN_DRAFT_CONFIDENCE:
            break
        end += 1
    return tuple(path[start:end])

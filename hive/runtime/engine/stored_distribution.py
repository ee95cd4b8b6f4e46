"""A next-token distribution kept by the Logits Cache, replayable bit for bit.

The sampler picks a token by inverse CDF: target = u * total, the block
whose float64 block CDF first exceeds the target, then the first token of
that block whose float64 running sum (plus the block's base) exceeds it
(inverse_cdf.sample_from_probs). So every token owns a half-open interval
[lo, hi) of targets, and those intervals are exactly computable from the
processed row. A stored distribution is the list of (token, lo, hi) of the
tokens worth keeping: replaying it with the same u gives the sampler's token,
or says the target falls outside what was kept (a miss: the model runs).

What is kept: the whole support when truncation (top-k, top-p, min-p, greedy)
leaves at most MAX_STORED_TOKENS tokens, so a replay never misses; otherwise
the most probable tokens up to HEAD_MASS of the mass (or MAX_STORED_TOKENS).
A half-precision copy of the whole row would be smaller for untruncated
rows, but it cannot reproduce the float32 sampler's choice exactly, and the
cache's contract is exactness; the tail it drops is at most 1 - HEAD_MASS of
the draws, and those run the model.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right

import torch

from hive.runtime.engine.inverse_cdf import CDF_BLOCK, block_sums

MAX_STORED_TOKENS = 1024
HEAD_MASS = 0.999
BYTES_PER_TOKEN = 24  # id (4) + lo (8) + hi (8) + logprob (4)
OVERHEAD_BYTES = 160  # the object and its four arrays


class StoredDistribution:
    __slots__ = ("ids", "lo", "hi", "logprobs", "total", "complete", "entropy", "margin")

    def __init__(
        self,
        ids: array,
        lo: array,
        hi: array,
        logprobs: array,
        total: float,
        complete: bool,
        entropy: float,
        margin: float,
    ) -> None:
        self.ids = ids  # in target order (token-id order)
        self.lo = lo
        self.hi = hi
        self.logprobs = logprobs  # raw model log-probabilities (before temperature, filters)
        self.total = total
        self.complete = complete  # every reachable target is covered
        self.entropy = entropy  # nats, of the kept tokens renormalised
        self.margin = margin  # p(best) - p(second best), renormalised the same way

    @property
    def nbytes(self) -> int:
        return OVERHEAD_BYTES + BYTES_PER_TOKEN * len(self.ids)

    def lookup(self, u: float) -> int | None:
        """The index (into `ids`) of the token the sampler picks for draw `u`, or None."""
        target = u * self.total  # the sampler's float64 product
        i = bisect_right(self.lo, target) - 1
        if i >= 0 and target < self.hi[i]:
            return i
        return None

    def probabilities(self) -> list[float]:
        """The kept tokens' probabilities, renormalised over what was kept."""
        if len(self.ids) == 1:
            return [1.0]
        widths = [hi - lo for lo, hi in zip(self.lo, self.hi, strict=True)]
        mass = sum(widths)
        return [w / mass for w in widths]


def greedy_distribution(token: int, logprob: float) -> StoredDistribution:
    """A greedy row: its argmax for every draw."""
    return StoredDistribution(
        array("i", [token]),
        array("d", [-math.inf]),
        array("d", [math.inf]),
        array("f", [logprob]),
        1.0,
        True,
        0.0,
        1.0,
    )


def store_rows(
    probs: torch.Tensor, raw_logprobs: torch.Tensor, greedy: list[bool], tokens: list[int]
) -> list[StoredDistribution]:
    """Stored distributions of processed rows `probs` (R, V) float32, zero where filtered.

    `raw_logprobs` (R, V) are the model's log-softmax rows; `greedy` rows keep
    only `tokens[i]`. The interval arithmetic repeats the sampler's operations
    on the same values (float32 block sums, float64 block CDF, float64 cumsum of
    each block plus its base), so the bounds are the sampler's to the last bit.
    """
    out: list[StoredDistribution] = []
    rows = [i for i, g in enumerate(greedy) if not g]
    by_row: dict[int, StoredDistribution] = {}
    if rows:
        sub = probs[rows]
        vocab = sub.shape[1]
        sums = block_sums(sub)  # (R, B) float32, as in the sampler
        block_cdf = sums.to(torch.float64).cumsum_(dim=-1)
        blocks = block_cdf.shape[1]
        base = torch.cat([torch.zeros_like(block_cdf[:, :1]), block_cdf[:, :-1]], dim=1)
        padded = torch.zeros(len(rows), blocks * CDF_BLOCK, dtype=sub.dtype, device=sub.device)
        padded[:, :vocab] = sub
        values = padded.view(len(rows), blocks, CDF_BLOCK)
        inner = values.to(torch.float64).cumsum_(dim=-1).add_(base[:, :, None])
        for j, row in enumerate(rows):
            by_row[row] = _store_row(
                sub[j], inner[j], base[j], block_cdf[j], values[j], raw_logprobs[row]
            )
    for i, g in enumerate(greedy):
        if g:
            out.append(greedy_distribution(tokens[i], float(raw_logprobs[i, tokens[i]])))
        else:
            out.append(by_row[i])
    return out


def _store_row(
    row: torch.Tensor,
    inner: torch.Tensor,
    base: torch.Tensor,
    block_cdf: torch.Tensor,
    values: torch.Tensor,
    raw_logprobs: torch.Tensor,
) -> StoredDistribution:
    support = int((row > 0).sum())
    total = float(block_cdf[-1])
    complete = support <= MAX_STORED_TOKENS
    if complete:
        ids = torch.nonzero(row > 0).squeeze(1)
    else:
        top = torch.topk(row, MAX_STORED_TOKENS)
        covered = torch.cumsum(top.values.to(torch.float64), 0) < HEAD_MASS * total
        keep = min(MAX_STORED_TOKENS, int(covered.sum()) + 1)
        ids = torch.sort(top.indices[:keep]).values
    ids = ids.cpu()
    block = ids // CDF_BLOCK
    offset = ids % CDF_BLOCK
    flat_inner = inner.reshape(-1).cpu()
    hi = flat_inner[ids]
    prev = torch.where(offset > 0, flat_inner[(ids - 1).clamp(min=0)], base.cpu()[block])
    # The sampler's overflow rule: a target past a block's running sum (rounding) takes
    # the block's last kept token; every target of block b lies below block_cdf[b].
    last_kept = CDF_BLOCK - 1 - (values.flip(-1) > 0).int().argmax(dim=-1).cpu()
    is_last = offset == last_kept[block]
    cdf = block_cdf.cpu()[block]
    hi = torch.where(is_last, cdf, torch.minimum(hi, cdf))
    kept = prev < hi  # rounding can leave a token no target reaches
    ids, lo, hi = ids[kept], prev[kept], hi[kept]
    p = row.cpu()[ids].to(torch.float64)
    p = p / p.sum()
    entropy = float(-(p * p.clamp_min(1e-300).log()).sum())
    best = torch.topk(p, min(2, p.numel())).values.tolist() + [0.0]
    return StoredDistribution(
        array("i", ids.tolist()),
        array("d", lo.tolist()),
        array("d", hi.tolist()),
        array("f", raw_logprobs.cpu()[ids].tolist()),
        total,
        complete,
        entropy,
        best[0] - best[1],
    )

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

from hive.runtime.engine.inverse_cdf import CDF_BLOCK

MAX_STORED_TOKENS = 1024
HEAD_MASS = 0.999
BYTES_PER_TOKEN = 24  # id (4) + lo (8) + hi (8) + logprob (4)
OVERHEAD_BYTES = 160  # the object and its four arrays


class StoredDistribution:
    __slots__ = ("ids", "lo", "hi", "logprobs", "total", "complete", "entropy")

    def __init__(
        self,
        ids: array,
        lo: array,
        hi: array,
        logprobs: array,
        total: float,
        complete: bool,
        entropy: float,
    ) -> None:
        self.ids = ids  # in target order (token-id order)
        self.lo = lo
        self.hi = hi
        self.logprobs = logprobs  # raw model log-probabilities (before temperature, filters)
        self.total = total
        self.complete = complete  # every reachable target is covered
        self.entropy = entropy  # nats, of the kept tokens renormalised (hotspot mode)

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
    )


def store_rows(
    probs: torch.Tensor | None,
    cdf: tuple[torch.Tensor, torch.Tensor] | None,
    logits: torch.Tensor,
    rows: list[int],
    greedy: list[bool],
    tokens: list[int],
) -> list[StoredDistribution]:
    """Stored distributions of batch rows `rows` (greedy flags and sampled tokens per row).

    `probs` (S, V) float32 are the sampler's processed rows (zero where filtered;
    None when every row was greedy) and `cdf` their block tables; `logits` the raw
    model rows, for log-probabilities. Greedy rows keep only their token. The
    interval arithmetic repeats the sampler's operations on the same values
    (float32 block sums, float64 block CDF, float64 cumsum of each block plus its
    base), so the bounds are the sampler's to the last bit. All rows at once: the
    running sums are computed only for the blocks that hold a kept token.
    """
    whole = rows == list(range(logits.shape[0]))
    picked = logits if whole else logits.index_select(0, torch.tensor(rows, device=logits.device))
    lse = torch.logsumexp(picked, dim=-1).tolist()
    sampled = [r for r, g in zip(rows, greedy, strict=True) if not g]
    by_row: dict[int, StoredDistribution] = {}
    if sampled:
        assert probs is not None and cdf is not None
        dists = _store_sampled(probs, cdf, logits, sampled, [lse[rows.index(r)] for r in sampled])
        by_row = dict(zip(sampled, dists, strict=True))
    return [
        greedy_distribution(token, float(logits[r, token]) - lse[i]) if g else by_row[r]
        for i, (r, g, token) in enumerate(zip(rows, greedy, tokens, strict=True))
    ]


def _store_sampled(
    batch_probs: torch.Tensor,
    cdf: tuple[torch.Tensor, torch.Tensor],
    logits: torch.Tensor,
    rows: list[int],
    lse: list[float],
) -> list[StoredDistribution]:
    whole = rows == list(range(batch_probs.shape[0]))
    index = torch.tensor(rows, device=batch_probs.device)
    probs = batch_probs if whole else batch_probs.index_select(0, index)
    block_cdf = cdf[1] if whole else cdf[1].index_select(0, index)
    num_rows, vocab = probs.shape
    device = probs.device
    blocks = block_cdf.shape[1]
    base = torch.cat([torch.zeros_like(block_cdf[:, :1]), block_cdf[:, :-1]], dim=1)
    kept_mask = probs > 0
    support = kept_mask.sum(dim=-1)
    complete = (support <= MAX_STORED_TOKENS).tolist()
    # (row, id) of every kept token, in (row, id) order.
    full = [i for i, c in enumerate(complete) if c]
    pairs = []
    if full:
        nz = torch.nonzero(kept_mask if len(full) == num_rows else kept_mask[full])
        pairs.append(torch.stack([torch.tensor(full, device=device)[nz[:, 0]], nz[:, 1]], 1))
    head = [i for i, c in enumerate(complete) if not c]
    if head:
        top = torch.topk(probs[head], MAX_STORED_TOKENS, dim=-1)
        mass = top.values.to(torch.float64).cumsum(dim=-1)
        total = block_cdf[head, -1:]
        keep = ((mass < HEAD_MASS * total).sum(dim=-1) + 1).clamp(max=MAX_STORED_TOKENS)
        take = torch.arange(MAX_STORED_TOKENS, device=device)[None, :] < keep[:, None]
        rows = torch.tensor(head, device=device)[:, None].expand_as(top.indices)
        pairs.append(torch.stack([rows[take], top.indices[take]], 1))
    pair = torch.cat(pairs)
    pair = pair[torch.argsort(pair[:, 0] * vocab + pair[:, 1])]
    row, ids = pair[:, 0], pair[:, 1]
    block, offset = ids // CDF_BLOCK, ids % CDF_BLOCK
    # The running sums of the blocks that hold kept tokens only.
    needed, which = torch.unique(row * blocks + block, return_inverse=True)
    need_row, need_block = needed // blocks, needed % blocks
    cols = need_block[:, None] * CDF_BLOCK + torch.arange(CDF_BLOCK, device=device)
    values = torch.where(
        cols < vocab, probs[need_row[:, None], cols.clamp(max=vocab - 1)], 0.0
    )  # (N, CDF_BLOCK): the sampler's `values` for that block
    block_base = base[need_row, need_block]
    inner = values.to(torch.float64).cumsum_(dim=-1).add_(block_base[:, None])
    hi = inner[which, offset]
    lo = torch.where(offset > 0, inner[which, (offset - 1).clamp(min=0)], block_base[which])
    # The sampler's overflow rule: a target past a block's running sum (rounding) takes
    # the block's last kept token; every target of block b lies below block_cdf[b].
    last_kept = CDF_BLOCK - 1 - (values.flip(-1) > 0).int().argmax(dim=-1)
    cdf = block_cdf[need_row, need_block][which]
    hi = torch.where(offset == last_kept[which], cdf, torch.minimum(hi, cdf))
    kept = lo < hi  # rounding can leave a token no target reaches
    row, ids, lo, hi = row[kept], ids[kept], lo[kept], hi[kept]
    p = probs[row, ids].to(torch.float64)
    norm = torch.zeros(num_rows, dtype=torch.float64, device=device).index_add_(0, row, p)
    p = p / norm[row]
    entropy = torch.zeros_like(norm).index_add_(0, row, -p * p.clamp_min(1e-300).log())
    logprob = logits[index[row], ids] - torch.tensor(lse, device=device, dtype=logits.dtype)[row]
    counts = torch.bincount(row, minlength=num_rows).tolist()
    ids_l, lo_l, hi_l, lp_l = ids.tolist(), lo.tolist(), hi.tolist(), logprob.tolist()
    totals, entropy_l = block_cdf[:, -1].tolist(), entropy.tolist()
    out = []
    start = 0
    for r in range(num_rows):
        end = start + counts[r]
        out.append(
            StoredDistribution(
                array("i", ids_l[start:end]),
                array("d", lo_l[start:end]),
                array("d", hi_l[start:end]),
                array("f", lp_l[start:end]),
                totals[r],
                complete[r],
                entropy_l[r],
            )
        )
        start = end
    return out

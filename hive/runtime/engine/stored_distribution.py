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
from bisect import bisect_left, bisect_right

import torch

from hive.runtime.engine.inverse_cdf import CDF_BLOCK

MAX_STORED_TOKENS = 1024
HEAD_MASS = 0.999
BYTES_PER_TOKEN = 28  # id (4) + logprob (4) + lo (8) + hi (8) + the value until then (4)
OVERHEAD_BYTES = 160  # the object and its arrays


class StoredDistribution:
    """Kept tokens (token-id order) with their target intervals and raw logprobs.

    A complete row is stored as its support's values and block CDF, and its
    intervals are computed on the first lookup (most stored rows are never
    replayed); a head-only row gets them when stored, while its tail is known.
    """

    __slots__ = (
        "_ids", "_lo", "_hi", "_logprobs", "_values", "_block_cdf", "total", "complete", "nbytes",
    )  # fmt: skip

    def __init__(
        self,
        ids: array,
        logprobs: array,
        total: float,
        complete: bool,
        *,
        lo: array | None = None,
        hi: array | None = None,
        values: array | None = None,
        block_cdf: array | None = None,
    ) -> None:
        self._ids = ids
        self._logprobs = logprobs  # raw model log-probabilities (before temperature, filters)
        self.total = total
        self.complete = complete  # every reachable target is covered
        self._lo, self._hi = lo, hi
        self._values, self._block_cdf = values, block_cdf  # until the intervals exist
        # What the cache accounts for it, fixed (the lazy intervals replace the values).
        self.nbytes = OVERHEAD_BYTES + BYTES_PER_TOKEN * len(ids) + 8 * len(block_cdf or ())

    @property
    def ids(self) -> array:
        self._ensure()
        return self._ids

    @property
    def logprobs(self) -> array:
        self._ensure()
        return self._logprobs

    def lookup(self, u: float) -> int | None:
        """The index (into `ids`) of the token the sampler picks for draw `u`, or None."""
        self._ensure()
        target = u * self.total  # the sampler's float64 product
        i = bisect_right(self._lo, target) - 1
        if i >= 0 and target < self._hi[i]:
            return i
        return None

    def probabilities(self) -> list[float]:
        """The kept tokens' probabilities, renormalised over what was kept."""
        self._ensure()
        if len(self._ids) == 1:
            return [1.0]
        widths = [hi - lo for lo, hi in zip(self._lo, self._hi, strict=True)]
        mass = sum(widths)
        return [w / mass for w in widths]

    def probability(self, token: int) -> float:
        """The sampler's probability of `token` (0 if not kept): its processed value over
        the row's total while the intervals are not computed (most rows are never
        replayed), else its share of the targets."""
        ids = self._ids
        i = bisect_left(ids, token)
        if i == len(ids) or ids[i] != token:
            return 0.0
        if self._values is not None:
            return self._values[i] / self.total
        if len(ids) == 1:
            return 1.0
        return (self._hi[i] - self._lo[i]) / self.total

    @property
    def entropy(self) -> float:
        """Nats, of the kept tokens renormalised (hotspot mode's uncertainty)."""
        return -sum(p * math.log(p) for p in self.probabilities() if p > 0)

    def _ensure(self) -> None:
        """The intervals from the values, by the sampler's arithmetic (inverse_cdf): per
        block, a float64 running sum of the float32 values in id order (zeros add
        nothing) plus the block's base; a token owns [previous sum, its sum) within
        [base, block CDF), the block's last kept token up to the block CDF."""
        if self._lo is not None:
            return
        ids, values, cdf, logprobs = self._ids, self._values, self._block_cdf, self._logprobs
        assert values is not None and cdf is not None
        kept_ids, kept_lp, lo, hi = array("i"), array("f"), array("d"), array("d")
        i, n = 0, len(ids)
        while i < n:
            block = ids[i] // CDF_BLOCK
            base = cdf[block - 1] if block > 0 else 0.0
            top = cdf[block]
            end = i
            while end < n and ids[end] // CDF_BLOCK == block:
                end += 1
            running, previous = 0.0, 0.0 + base
            for k in range(i, end):
                running += values[k]
                inner = running + base
                upper = top if k == end - 1 else min(inner, top)
                if previous < upper:  # rounding can leave a token no target reaches
                    kept_ids.append(ids[k])
                    kept_lp.append(logprobs[k])
                    lo.append(previous)
                    hi.append(upper)
                previous = inner
            i = end
        self._ids, self._logprobs, self._lo, self._hi = kept_ids, kept_lp, lo, hi
        self._values = self._block_cdf = None


def greedy_distribution(token: int, logprob: float) -> StoredDistribution:
    """A greedy row: its argmax for every draw."""
    return StoredDistribution(
        array("i", [token]),
        array("f", [logprob]),
        1.0,
        True,
        lo=array("d", [-math.inf]),
        hi=array("d", [math.inf]),
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
    lse = torch.logsumexp(_select_rows(logits, rows), dim=-1).tolist()
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


def _select_rows(batch: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """`batch[rows]`, without a copy when `rows` is every row in order."""
    if rows == list(range(batch.shape[0])):
        return batch
    return batch.index_select(0, torch.tensor(rows, device=batch.device))


def _store_sampled(
    batch_probs: torch.Tensor,
    cdf: tuple[torch.Tensor, torch.Tensor],
    logits: torch.Tensor,
    rows: list[int],
    lse: list[float],
) -> list[StoredDistribution]:
    index = torch.tensor(rows, device=batch_probs.device)
    probs = _select_rows(batch_probs, rows)
    block_cdf = _select_rows(cdf[1], rows)
    kept_mask = probs > 0
    complete = (kept_mask.sum(dim=-1) <= MAX_STORED_TOKENS).tolist()
    lse_t = torch.tensor(lse, device=probs.device, dtype=logits.dtype)
    out: dict[int, StoredDistribution] = {}
    full = [i for i, c in enumerate(complete) if c]
    if full:
        out.update(_store_complete(probs, kept_mask, block_cdf, logits, index, lse_t, full))
    head = [i for i, c in enumerate(complete) if not c]
    if head:
        out.update(_store_head(probs, block_cdf, logits, index, lse_t, head))
    return [out[i] for i in range(len(rows))]


def _store_complete(
    probs: torch.Tensor,
    kept_mask: torch.Tensor,
    block_cdf: torch.Tensor,
    logits: torch.Tensor,
    index: torch.Tensor,
    lse: torch.Tensor,
    full: list[int],
) -> dict[int, StoredDistribution]:
    """Rows whose whole support is kept: its values now, the intervals on first use."""
    device = probs.device
    rows = torch.tensor(full, device=device)
    nz = torch.nonzero(kept_mask if len(full) == probs.shape[0] else kept_mask[rows])
    row, ids = rows[nz[:, 0]], nz[:, 1]  # row-major: by row, then id
    values = probs[row, ids]
    logprob = logits[index[row], ids] - lse[row]
    counts = torch.bincount(nz[:, 0], minlength=len(full)).tolist()
    ids_l, values_l, lp_l = ids.tolist(), values.tolist(), logprob.tolist()
    cdf_l = block_cdf[rows].tolist()
    out, start = {}, 0
    for j, r in enumerate(full):
        end = start + counts[j]
        out[r] = StoredDistribution(
            array("i", ids_l[start:end]),
            array("f", lp_l[start:end]),
            cdf_l[j][-1],
            True,
            values=array("f", values_l[start:end]),
            block_cdf=array("d", cdf_l[j]),
        )
        start = end
    return out


def _store_head(
    probs: torch.Tensor,
    block_cdf: torch.Tensor,
    logits: torch.Tensor,
    index: torch.Tensor,
    lse: torch.Tensor,
    head: list[int],
) -> dict[int, StoredDistribution]:
    """Rows with a support too large to keep: the most probable tokens, intervals now
    (they need the running sums over the unkept tokens of the same blocks)."""
    device = probs.device
    vocab = probs.shape[1]
    blocks = block_cdf.shape[1]
    head_rows = torch.tensor(head, device=device)
    top = torch.topk(probs[head_rows], MAX_STORED_TOKENS, dim=-1)
    mass = top.values.to(torch.float64).cumsum(dim=-1)
    keep = ((mass < HEAD_MASS * block_cdf[head_rows, -1:]).sum(dim=-1) + 1).clamp(
        max=MAX_STORED_TOKENS
    )
    take = torch.arange(MAX_STORED_TOKENS, device=device)[None, :] < keep[:, None]
    row = head_rows[:, None].expand_as(top.indices)[take]
    ids = top.indices[take]
    order = torch.argsort(row * vocab + ids)
    row, ids = row[order], ids[order]
    block, offset = ids // CDF_BLOCK, ids % CDF_BLOCK
    base = torch.cat([torch.zeros_like(block_cdf[:, :1]), block_cdf[:, :-1]], dim=1)
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
    logprob = logits[index[row], ids] - lse[row]
    counts = torch.bincount(row, minlength=probs.shape[0]).tolist()
    ids_l, lo_l, hi_l, lp_l = ids.tolist(), lo.tolist(), hi.tolist(), logprob.tolist()
    totals = block_cdf[:, -1].tolist()
    out: dict[int, StoredDistribution] = {}
    start = 0
    for r in head:  # ascending, as `row` is sorted
        end = start + counts[r]
        out[r] = StoredDistribution(
            array("i", ids_l[start:end]),
            array("f", lp_l[start:end]),
            totals[r],
            False,
            lo=array("d", lo_l[start:end]),
            hi=array("d", hi_l[start:end]),
        )
        start = end
    return out

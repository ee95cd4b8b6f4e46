"""The sampler's inverse CDF, in fixed blocks so a row's token never depends on its batch.

Shared by the sampler (which draws with it) and the Logits Cache's stored
distributions (which reproduce its arithmetic to replay a draw exactly).
"""

from __future__ import annotations

import torch

CDF_BLOCK = 1024  # tokens per block: row sums and the two-level inverse CDF


def block_sums(x: torch.Tensor) -> torch.Tensor:
    """`(rows, blocks)`: the sums of each row's CDF_BLOCK-token blocks (the last one partial).

    Fixed blocks make every sum independent of the number of rows: `x.sum(-1)`
    of a single row splits the row across threads, so its sum would differ in
    the last bits from the same row's sum in a larger batch, and an inverse-CDF
    draw could land on a neighbouring token. Each block's sum stays inside one
    thread.
    """
    rows, vocab = x.shape
    full = vocab - vocab % CDF_BLOCK
    sums = x[:, :full].reshape(rows, -1, CDF_BLOCK).sum(dim=-1)
    if full < vocab:
        sums = torch.cat([sums, x[:, full:].sum(dim=-1, keepdim=True)], dim=1)
    return sums


def row_sums(x: torch.Tensor) -> torch.Tensor:
    """Each row's sum, added in the same order whatever the number of rows."""
    return block_sums(x).sum(dim=-1)  # a few block sums per row: added serially


def cdf_tables(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 block sums, their float64 cumulative sums), both `(rows, blocks)`."""
    # Block sums in float32 (a float64 sum converts the whole row first, 10x slower);
    # their rounding (~1e-7 of a block's mass) only moves mass between the edges of
    # neighbouring blocks, deterministically.
    sums = block_sums(probs)
    return sums, sums.to(torch.float64).cumsum_(dim=-1)


def sample_from_probs(
    probs: torch.Tensor,
    uniforms: torch.Tensor,
    cdf: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Inverse CDF in token-id order: the first id whose CDF exceeds u * total mass.

    Two levels: block sums locate the block holding the target, and a float64
    cumulative sum inside that one block finds the token. A
    full-vocabulary float64 cumsum is sequential and cost ~1.5 ms a step for
    16 rows of a 49k vocabulary; this is a fraction of that. Zeros (filtered
    tokens) add nothing to either level, so the token depends only on the
    dense row and u: a distribution stored on its support gives the same
    token once scattered back into a dense row.
    """
    vocab = probs.shape[1]
    sums, block_cdf = cdf if cdf is not None else cdf_tables(probs)  # (the sampler's, reused)
    targets = uniforms.to(block_cdf)[:, None] * block_cdf[:, -1:]
    # right=True: block_cdf[b] > target >= block_cdf[b - 1], so block b has mass.
    block = torch.searchsorted(block_cdf, targets, right=True).clamp_(max=sums.shape[1] - 1)
    base = torch.where(block > 0, block_cdf.gather(1, (block - 1).clamp_(min=0)), 0.0)
    cols = block * CDF_BLOCK + torch.arange(CDF_BLOCK, device=probs.device)
    values = torch.where(cols < vocab, probs.gather(1, cols.clamp(max=vocab - 1)), 0.0)
    inner = values.to(torch.float64).cumsum_(dim=-1).add_(base)
    offset = torch.searchsorted(inner, targets, right=True)
    # Past the block's end only by rounding (its sum and its cumsum round differently,
    # or u * total rounded up to total): take the block's last kept token.
    overflow = (offset >= CDF_BLOCK).squeeze(1)
    if bool(overflow.any()):
        last_kept = CDF_BLOCK - 1 - (values[overflow].flip(-1) > 0).int().argmax(dim=-1)
        offset[overflow] = last_kept[:, None]
    return (cols.gather(1, offset)).squeeze(1)

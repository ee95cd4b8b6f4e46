"""The attention backend interface.

A backend is planned once per step (`prepare`, from the step's
`ForwardBatch`) and then run once per layer (`forward`): it writes the new
tokens' K/V into the layer's pages and returns attention outputs for every
new token.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from hive.runtime.engine.forward_batch import ForwardBatch
from hive.runtime.engine.kv_pool import KVPool


def kv_write_rows(batch: ForwardBatch, pool: KVPool) -> torch.Tensor:
    """K row of each new token in a layer's row view (its V row is `page_size` later)."""
    ps = pool.page_size
    pages: list[int] = []
    offsets: list[int] = []
    for table, q_len, kv_len in zip(batch.page_tables, batch.q_lens, batch.kv_lens, strict=True):
        for pos in range(kv_len - q_len, kv_len):
            pages.append(table[pos // ps])
            offsets.append(pos % ps)
    device = batch.input_ids.device
    return pool.k_rows(
        torch.tensor(pages, dtype=torch.long, device=device),
        torch.tensor(offsets, dtype=torch.long, device=device),
    )


class BaseAttentionBackend(ABC):
    name: str = "base"

    def __init__(self, pool: KVPool, num_heads: int, scale: float) -> None:
        self.pool = pool
        self.num_heads = num_heads
        self.scale = scale

    def plan_kv_writes(self, batch: ForwardBatch) -> None:
        """Where this step's new K/V rows go in every layer (the same rows in each)."""
        ps = self.pool.page_size
        self.k_write = kv_write_rows(batch, self.pool)
        self.v_write = self.k_write + ps
        # At page size 1 a page is one token's (K, V) pair: one copy writes both.
        self.page_write = self.k_write // 2 if ps == 1 else None

    def write_kv(self, layer_id: int, kv: torch.Tensor) -> None:
        """Store the new tokens' `(T, 2, KVH, D)` K/V in the layer's pages."""
        if self.page_write is not None:
            self.pool.token_pages(layer_id).index_copy_(0, self.page_write, kv)
            return
        rows = self.pool.rows[layer_id]
        rows.index_copy_(0, self.k_write, kv[:, 0])
        rows.index_copy_(0, self.v_write, kv[:, 1])

    @abstractmethod
    def prepare(self, batch: ForwardBatch) -> None:
        """Build the step's index tensors / plans; called once before the layers run."""

    @abstractmethod
    def forward(self, layer_id: int, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """q `(T, H, D)` and kv `(T, 2, KVH, D)` (K, then V: a token's layout in the
        pool) for the new tokens; returns `(T, H * D)`."""

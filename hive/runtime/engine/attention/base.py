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
        self.k_write = kv_write_rows(batch, self.pool)
        self.v_write = self.k_write + self.pool.page_size

    def write_kv(self, layer_id: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store the new tokens' K/V in the layer's pages (after `plan_kv_writes`)."""
        rows = self.pool.rows[layer_id]
        rows.index_copy_(0, self.k_write, k)
        rows.index_copy_(0, self.v_write, v)

    @abstractmethod
    def prepare(self, batch: ForwardBatch) -> None:
        """Build the step's index tensors / plans; called once before the layers run."""

    @abstractmethod
    def forward(
        self, layer_id: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """q `(T, H, D)`, k/v `(T, KVH, D)` for the new tokens; returns `(T, H * D)`."""

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

    @abstractmethod
    def prepare(self, batch: ForwardBatch) -> None:
        """Build the step's index tensors / plans; called once before the layers run."""

    @abstractmethod
    def forward(
        self, layer_id: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """q `(T, H, D)`, k/v `(T, KVH, D)` for the new tokens; returns `(T, H * D)`."""

"""One step's ragged batch: every scheduled request's new tokens in one tensor.

Requests are ordered decode first (one new token each, rows
`[0, num_decode)`; a decode that verifies a draft (drafts.py) is one such
row per position, on the same pages), then extends (prefill chunks). Request
i needs the logits of its last `sample_counts[i]` tokens (0: none). For
request i,
`q_lens[i]` new tokens attend to `kv_lens[i]` tokens (cached + new) held in
the pages `page_tables[i]` (also as an int64 tensor, `page_tensors[i]`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ForwardBatch:
    input_ids: torch.Tensor  # (T,) int64
    positions: torch.Tensor  # (T,) int64
    q_lens: list[int]
    kv_lens: list[int]
    page_tables: list[list[int]]
    page_tensors: list[torch.Tensor]
    num_decode: int
    sample_indices: torch.Tensor  # (S,) int64 rows whose logits are needed

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def num_requests(self) -> int:
        return len(self.q_lens)


def build_forward_batch(
    token_chunks: list[list[int]],
    start_positions: list[int],
    page_tables: list[list[int]],
    num_decode: int,
    sample_counts: list[int] | list[bool],
    device: torch.device | str,
    page_tensors: list[torch.Tensor] | None = None,
) -> ForwardBatch:
    """The step's batch; `page_tensors` (the requests' page mirrors) are built if absent."""
    if page_tensors is None:
        page_tensors = [torch.tensor(t, dtype=torch.long) for t in page_tables]
    input_ids: list[int] = []
    positions: list[int] = []
    q_lens, kv_lens, sample_rows = [], [], []
    for chunk, start, count in zip(token_chunks, start_positions, sample_counts, strict=True):
        input_ids.extend(chunk)
        positions.extend(range(start, start + len(chunk)))
        q_lens.append(len(chunk))
        kv_lens.append(start + len(chunk))
        sample_rows.extend(range(len(input_ids) - int(count), len(input_ids)))
    return ForwardBatch(
        input_ids=torch.tensor(input_ids, dtype=torch.long, device=device),
        positions=torch.tensor(positions, dtype=torch.long, device=device),
        q_lens=q_lens,
        kv_lens=kv_lens,
        page_tables=page_tables,
        page_tensors=page_tensors,
        num_decode=num_decode,
        sample_indices=torch.tensor(sample_rows, dtype=torch.long, device=device),
    )

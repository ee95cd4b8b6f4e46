"""Page tables in FlashInfer's CSR form.

For requests with page lists `pages[i]` and KV lengths `kv_lens[i]`:
`kv_indptr[i+1] - kv_indptr[i]` pages of request i sit at
`kv_indices[kv_indptr[i]:kv_indptr[i+1]]`, and its last page holds
`kv_last_page_len[i]` tokens (1..page_size). All int32.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class CSRPageTable(NamedTuple):
    kv_indptr: torch.Tensor
    kv_indices: torch.Tensor
    kv_last_page_len: torch.Tensor


def build_csr_page_table(
    page_lists: list[list[int]],
    kv_lens: list[int],
    page_size: int,
    device: torch.device | str = "cpu",
) -> CSRPageTable:
    assert len(page_lists) == len(kv_lens)
    indptr = [0]
    indices: list[int] = []
    last_lens: list[int] = []
    for pages, kv_len in zip(page_lists, kv_lens, strict=True):
        assert kv_len >= 1, "every request in a step attends to at least one token"
        num_pages = -(-kv_len // page_size)
        assert num_pages <= len(pages), f"{kv_len} tokens need {num_pages} pages, have {len(pages)}"
        indices.extend(pages[:num_pages])
        indptr.append(len(indices))
        last_lens.append(kv_len - (num_pages - 1) * page_size)
    return CSRPageTable(
        torch.tensor(indptr, dtype=torch.int32, device=device),
        torch.tensor(indices, dtype=torch.int32, device=device),
        torch.tensor(last_lens, dtype=torch.int32, device=device),
    )


def qo_indptr(q_lens: list[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """Ragged query offsets (int32), FlashInfer's `qo_indptr`."""
    out = [0]
    for n in q_lens:
        out.append(out[-1] + n)
    return torch.tensor(out, dtype=torch.int32, device=device)

"""Page tables: a request's page list with a tensor mirror, and FlashInfer's CSR form.

`PageList` is what a request holds: the scheduler edits the Python list
(allocation, prefix-cache hand-over, release) and attention backends read a
tensor copy that is brought up to date lazily, copying only what changed
since the last step (one page a step while decoding). Rebuilding tensors
from every request's whole list each step cost ~20 ms at 256 requests x
1,000 tokens (page size 1).

CSR: for requests with page lists `pages[i]` and KV lengths `kv_lens[i]`:
`kv_indptr[i+1] - kv_indptr[i]` pages of request i sit at
`kv_indices[kv_indptr[i]:kv_indptr[i+1]]`, and its last page holds
`kv_last_page_len[i]` tokens (1..page_size). All int32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from hive.runtime.engine.int_mirror import Int64Mirror


class PageList:
    """A request's KV pages, in order; `tensor()` is an int64 mirror of `ids`.

    Edit only through the methods (a direct edit of `ids` would leave the
    mirror stale).
    """

    __slots__ = ("ids", "_mirror")

    def __init__(self, pages: Sequence[int] = ()) -> None:
        self.ids: list[int] = list(pages)
        self._mirror = Int64Mirror()

    def __len__(self) -> int:
        return len(self.ids)

    def extend(self, pages: Sequence[int]) -> None:
        self.ids.extend(pages)

    def replace_prefix(self, pages: Sequence[int]) -> None:
        """Swap the first len(pages) pages (for the prefix cache's copies of them)."""
        head = self.ids[: len(pages)]
        if head != pages:
            first = next(i for i, (a, b) in enumerate(zip(head, pages, strict=True)) if a != b)
            self.ids[: len(pages)] = pages
            self._mirror.invalidate(first)

    def truncate(self, length: int) -> None:
        """Keep the first `length` pages."""
        del self.ids[length:]
        self._mirror.invalidate(length)

    def reset(self, pages: Sequence[int] = ()) -> None:
        self.ids = list(pages)
        self._mirror.invalidate()

    def tensor(self) -> torch.Tensor:
        """The pages as an int64 CPU tensor (a view; valid until the next edit)."""
        return self._mirror.view(self.ids)


class CSRPageTable(NamedTuple):
    kv_indptr: torch.Tensor
    kv_indices: torch.Tensor
    kv_last_page_len: torch.Tensor


def build_csr_page_table(
    page_lists: Sequence[torch.Tensor | Sequence[int]],
    kv_lens: list[int],
    page_size: int,
    device: torch.device | str = "cpu",
) -> CSRPageTable:
    assert len(page_lists) == len(kv_lens)
    counts, last_lens, parts = [], [], []
    for pages, kv_len in zip(page_lists, kv_lens, strict=True):
        assert kv_len >= 1, "every request in a step attends to at least one token"
        num_pages = -(-kv_len // page_size)
        assert num_pages <= len(pages), f"{kv_len} tokens need {num_pages} pages, have {len(pages)}"
        parts.append(torch.as_tensor(pages[:num_pages], dtype=torch.long))
        counts.append(num_pages)
        last_lens.append(kv_len - (num_pages - 1) * page_size)
    indptr = torch.zeros(len(counts) + 1, dtype=torch.int32)
    torch.cumsum(torch.tensor(counts, dtype=torch.int32), 0, out=indptr[1:])
    indices = torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
    return CSRPageTable(
        indptr.to(device),
        indices.to(device=device, dtype=torch.int32),
        torch.tensor(last_lens, dtype=torch.int32, device=device),
    )


def qo_indptr(q_lens: list[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """Ragged query offsets (int32), FlashInfer's `qo_indptr`."""
    out = [0]
    for n in q_lens:
        out.append(out[-1] + n)
    return torch.tensor(out, dtype=torch.int32, device=device)

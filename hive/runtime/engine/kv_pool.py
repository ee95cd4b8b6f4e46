"""The paged KV pool: one tensor per layer and a free-page allocator.

Layout, shared by every attention backend: `(num_pages, 2, page_size,
num_kv_heads, head_dim)` per layer, K at index 0 and V at 1 (FlashInfer's
"NHD" paged layout). A token at position `p` of a request lives in page
`page_ids[p // page_size]` at offset `p % page_size`.
"""

from __future__ import annotations

import torch

from hive.runtime.engine.errors import KVCacheTooSmallError, KVPoolTooLargeError


class PageAllocator:
    """Hands out page ids from a free list; `free` takes them back.

    Invariant: a page id is either free or owned (by one request or by the
    radix cache), never both, never twice.
    """

    def __init__(self, num_pages: int) -> None:
        self.num_pages = num_pages
        self._free: list[int] = list(range(num_pages - 1, -1, -1))
        self._is_free = bytearray(b"\x01") * num_pages

    @property
    def num_free(self) -> int:
        return len(self._free)

    def can_allocate(self, num: int) -> bool:
        return num <= len(self._free)

    def allocate(self, num: int) -> list[int]:
        assert num <= len(self._free), "allocate() without can_allocate()"
        if num == 0:
            return []
        pages = self._free[-num:]
        del self._free[-num:]
        for page in pages:
            self._is_free[page] = 0
        return pages

    def free(self, pages: list[int]) -> None:
        for page in pages:
            assert not self._is_free[page], f"page {page} freed twice"
            self._is_free[page] = 1
        self._free.extend(pages)

    def free_page_ids(self) -> set[int]:
        return set(self._free)


DEFAULT_MEMORY_SHARE = 0.4  # of available memory, for a pool sized by default


class KVPool:
    """Per-layer K/V page tensors plus their allocator."""

    def __init__(
        self,
        num_layers: int,
        num_pages: int,
        page_size: int,
        num_kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> None:
        self.num_layers = num_layers
        self.num_pages = num_pages
        self.page_size = page_size
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        shape = (num_pages, 2, page_size, num_kv_heads, head_dim)
        token_bytes = bytes_per_token(num_layers, num_kv_heads, head_dim, dtype)
        need = num_pages * page_size * token_bytes
        available = available_memory_bytes(torch.device(device))
        if available is not None and need > available:
            raise KVPoolTooLargeError(
                f"a KV pool of {num_pages * page_size} tokens needs {_gib(need)} but "
                f"{_gib(available)} of memory is available; lower kv_cache_tokens or "
                "kv_cache_bytes"
            )
        try:  # zeros, not empty: padded decode rows read page 0 and must not see NaNs
            self.layers = [
                torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)
            ]
        except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError included
            raise KVPoolTooLargeError(
                f"cannot allocate a KV pool of {num_pages * page_size} tokens ({_gib(need)}): "
                f"{str(exc).splitlines()[0][:200]}; lower kv_cache_tokens or kv_cache_bytes"
            ) from None
        # Row view (num_pages * 2 * page_size, kv_heads, head_dim) of each layer.
        self.rows = [t.view(-1, num_kv_heads, head_dim) for t in self.layers]
        self.allocator = PageAllocator(num_pages)

    @property
    def capacity_tokens(self) -> int:
        return self.num_pages * self.page_size

    def token_pages(self, layer_id: int) -> torch.Tensor:
        """Page size 1 only: a layer as `(num_pages, 2, kv_heads, head_dim)`, one token
        (its K and V side by side) per page."""
        assert self.page_size == 1
        return self.layers[layer_id].view(self.num_pages, 2, self.num_kv_heads, self.head_dim)

    def pages_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.page_size)

    def k_rows(self, page_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Row index of K for (page, offset); V is `page_size` rows later."""
        return page_ids * (2 * self.page_size) + offsets


def available_memory_bytes(device: torch.device) -> int | None:
    """Memory a new allocation can use on `device`: free GPU memory, or Linux's
    MemAvailable for the CPU; None where it cannot be known."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gib(num_bytes: int) -> str:
    return f"{num_bytes / 2**30:.2f} GiB"


def bytes_per_token(num_layers: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype) -> int:
    return 2 * num_layers * num_kv_heads * head_dim * torch.empty((), dtype=dtype).element_size()


def num_pages_for(
    *,
    kv_cache_tokens: int | None,
    kv_cache_bytes: int | None,
    page_size: int,
    token_bytes: int,
    default_tokens: int,
    available_bytes: int | None = None,
) -> int:
    """Pages in the pool from a budget in tokens or bytes (tokens win if both).

    Without a budget: `default_tokens`, capped at DEFAULT_MEMORY_SHARE of
    `available_bytes`, so the default never takes most of a small machine.
    """
    if kv_cache_tokens is not None:
        tokens = kv_cache_tokens
    elif kv_cache_bytes is not None:
        tokens = kv_cache_bytes // token_bytes
    else:
        tokens = default_tokens
        if available_bytes is not None:
            tokens = min(tokens, int(DEFAULT_MEMORY_SHARE * available_bytes) // token_bytes)
    num_pages = tokens // page_size
    if num_pages < 1:
        raise KVCacheTooSmallError(
            f"KV cache budget holds {tokens} tokens, less than one page of {page_size}"
        )
    return num_pages

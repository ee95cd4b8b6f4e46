"""Which prompt prefixes have ever been computed (with or without their KV kept).

The hotspot miss rate counts, per call, the prefix tokens that had been
computed before (reusable) but were no longer in the radix cache (evicted),
so they were computed again. The radix cache only knows what it still
holds; this history remembers every page-aligned prefix ever computed, as
one rolling hash per page boundary (a prefix of k pages is in the history
iff its hash is, and every shorter prefix of it is too). Memory is bounded:
past `max_entries` hashes the history starts over (old prefixes then count
as new, which can only under-count recomputation).
"""

from __future__ import annotations

_MOD = (1 << 61) - 1  # a Mersenne prime: collisions have probability ~2^-61 per pair
_BASE = 1_000_003


def page_hashes(token_ids: list[int], page_size: int) -> list[int]:
    """The rolling hash of `token_ids[:k * page_size]` for k = 1, 2, ... (whole pages)."""
    hashes = []
    h = 0
    full = len(token_ids) - len(token_ids) % page_size
    for i in range(full):
        h = (h * _BASE + token_ids[i] + 1) % _MOD
        if (i + 1) % page_size == 0:
            hashes.append(h)
    return hashes


class PrefixHistory:
    def __init__(self, page_size: int, max_entries: int = 1 << 21) -> None:
        self.page_size = page_size
        self.max_entries = max_entries
        self._seen: set[int] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def match(self, token_ids: list[int]) -> int:
        """Tokens of the longest page-aligned prefix of `token_ids` computed before."""
        pages = 0
        for h in page_hashes(token_ids, self.page_size):
            if h not in self._seen:
                break
            pages += 1
        return pages * self.page_size

    def insert(self, token_ids: list[int]) -> None:
        hashes = page_hashes(token_ids, self.page_size)
        if len(self._seen) + len(hashes) > self.max_entries:
            self._seen.clear()
        self._seen.update(hashes)

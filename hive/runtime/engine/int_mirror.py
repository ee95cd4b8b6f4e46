"""A growing int64 tensor that mirrors a Python list, copying only what changed.

The scheduler keeps token ids and page ids in Python lists (cheap to edit
one at a time); the model side wants tensors. Converting whole lists every
step costs O(total length) in Python per step; a mirror copies the entries
appended (or marked changed) since the last read, usually one a step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class Int64Mirror:
    __slots__ = ("_buf", "_synced")

    def __init__(self) -> None:
        self._buf = _plain_empty(16)
        self._synced = 0  # entries [0, _synced) of the buffer match the mirrored values

    def invalidate(self, start: int = 0) -> None:
        """Entries from `start` on changed (or were removed) since the last read."""
        self._synced = min(self._synced, start)

    def view(self, *parts: Sequence[int]) -> torch.Tensor:
        """The concatenation of `parts` as a CPU int64 tensor (valid until the next call)."""
        total = sum(len(p) for p in parts)
        if total > self._buf.shape[0]:
            grown = _plain_empty(max(total, 2 * self._buf.shape[0]))
            grown[: self._synced] = self._buf[: self._synced]
            self._buf = grown
        self._synced = min(self._synced, total)
        offset = 0
        for part in parts:
            end = offset + len(part)
            if self._synced < end:
                start = max(self._synced, offset)
                self._buf[start:end] = torch.tensor(part[start - offset :], dtype=torch.long)
                self._synced = end
            offset = end
        return self._buf[:total]


def _plain_empty(size: int) -> torch.Tensor:
    """A buffer that is never an inference tensor, whichever thread or mode makes it: a
    request built under a caller's `torch.inference_mode()` is later updated by the
    engine's worker thread, outside it (in-place updates of inference tensors fail there).
    """
    with torch.inference_mode(False):
        return torch.empty(size, dtype=torch.long)

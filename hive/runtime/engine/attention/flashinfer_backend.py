"""FlashInfer paged attention (GPU only; `pip install 'hive[gpu]'`).

Planned once per step: decode rows go to `BatchDecodeWithPagedKVCacheWrapper`,
extend rows (prefill chunks, with or without cached prefix) to
`BatchPrefillWithPagedKVCacheWrapper` with a causal mask (FlashInfer aligns
it to the end of each request's KV). Both read the pool's layer tensors
directly: our layout `(num_pages, 2, page_size, kv_heads, head_dim)` is
FlashInfer's "NHD" paged layout. The CSR page tables come from
`plan_inputs`, which is plain torch and tested on the CPU.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from hive.runtime.engine.attention.base import BaseAttentionBackend
from hive.runtime.engine.errors import BackendUnavailableError
from hive.runtime.engine.forward_batch import ForwardBatch
from hive.runtime.engine.kv_pool import KVPool
from hive.runtime.engine.page_table import CSRPageTable, build_csr_page_table, qo_indptr

WORKSPACE_BYTES = 128 * 1024 * 1024


class PlanInputs(NamedTuple):
    decode: CSRPageTable | None  # rows [0, num_decode)
    extend: CSRPageTable | None  # the remaining requests
    extend_qo_indptr: torch.Tensor | None


def plan_inputs(batch: ForwardBatch, page_size: int, device: Any = "cpu") -> PlanInputs:
    """CSR page tables (int32) for the decode group and the extend group of a step."""
    d = batch.num_decode
    decode = extend = extend_qo = None
    if d:
        decode = build_csr_page_table(batch.page_tensors[:d], batch.kv_lens[:d], page_size, device)
    if batch.num_requests > d:
        extend = build_csr_page_table(batch.page_tensors[d:], batch.kv_lens[d:], page_size, device)
        extend_qo = qo_indptr(batch.q_lens[d:], device)
    return PlanInputs(decode, extend, extend_qo)


def _import_flashinfer() -> Any:
    try:
        import flashinfer
    except ImportError as exc:
        raise BackendUnavailableError(
            "attention='flashinfer' needs the flashinfer package: pip install 'hive[gpu]'"
        ) from exc
    return flashinfer


class FlashInferAttentionBackend(BaseAttentionBackend):
    name = "flashinfer"

    def __init__(self, pool: KVPool, num_heads: int, scale: float) -> None:
        device = pool.layers[0].device
        if device.type != "cuda" or not torch.cuda.is_available():
            raise BackendUnavailableError(
                "attention='flashinfer' needs CUDA (device='cuda'); use attention='torch' here"
            )
        super().__init__(pool, num_heads, scale)
        flashinfer = _import_flashinfer()
        workspace = torch.empty(WORKSPACE_BYTES, dtype=torch.uint8, device=device)
        self._decode = flashinfer.BatchDecodeWithPagedKVCacheWrapper(workspace, "NHD")
        self._prefill = flashinfer.BatchPrefillWithPagedKVCacheWrapper(workspace, "NHD")
        self._dtype = pool.layers[0].dtype

    def prepare(self, batch: ForwardBatch) -> None:
        pool = self.pool
        self.plan_kv_writes(batch)
        self.num_decode = batch.num_decode
        self.has_extend = batch.num_requests > batch.num_decode
        inputs = plan_inputs(batch, pool.page_size, self.k_write.device)
        common = dict(
            num_qo_heads=self.num_heads,
            num_kv_heads=pool.num_kv_heads,
            page_size=pool.page_size,
            sm_scale=self.scale,
            q_data_type=self._dtype,
            kv_data_type=self._dtype,
        )
        if inputs.decode is not None:
            self._decode.plan(
                inputs.decode.kv_indptr,
                inputs.decode.kv_indices,
                inputs.decode.kv_last_page_len,
                head_dim=pool.head_dim,
                **common,
            )
        if inputs.extend is not None:
            self._prefill.plan(
                inputs.extend_qo_indptr,
                inputs.extend.kv_indptr,
                inputs.extend.kv_indices,
                inputs.extend.kv_last_page_len,
                head_dim_qk=pool.head_dim,
                causal=True,
                **common,
            )

    def forward(self, layer_id: int, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        self.write_kv(layer_id, kv)
        cache = self.pool.layers[layer_id]
        d = self.num_decode
        parts = []
        if d:
            parts.append(self._decode.run(q[:d].contiguous(), cache))
        if self.has_extend:
            parts.append(self._prefill.run(q[d:].contiguous(), cache))
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        return out.reshape(q.shape[0], -1)

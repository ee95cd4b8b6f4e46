"""A linear layer whose weight is laid out once for the fastest kernel of its device.

On a CPU, a bfloat16 `F.linear` hands oneDNN a plain row-major weight, and
oneDNN reorders it into its blocked (AMX/VNNI) layout on every call: for a
small model that reorder costs as much as the multiply. Reordering once at
load time (`mkldnn._reorder_linear_weight`) and calling
`mkldnn._linear_pointwise` gives bit-identical results (checked when the
layer is built) and about 1.6x faster GEMMs on this project's CPU. float32
keeps `F.linear`: its packed kernel rounds differently and is no faster.

The packed kernel also applies element-wise work to its float32 accumulator
before the single rounding to the output dtype (oneDNN post-ops): a residual
add (`add_to`) and SwiGLU's `silu(gate) * up` (`SwiGLU`). Each saves a
separate pass over the activations, which after a GEMM has streamed megabytes
of weights through the caches costs far more than its arithmetic. The results
round once where the unfused ops round two or three times: within one unit in
the last place of them, never bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

_PACKED_DTYPES = (torch.bfloat16,)
_PACK_BATCH_HINT = 16  # oneDNN's layout hint; any batch size runs on the packed weight


class Linear:
    __slots__ = ("weight", "bias", "packed", "fuses_add", "out_features", "num_bytes")

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        self.weight = weight
        self.bias = bias
        self.out_features = weight.shape[0]
        self.num_bytes = weight.numel() * weight.element_size()
        if bias is not None:
            self.num_bytes += bias.numel() * bias.element_size()
        self.packed = _pack(weight, bias)
        # The residual probe has the output's full shape, as in the model (a broadcast
        # operand would select a different, reference-only oneDNN kernel).
        self.fuses_add = self.packed is not None and _agrees(
            lambda x: _linear_binary(x, F.linear(x, weight, bias), self.packed, bias, "add"),
            lambda x: 2 * F.linear(x, weight, bias),
            weight,
        )
        if self.packed is not None:
            self.weight = None  # the packed copy replaces it: no second copy in memory

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)

    def add_to(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """`residual + self(x)`: one fused call on the packed path."""
        if self.fuses_add:
            return _linear_binary(x, residual, self.packed, self.bias, "add")
        return residual + self(x)


class SwiGLU:
    """`silu(x @ gate.T) * (x @ up.T)`, the gated activation of a Llama MLP.

    Packed: two GEMMs, silu fused into the first and the product into the
    second. Otherwise gate and up are one concatenated GEMM, then silu and
    the product as separate ops.
    """

    __slots__ = ("gate", "up", "gate_up", "num_bytes")

    def __init__(self, gate: torch.Tensor, up: torch.Tensor) -> None:
        self.num_bytes = (gate.numel() + up.numel()) * gate.element_size()
        self.gate: torch.Tensor | None = _pack(gate, None)
        self.up: torch.Tensor | None = _pack(up, None)
        self.gate_up: Linear | None = None
        if self.gate is None or self.up is None or not self._fusion_agrees(gate, up):
            self.gate = self.up = None
            self.gate_up = Linear(torch.cat([gate, up], dim=0).contiguous())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_up is None:
            return self._fused(x)
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return F.silu(gate) * up

    def _fused(self, x: torch.Tensor) -> torch.Tensor:
        act = torch.ops.mkldnn._linear_pointwise(x, self.gate, None, "swish", [], "")
        return _linear_binary(x, act, self.up, None, "mul")

    def _fusion_agrees(self, gate: torch.Tensor, up: torch.Tensor) -> bool:
        return _agrees(self._fused, lambda x: F.silu(F.linear(x, gate)) * F.linear(x, up), gate)


def _linear_binary(
    x: torch.Tensor, other: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, op: str
) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise.binary(x, other, packed, bias, op)


def _probe(weight: torch.Tensor) -> torch.Tensor:
    """Three deterministic input rows for checking a kernel against the plain ops."""
    return torch.linspace(-1, 1, 3 * weight.shape[1], dtype=weight.dtype).view(3, -1)


def _agrees(fused: Callable, plain: Callable, weight: torch.Tensor) -> bool:
    """Whether this torch build runs a fused kernel, within rounding of the plain ops."""
    probe = _probe(weight)
    try:
        got = fused(probe)
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return torch.allclose(got, plain(probe), rtol=2e-2, atol=1e-2)  # a few bf16 ulps


def _pack(weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor | None:
    """The oneDNN-packed weight, or None where packing is unavailable or not exact."""
    if weight.device.type != "cpu" or weight.dtype not in _PACKED_DTYPES:
        return None
    if not torch.backends.mkldnn.is_available():
        return None
    probe = _probe(weight)
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, _PACK_BATCH_HINT)
        got = torch.ops.mkldnn._linear_pointwise(probe, packed, bias, "none", [], "")
    except (RuntimeError, AttributeError, NotImplementedError):
        return None  # a torch build or CPU without the packed kernel
    if not torch.equal(got, F.linear(probe, weight, bias)):
        return None
    return packed

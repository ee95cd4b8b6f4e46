"""A linear layer whose weight is laid out once for the fastest kernel of its device.

bfloat16 on a CPU: `F.linear` hands oneDNN a plain row-major weight, and
oneDNN reorders it into its blocked (AMX/VNNI) layout on every call: for a
small model that reorder costs as much as the multiply. Reordering once at
load time (`mkldnn._reorder_linear_weight`) and calling
`mkldnn._linear_pointwise` gives bit-identical results (checked when the
layer is built) and about 1.6x faster GEMMs on AMX CPUs. The packed copy
replaces the plain one.

float32 on a CPU: decode steps multiply a few rows (one per running
request) by every weight, where MKL's plain sgemm reaches about a third of
the cores' FMA rate. A weight packed for MKL's `sgemm_compute`
(`mkl._mkl_reorder_linear_weight`) runs 16 rows 1.3-1.5x faster (measured
on a 2-core Xeon without AMX: 27 vs 38 ms for a 30-layer step of the
default model), bit-identical to `F.linear` on the same 16 rows. The packed
kernel takes exactly the row count it was packed for, so batches of
`FP32_PAD_FROM`..16 rows are zero-padded to 16 (still faster than the plain
kernel, whose cost jumps at 4 rows); other sizes (one stream, prefill
chunks, big batches) keep the plain weight. That costs a second copy of
the weights in memory, so the engine enables it only where it fits
(`EngineConfig.packed_weights`).

That MKL advice holds on Intel CPUs. MKL picks its fast code paths by the
CPU's vendor, and on others it runs far below the cores' rate: on a 2-core
AMD EPYC (Zen 5) plain float32 `F.linear` took 16.0 ms for one layer's
GEMMs and the head at 16 rows, MKL's packed kernel 15.2 ms, and oneDNN's
float32 kernel on a weight packed once 4.75 ms (2.5x at 1 row, 2.2-2.8x from
16 to 1,024 rows). So the float32 kernel is a choice
(`EngineConfig.float32_kernel`), by default MKL on Intel CPUs and oneDNN on
others (`default_float32_kernel`). oneDNN's packed copy replaces the plain
one, as in bf16, and serves every row count; it rounds differently from
MKL (about 1e-6 relative on the default model's layers), so it is checked
to be close to `F.linear`, not equal.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

_PACKED_DTYPES = (torch.bfloat16,)
_PACK_BATCH_HINT = 16  # oneDNN's layout hint; any batch size runs on the packed weight
FP32_PACKED_ROWS = 16  # MKL's packed sgemm runs exactly this many rows
FP32_PAD_FROM = 4  # smaller batches are faster on the plain kernel than padded to 16
_CLOSE = 1e-4  # the oneDNN float32 probe's largest error, relative to its largest output


def default_float32_kernel(vendor: str | None = None) -> str:
    """The float32 kernel for a CPU: MKL on Intel's (and where the vendor is unknown),
    oneDNN on the others. `vendor`: the CPU's vendor id (None: /proc/cpuinfo's)."""
    if vendor is None:
        vendor = cpu_vendor()
    return "onednn" if vendor not in (None, "GenuineIntel") else "mkl"


def cpu_vendor() -> str | None:
    """The `vendor_id` of /proc/cpuinfo (Linux), else None."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("vendor_id"):
                    return line.partition(":")[2].strip() or None
    except OSError:
        pass
    return None


class Linear:
    __slots__ = ("weight", "bias", "packed", "fp32_packed", "out_features", "num_bytes")

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        pack: bool = True,
        float32_kernel: str = "mkl",
    ) -> None:
        self.weight = weight
        self.bias = bias
        self.out_features = weight.shape[0]
        self.num_bytes = weight.numel() * weight.element_size()
        if bias is not None:
            self.num_bytes += bias.numel() * bias.element_size()
        self.packed = _pack(weight, bias, float32_kernel) if pack else None
        if self.packed is not None:
            self.weight = None  # the packed copy replaces it: no second copy in memory
        self.fp32_packed = (
            _pack_fp32(weight, bias)
            if pack and self.packed is None and float32_kernel == "mkl"
            else None
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        if self.fp32_packed is not None and x.dim() == 2:
            rows = x.shape[0]
            if rows == FP32_PACKED_ROWS:
                return self._fp32_packed(x)
            if FP32_PAD_FROM <= rows < FP32_PACKED_ROWS:
                padded = x.new_zeros(FP32_PACKED_ROWS, x.shape[1])
                padded[:rows] = x
                return self._fp32_packed(padded)[:rows]
        return F.linear(x, self.weight, self.bias)

    def _fp32_packed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkl._mkl_linear(
            x, self.fp32_packed, self.weight, self.bias, FP32_PACKED_ROWS
        )


def _pack(
    weight: torch.Tensor, bias: torch.Tensor | None, float32_kernel: str
) -> torch.Tensor | None:
    """The oneDNN-packed weight (bf16; float32 with the "onednn" kernel), or None where
    packing is unavailable or its result is not F.linear's (bf16: exactly; float32:
    within `_CLOSE`)."""
    uses_onednn = weight.dtype in _PACKED_DTYPES or (
        weight.dtype == torch.float32 and float32_kernel == "onednn"
    )
    if weight.device.type != "cpu" or not uses_onednn or not torch.backends.mkldnn.is_available():
        return None
    weight = weight.contiguous()
    return _checked(
        weight,
        bias,
        3,
        lambda: torch.ops.mkldnn._reorder_linear_weight(weight, _PACK_BATCH_HINT),
        lambda x, packed: torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], ""),
        tolerance=_CLOSE if weight.dtype == torch.float32 else 0.0,
    )


def _pack_fp32(weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor | None:
    """The MKL-packed float32 weight, or None where unavailable or not exact."""
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        return None
    if not torch.backends.mkl.is_available():
        return None
    weight = weight.contiguous()
    return _checked(
        weight,
        bias,
        FP32_PACKED_ROWS,
        lambda: torch.ops.mkl._mkl_reorder_linear_weight(weight, FP32_PACKED_ROWS),
        lambda x, packed: torch.ops.mkl._mkl_linear(x, packed, weight, bias, FP32_PACKED_ROWS),
    )


def _checked(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    rows: int,
    pack: Callable[[], torch.Tensor],
    run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    tolerance: float = 0.0,
) -> torch.Tensor | None:
    """`pack()`, if `run` on it gives F.linear's result on a probe of `rows` rows (exactly,
    or within `tolerance` of its largest output); None where the kernel is missing (a
    torch build or CPU without it) or not that close."""
    try:
        packed = pack()
        probe = torch.linspace(-1, 1, rows * weight.shape[1], dtype=weight.dtype)
        got = run(probe.view(rows, weight.shape[1]), packed)
    except (RuntimeError, AttributeError, NotImplementedError):
        return None
    want = F.linear(probe.view(rows, weight.shape[1]), weight, bias)
    if tolerance == 0.0:
        return packed if torch.equal(got, want) else None
    error = (got - want).abs().max().item()
    return packed if error <= tolerance * max(want.abs().max().item(), 1.0) else None

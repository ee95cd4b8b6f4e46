"""The packed (oneDNN) linear layer: bit-identical to F.linear, or not used."""

import pytest
import torch
import torch.nn.functional as F

from hive.runtime.engine.linear import Linear, SwiGLU


def _weights(dtype, bias):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(96, 64, generator=g).to(dtype)
    b = torch.randn(96, generator=g).to(dtype) if bias else None
    return w, b


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_output_is_bit_identical_to_f_linear(dtype, bias):
    w, b = _weights(dtype, bias)
    layer = Linear(w.clone(), None if b is None else b.clone())
    for rows in (1, 3, 16, 100):
        x = torch.randn(rows, 64).to(dtype)
        assert torch.equal(layer(x), F.linear(x, w, b))
    x = torch.randn(2, 5, 64).to(dtype)  # leading batch dims, as in F.linear
    assert torch.equal(layer(x), F.linear(x, w, b))


def test_bfloat16_is_packed_on_this_cpu_and_the_dense_copy_dropped():
    if not torch.backends.mkldnn.is_available():
        pytest.skip("torch built without oneDNN")
    w, _ = _weights(torch.bfloat16, False)
    layer = Linear(w)
    if layer.packed is None:
        pytest.skip("this CPU has no packed bfloat16 kernel")
    assert layer.weight is None
    assert layer.num_bytes == w.numel() * 2
    assert layer.fuses_add  # the residual add runs as a post-op of the packed kernel


def test_float32_keeps_the_plain_kernel():
    w, _ = _weights(torch.float32, False)
    layer = Linear(w)
    assert layer.packed is None and layer.weight is w


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_add_to_is_the_residual_plus_the_layer(dtype):
    w, b = _weights(dtype, True)
    layer = Linear(w.clone(), b.clone())
    x, residual = torch.randn(16, 64).to(dtype), torch.randn(16, 96).to(dtype)
    got, unfused = layer.add_to(x, residual), residual + F.linear(x, w, b)
    if not layer.fuses_add:
        assert torch.equal(got, unfused)
    else:  # one rounding instead of two: within one bf16 ulp of the unfused ops
        exact = residual.float() + F.linear(x.float(), w.float(), b.float())
        assert (got.float() - exact).abs().max() <= (unfused.float() - exact).abs().max()
        torch.testing.assert_close(got, unfused, rtol=2**-7, atol=2**-7 * exact.abs().max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_swiglu_is_silu_of_gate_times_up(dtype):
    g = torch.Generator().manual_seed(1)
    gate, up = (torch.randn(48, 64, generator=g).to(dtype) for _ in range(2))
    act = SwiGLU(gate.clone(), up.clone())
    if dtype == torch.bfloat16 and torch.backends.mkldnn.is_available():
        assert act.gate_up is None  # the fused kernels run on this CPU
    x = torch.randn(16, 64, generator=g).to(dtype)
    got = act(x)
    unfused = F.silu(F.linear(x, gate)) * F.linear(x, up)
    exact = F.silu(F.linear(x.float(), gate.float())) * F.linear(x.float(), up.float())
    if act.gate_up is not None:  # one concatenated GEMM: float32 rounding only
        torch.testing.assert_close(got, unfused)
    else:
        assert (got.float() - exact).abs().mean() <= (unfused.float() - exact).abs().mean()
        torch.testing.assert_close(got.float(), exact, rtol=2**-7, atol=2**-7 * exact.abs().max())

"""The packed linear layer: oneDNN (bf16) and MKL (float32) packing, exact or not used;
oneDNN float32 packing, close to F.linear or not used; the float32 kernel's default."""

import pytest
import torch
import torch.nn.functional as F

from hive.runtime.engine.linear import Linear, cpu_vendor, default_float32_kernel


def _weights(dtype, bias):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(96, 64, generator=g).to(dtype)
    b = torch.randn(96, generator=g).to(dtype) if bias else None
    return w, b


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_output_is_bit_identical_to_f_linear(dtype, bias):
    w, b = _weights(dtype, bias)
    layer = Linear(w.clone(), None if b is None else b.clone(), float32_kernel="mkl")
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


def test_float32_keeps_the_plain_weight_beside_its_packed_copy():
    w, _ = _weights(torch.float32, False)
    layer = Linear(w, float32_kernel="mkl")
    assert layer.packed is None and layer.weight is w
    if not torch.backends.mkl.is_available():
        pytest.skip("torch built without MKL")
    assert layer.fp32_packed is not None


@pytest.mark.parametrize("bias", [False, True])
def test_float32_padded_batches_match_the_16_row_kernel(bias):
    """4..15 rows run padded through the 16-row packed kernel: each row's output is the
    16-row product's, within float32 rounding of the plain kernel's."""
    w, b = _weights(torch.float32, bias)
    layer = Linear(w, b, float32_kernel="mkl")
    if layer.fp32_packed is None:
        pytest.skip("no MKL packed sgemm here")
    full = torch.randn(16, 64)
    reference = F.linear(full, w, b)
    for rows in (4, 7, 15):
        got = layer(full[:rows])
        assert torch.equal(got, reference[:rows])
        torch.testing.assert_close(got, F.linear(full[:rows], w, b), rtol=1e-5, atol=1e-5)


def test_pack_false_keeps_only_the_plain_kernel():
    for dtype in (torch.float32, torch.bfloat16):
        w, _ = _weights(dtype, False)
        layer = Linear(w, pack=False)
        assert layer.packed is None and layer.fp32_packed is None and layer.weight is w


@pytest.mark.parametrize("bias", [False, True])
def test_float32_onednn_replaces_the_plain_weight_and_stays_close(bias):
    """oneDNN's float32 kernel rounds differently from MKL: close, for every row count
    and leading batch dims, with one (packed) copy of the weight."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("torch built without oneDNN")
    w, b = _weights(torch.float32, bias)
    layer = Linear(w.clone(), None if b is None else b.clone(), float32_kernel="onednn")
    assert layer.packed is not None and layer.weight is None and layer.fp32_packed is None
    for shape in ((1, 64), (3, 64), (16, 64), (100, 64), (2, 5, 64)):
        x = torch.randn(*shape)
        torch.testing.assert_close(layer(x), F.linear(x, w, b), rtol=1e-5, atol=1e-5)


def test_float32_kernel_default_follows_the_cpu_vendor():
    assert default_float32_kernel("GenuineIntel") == "mkl"
    assert default_float32_kernel("AuthenticAMD") == "onednn"
    assert default_float32_kernel("HygonGenuine") == "onednn"
    assert default_float32_kernel() == default_float32_kernel(cpu_vendor())

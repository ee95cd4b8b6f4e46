"""Our forward against transformers' logits on the same inputs.

Tolerance: float32, max |ours - hf| <= 1e-4 * max|hf| + 1e-5 (observed ~1e-6 relative).
"""

import pytest
import torch
from runtime_helpers import make_tiny, prompts_for

from hive.runtime import Engine, SamplingParams
from hive.runtime.engine.forward_batch import build_forward_batch

KINDS = ["llama", "llama_untied", "llama3_rope", "qwen2", "mistral"]


def run_rows(engine, chunks, starts, page_tables, num_decode=0):
    """Logits for every row of a ragged step (test helper: all rows sampled)."""
    batch = build_forward_batch(
        chunks, starts, page_tables, num_decode, [True] * len(chunks), "cpu"
    )
    batch.sample_indices = torch.arange(batch.num_tokens)
    return engine.model.forward(batch, engine.attention)


def hf_logits(hf, ids):
    with torch.no_grad():
        return hf(torch.tensor([ids])).logits[0].float()


def assert_close(ours, ref):
    err = (ours - ref).abs().max().item()
    assert err <= 1e-4 * ref.abs().max().item() + 1e-5, err


@pytest.fixture(scope="module", params=[(k, g) for k in KINDS for g in ("mkl", "onednn")], ids=str)
def model_pair(request):
    """Each model kind with each float32 GEMM kernel (linear.py): both must match."""
    kind, kernel = request.param
    hf = make_tiny(kind)
    return hf, Engine.from_hf(hf, kv_cache_tokens=2048, float32_kernel=kernel)


def test_single_prompt_logits_match(model_pair):
    hf, engine = model_pair
    (ids,) = prompts_for(1, [37])
    pages = engine.pool.allocator.allocate(len(ids))
    ours = run_rows(engine, [ids], [0], [pages])
    assert_close(ours, hf_logits(hf, ids))
    engine.pool.allocator.free(pages)


def test_ragged_batch_logits_match(model_pair):
    hf, engine = model_pair
    prompts = prompts_for(2, [5, 40, 1, 17])
    pages = [engine.pool.allocator.allocate(len(p)) for p in prompts]
    ours = run_rows(engine, prompts, [0] * 4, pages)
    offset = 0
    for ids in prompts:
        assert_close(ours[offset : offset + len(ids)], hf_logits(hf, ids))
        offset += len(ids)
    for p in pages:
        engine.pool.allocator.free(p)


def test_prefix_hit_and_mixed_decode_logits_match(model_pair):
    """A cached prefix + new chunk, alongside decode rows, equals the full sequence."""
    hf, engine = model_pair
    a, b = prompts_for(3, [30, 25])
    pa = engine.pool.allocator.allocate(len(a) + 1)
    pb = engine.pool.allocator.allocate(len(b))
    run_rows(engine, [a[:-1], b[:12]], [0, 0], [pa, pb])  # fill the caches
    ours = run_rows(engine, [[a[-1]], b[12:]], [len(a) - 1, 12], [pa, pb], num_decode=1)
    assert_close(ours[:1], hf_logits(hf, a)[-1:])
    assert_close(ours[1:], hf_logits(hf, b)[12:])
    engine.pool.allocator.free(pa)
    engine.pool.allocator.free(pb)


@pytest.mark.parametrize("rows", [6, 16])
def test_decode_batches_on_the_packed_kernel_match(model_pair, rows):
    """4-16 decode rows take float32's packed (padded) kernel on the CPU."""
    hf, engine = model_pair
    prompts = prompts_for(4, [9 + 3 * i for i in range(rows)])
    pages = [engine.pool.allocator.allocate(len(p)) for p in prompts]
    run_rows(engine, [p[:-1] for p in prompts], [0] * rows, pages)
    ours = run_rows(engine, [p[-1:] for p in prompts], [len(p) - 1 for p in prompts], pages, rows)
    for row, ids in enumerate(prompts):
        assert_close(ours[row : row + 1], hf_logits(hf, ids)[-1:])
    for p in pages:
        engine.pool.allocator.free(p)


@pytest.mark.parametrize("kernel", ["mkl", "onednn"])
def test_engines_with_and_without_packed_weights_agree(kernel):
    hf = make_tiny("llama")
    prompts = prompts_for(5, [12, 20, 7, 30, 15, 9])
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    packed = Engine.from_hf(hf, kv_cache_tokens=2048, packed_weights=True, float32_kernel=kernel)
    plain = Engine.from_hf(hf, kv_cache_tokens=2048, packed_weights=False, float32_kernel=kernel)
    qkv = plain.model.layers[0].qkv
    assert qkv.fp32_packed is None and qkv.packed is None
    qkv = packed.model.layers[0].qkv
    if kernel == "mkl" and torch.backends.mkl.is_available():
        assert qkv.fp32_packed is not None and qkv.packed is None
    if kernel == "onednn" and torch.backends.mkldnn.is_available():
        assert qkv.packed is not None and qkv.fp32_packed is None and qkv.weight is None
    assert [c.token_ids for c in packed.generate(prompts, params)] == [
        c.token_ids for c in plain.generate(prompts, params)
    ]


def test_page_size_four_logits_match():
    hf = make_tiny("llama")
    engine = Engine.from_hf(hf, kv_cache_tokens=512, page_size=4)
    a, b = prompts_for(4, [23, 9])
    pa = engine.pool.allocator.allocate(engine.pool.pages_for(len(a)))
    pb = engine.pool.allocator.allocate(engine.pool.pages_for(len(b)))
    run_rows(engine, [a[:13], b[:-1]], [0, 0], [pa, pb])
    ours = run_rows(engine, [[b[-1]], a[13:]], [len(b) - 1, 13], [pb, pa], num_decode=1)
    assert_close(ours[:1], hf_logits(hf, b)[-1:])
    assert_close(ours[1:], hf_logits(hf, a)[13:])


@pytest.mark.parametrize("page_size", [1, 8])
def test_decode_rows_sharing_a_long_prefix_match(page_size):
    """Rows sharing >= 64 cached tokens take the grouped (cascade) path; logits still match."""
    hf = make_tiny("llama")
    engine = Engine.from_hf(hf, kv_cache_tokens=1024, page_size=page_size)
    alloc, pages_for = engine.pool.allocator, engine.pool.pages_for
    (prefix,) = prompts_for(10, [96])
    suffixes = prompts_for(11, [5, 9, 1])
    shared = alloc.allocate(pages_for(len(prefix)))
    run_rows(engine, [prefix], [0], [shared])
    tables = [shared + alloc.allocate(pages_for(len(s) + 1)) for s in suffixes]
    extend = [s[:-1] for s in suffixes if len(s) > 1]
    run_rows(
        engine,
        extend,
        [len(prefix)] * len(extend),
        [t for t, s in zip(tables, suffixes, strict=True) if len(s) > 1],
    )
    seqs = [prefix + s for s in suffixes]
    ours = run_rows(
        engine,
        [[s[-1]] for s in suffixes],
        [len(q) - 1 for q in seqs],
        tables,
        num_decode=3,
    )
    assert len(engine.attention.groups) == 1  # one shared-prefix group was formed
    for row, seq in enumerate(seqs):
        assert_close(ours[row : row + 1], hf_logits(hf, seq)[-1:])


def test_decode_rows_of_equal_length_skip_the_mask_and_match(model_pair):
    hf, engine = model_pair
    alloc, pages_for = engine.pool.allocator, engine.pool.pages_for
    prompts = prompts_for(12, [17, 17, 17])
    tables = [alloc.allocate(pages_for(len(p))) for p in prompts]
    try:
        run_rows(engine, [p[:-1] for p in prompts], [0, 0, 0], tables)
        ours = run_rows(engine, [[p[-1]] for p in prompts], [16, 16, 16], tables, num_decode=3)
        assert engine.attention.decode_bias is None
        for row, p in enumerate(prompts):
            assert_close(ours[row : row + 1], hf_logits(hf, p)[-1:])
    finally:
        for t in tables:
            alloc.free(t)


def test_bfloat16_logits_match_transformers_in_bfloat16():
    """bf16 weights and KV (packed oneDNN linears on the CPU): within bf16 rounding."""
    hf = make_tiny("llama").to(torch.bfloat16)
    engine = Engine.from_hf(hf, kv_cache_tokens=512, dtype="bfloat16")
    (a,) = prompts_for(13, [40])
    pages = engine.pool.allocator.allocate(engine.pool.pages_for(len(a)))
    run_rows(engine, [a[:-1]], [0], [pages])
    ours = run_rows(engine, [a[-1:]], [len(a) - 1], [pages], num_decode=1)
    ref = hf_logits(hf, a)[-1:]
    err = (ours - ref).abs().max().item()
    assert err <= 3e-2 * ref.abs().max().item(), err
    assert ours.argmax().item() == ref.argmax().item()


@pytest.mark.parametrize("scale", [1e-20, 1e-3, 1.0, 1e3, 1e17])
def test_rms_norm_matches_torch_in_float32(scale):
    """The float32 CPU formulation (one vector_norm) against F.rms_norm, over magnitudes,
    a zero row and a non-contiguous input."""
    from hive.runtime.engine.model import rms_norm

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 576, generator=gen) * scale
    x[2] = 0.0
    weight = torch.randn(576, generator=gen)
    want = torch.nn.functional.rms_norm(x, weight.shape, weight, 1e-5)
    torch.testing.assert_close(rms_norm(x, weight, 1e-5), want, rtol=1e-5, atol=0)
    wide = torch.randn(5, 1152, generator=gen)[:, ::2] * scale  # a strided view
    want = torch.nn.functional.rms_norm(wide, weight.shape, weight, 1e-5)
    torch.testing.assert_close(rms_norm(wide, weight, 1e-5), want, rtol=1e-5, atol=0)

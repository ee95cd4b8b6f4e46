"""FlashInfer's plan inputs (CSR page tables) built on the CPU; the kernels need a GPU."""

import pytest
import torch
from runtime_helpers import make_tiny, prompts_for

from hive.runtime import Engine, SamplingParams
from hive.runtime.engine.attention.flashinfer_backend import plan_inputs
from hive.runtime.engine.forward_batch import build_forward_batch


def test_plan_inputs_split_decode_and_extend_groups():
    batch = build_forward_batch(
        [[7], [8], [1, 2, 3, 4, 5]],
        [9, 3, 2],
        [[3, 1, 4], [6], [0, 2]],
        num_decode=2,
        sample_counts=[1, 1, 1],
        device="cpu",
    )
    plan = plan_inputs(batch, page_size=4)
    # decode: 10 tokens -> 3 pages (last holds 2); 4 tokens -> 1 page (full)
    assert plan.decode.kv_indptr.tolist() == [0, 3, 4]
    assert plan.decode.kv_indices.tolist() == [3, 1, 4, 6]
    assert plan.decode.kv_last_page_len.tolist() == [2, 4]
    # extend: 2 cached + 5 new = 7 tokens -> 2 pages, last holds 3; 5 query rows
    assert plan.extend.kv_indptr.tolist() == [0, 2]
    assert plan.extend.kv_indices.tolist() == [0, 2]
    assert plan.extend.kv_last_page_len.tolist() == [3]
    assert plan.extend_qo_indptr.tolist() == [0, 5]
    for t in (*plan.decode, *plan.extend, plan.extend_qo_indptr):
        assert t.dtype == torch.int32


def test_plan_inputs_decode_only_and_extend_only():
    batch = build_forward_batch([[1]], [0], [[5]], 1, [True], "cpu")
    plan = plan_inputs(batch, page_size=1)
    assert plan.extend is None and plan.decode.kv_indices.tolist() == [5]
    batch = build_forward_batch([[1, 2]], [0], [[5, 9]], 0, [True], "cpu")
    plan = plan_inputs(batch, page_size=1)
    assert plan.decode is None and plan.extend.kv_indptr.tolist() == [0, 2]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_flashinfer_matches_torch_backend_on_gpu():
    pytest.importorskip("flashinfer")
    hf = make_tiny("llama")
    prompts = prompts_for(50, [12, 40, 7])
    params = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
    outs = {}
    for backend in ("torch", "flashinfer"):
        engine = Engine.from_hf(
            hf, device="cuda", dtype="float32", attention=backend, kv_cache_tokens=2048
        )
        outs[backend] = [o.token_ids for o in engine.generate(prompts, params)]
    assert outs["torch"] == outs["flashinfer"]


def test_plan_inputs_for_a_drafts_decode_rows_on_one_request_pages():
    # A request at position 5 verifying a 2-token draft: three decode rows on its pages,
    # attending to 6, 7 and 8 tokens (each row's own K/V written before attention).
    pages = [3, 1, 4]
    batch = build_forward_batch(
        [[7], [8], [9]], [5, 6, 7], [pages] * 3, num_decode=3, sample_counts=[1, 1, 1],
        device="cpu",
    )  # fmt: skip
    plan = plan_inputs(batch, page_size=4)
    assert plan.decode.kv_indptr.tolist() == [0, 2, 4, 6]
    assert plan.decode.kv_indices.tolist() == [3, 1, 3, 1, 3, 1]
    assert plan.decode.kv_last_page_len.tolist() == [2, 3, 4]
    assert batch.sample_indices.tolist() == [0, 1, 2]

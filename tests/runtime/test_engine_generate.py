"""End-to-end generation on tiny random models against transformers `generate`."""

import pytest
import torch
from runtime_helpers import make_tiny, prompts_for

from hive.runtime import Engine, SamplingParams

GREEDY = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)


def hf_greedy(hf, ids, max_new):
    out = hf.generate(
        torch.tensor([ids]),
        max_new_tokens=max_new,
        do_sample=False,
        pad_token_id=0,
        eos_token_id=None,
    )
    return out[0, len(ids) :].tolist()


@pytest.mark.parametrize("kind", ["llama", "llama_untied", "qwen2", "llama3_rope", "mistral"])
def test_greedy_matches_transformers_generate(kind):
    hf = make_tiny(kind)
    engine = Engine.from_hf(hf, kv_cache_tokens=4096, max_batch_tokens=64)
    prompts = prompts_for(5, [3, 21, 80, 9])  # 80 > max_batch_tokens: chunked prefill
    outs = engine.generate(prompts, GREEDY)
    for ids, out in zip(prompts, outs, strict=True):
        assert out.token_ids == hf_greedy(hf, ids, 12)
        assert out.finish_reason == "length"


def test_n_samples_share_the_prompt_prefix(tiny_engine):
    (ids,) = prompts_for(6, [40])
    outs = tiny_engine.generate(ids, SamplingParams(n=4, seed=7, max_tokens=5, ignore_eos=True))
    assert [o.sample_index for o in outs] == [0, 1, 2, 3]
    assert len({tuple(o.token_ids) for o in outs}) > 1  # different seeds, different samples
    assert [o.num_cached_prompt_tokens for o in outs] == [0, 39, 39, 39]
    stats = tiny_engine.stats()
    assert stats["num_prefill_tokens"] == 40 + 3
    assert stats["num_prefix_hit_tokens"] == 3 * 39


def test_samples_one_token_from_their_prompt_run_as_decode_rows(tiny_engine):
    """Samples 2..N find all but their last prompt token cached: that token runs in the
    batched decode path beside sample 1's first decode, not as N - 1 extends."""
    (ids,) = prompts_for(6, [40])
    tiny_engine.add_request(ids, SamplingParams(n=4, seed=7, max_tokens=3, ignore_eos=True))
    tiny_engine.step()  # sample 1's prompt; the others wait to share it
    schedule = tiny_engine.scheduler.schedule()
    assert schedule.num_decode == 4
    assert [item.extend_len for item in schedule.items] == [1, 1, 1, 1]
    assert [item.start for item in schedule.items] == [40, 39, 39, 39]


def test_stop_tokens_and_max_tokens(tiny_engine):
    (ids,) = prompts_for(7, [10])
    first = tiny_engine.generate(ids, GREEDY)[0].token_ids
    stop_at = first[4]
    out = tiny_engine.generate(ids, SamplingParams(temperature=0, stop_token_ids=(stop_at,)))[0]
    assert out.finish_reason == "stop"
    assert out.token_ids == first[: first.index(stop_at) + 1]
    out = tiny_engine.generate(ids, SamplingParams(temperature=0, max_tokens=3, ignore_eos=True))
    assert out[0].token_ids == first[:3] and out[0].finish_reason == "length"


def test_context_limit_finishes_with_length(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=512, max_context=20)
    out = engine.generate(list(range(3, 18)), SamplingParams(max_tokens=50, ignore_eos=True))[0]
    assert out.finish_reason == "length" and len(out.token_ids) == 5


def test_logprobs_are_raw_model_logprobs(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=512)
    (ids,) = prompts_for(8, [12])
    out = engine.generate(ids, SamplingParams(temperature=0, max_tokens=1, logprobs=True))[0]
    with torch.no_grad():
        ref = torch.log_softmax(tiny_llama(torch.tensor([ids])).logits[0, -1].float(), -1)
    assert out.logprobs is not None
    assert abs(out.logprobs[0] - ref[out.token_ids[0]].item()) < 1e-4


def test_every_page_accounted_for_after_each_step(tiny_llama):
    engine = Engine.from_hf(
        tiny_llama, kv_cache_tokens=160, max_batch_tokens=48, max_running_requests=5
    )
    params = SamplingParams(temperature=0.8, seed=1, max_tokens=20, ignore_eos=True)
    for ids in prompts_for(9, [30, 12, 45, 8, 30, 22, 60]):
        engine.add_request(ids, params)
    engine.add_request(prompts_for(9, [30])[0], params)  # a shared prefix with the first
    steps = 0
    while engine.has_unfinished():
        engine.step()
        engine.scheduler.check_invariants()
        steps += 1
        assert steps < 1000
    stats = engine.stats()
    assert stats["num_finished"] == 8 and stats["num_failed"] == 0
    assert stats["num_preemptions"] > 0
    engine.cache.evict(10**6)
    assert engine.pool.allocator.num_free == engine.pool.num_pages


@pytest.mark.parametrize("page_size", [4, 16])
def test_larger_pages_generate_like_transformers_and_keep_invariants(page_size):
    """Whole-page prefix sharing, partial last pages and preemption with page_size > 1."""
    hf = make_tiny("llama")
    engine = Engine.from_hf(
        hf, kv_cache_tokens=128, page_size=page_size, max_batch_tokens=40, max_running_requests=4
    )
    shared = prompts_for(12, [37])[0]
    prompts = [shared + p for p in prompts_for(13, [3, 11, 6])] + prompts_for(14, [50, 9])
    for ids in prompts:
        engine.add_request(ids, GREEDY)
    finished = {}
    while engine.has_unfinished():
        for req in engine.step():
            finished[req.rid] = req
        engine.scheduler.check_invariants()
    outs = sorted(finished.values(), key=lambda r: r.rid)
    for ids, req in zip(prompts, outs, strict=True):
        assert req.output_ids == hf_greedy(hf, ids, 12)
    stats = engine.stats()
    assert stats["num_prefix_hit_tokens"] >= 2 * (37 - 37 % page_size)
    assert stats["num_preemptions"] > 0
    engine.cache.evict(10**6)
    assert engine.pool.allocator.num_free == engine.pool.num_pages


@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_eviction_under_pressure_records_agents(tiny_llama, policy):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=96, eviction_policy=policy)
    params = SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)
    for i, ids in enumerate(prompts_for(15, [40, 35, 44, 30])):
        engine.add_request(ids, params, agent_id=f"agent{i % 2}", priority=i)
        while engine.has_unfinished():
            engine.step()
            engine.scheduler.check_invariants()
    stats = engine.stats()
    assert stats["num_evicted_pages"] > 0 and stats["num_finished"] == 4
    agents = set().union(*(n.agent_ids for n in engine.cache.nodes()))
    assert agents <= {"agent0", "agent1"} and agents

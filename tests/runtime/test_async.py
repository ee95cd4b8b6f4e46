"""The asyncio interface: concurrent submits share the engine's steps."""

import asyncio

from runtime_helpers import prompts_for

from hive.runtime import Engine, GenerationRequest, SamplingParams


def test_concurrent_submits_are_batched_and_match_generate(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=2048)
    prompts = prompts_for(40, [9, 14, 30, 5, 22, 17])
    params = SamplingParams(temperature=0.8, seed=3, max_tokens=10, ignore_eos=True)
    expected = Engine.from_hf(tiny_llama, kv_cache_tokens=2048).generate(prompts, params)

    async def main():
        requests = [GenerationRequest(p, params, agent_id="solver", priority=1) for p in prompts]
        return await asyncio.gather(*(engine.submit(r) for r in requests))

    results = asyncio.run(main())
    assert [r[0].token_ids for r in results] == [e.token_ids for e in expected]
    assert engine.stats()["num_steps"] <= 12  # all six decoded together, not one after another


def test_submit_with_n_returns_n_completions(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=2048)

    async def main():
        first = engine.submit(GenerationRequest([5, 6, 7], SamplingParams(n=3, max_tokens=4)))
        await asyncio.sleep(0)
        later = engine.submit(GenerationRequest([8, 9], SamplingParams(max_tokens=2)))
        return await asyncio.gather(first, later)

    first, later = asyncio.run(main())
    assert [c.sample_index for c in first] == [0, 1, 2] and len(later) == 1

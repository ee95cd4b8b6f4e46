"""The determinism contract: a request's tokens depend only on prompt, params and seed."""

import pytest
from runtime_helpers import make_tiny, prompts_for

from hive.runtime import Engine, SamplingParams

PARAMS = [
    SamplingParams(temperature=0.9, seed=11, max_tokens=16, ignore_eos=True),
    SamplingParams(
        temperature=0.7,
        top_k=20,
        top_p=0.9,
        min_p=0.02,
        repetition_penalty=1.2,
        frequency_penalty=0.3,
        presence_penalty=0.2,
        seed=5,
        max_tokens=16,
        ignore_eos=True,
    ),
]


@pytest.fixture(scope="module")
def hf():
    return make_tiny("llama")


def alone(hf, ids, params):
    return Engine.from_hf(hf, kv_cache_tokens=2048).generate(ids, params)[0].token_ids


@pytest.mark.parametrize("params", PARAMS)
def test_same_seed_same_tokens_alone(hf, params):
    (ids,) = prompts_for(20, [25])
    assert alone(hf, ids, params) == alone(hf, ids, params)
    other = SamplingParams(**{**params.__dict__, "seed": params.seed + 100})
    assert alone(hf, ids, other) != alone(hf, ids, params)


@pytest.mark.parametrize("params", PARAMS)
def test_same_tokens_inside_a_batch(hf, params):
    target, *others = prompts_for(21, [25, 7, 60, 33, 14])
    expected = alone(hf, target, params)
    engine = Engine.from_hf(hf, kv_cache_tokens=4096, max_batch_tokens=40)
    engine.add_request(others[0], SamplingParams(temperature=1.0, seed=3, max_tokens=9))
    engine.add_request(others[1], SamplingParams(temperature=0, max_tokens=30, ignore_eos=True))
    engine.step()  # the target joins a running batch mid-flight
    (req,) = engine.add_request(target, params)
    for ids in others[2:]:
        engine.add_request(ids, SamplingParams(temperature=1.3, seed=9, max_tokens=5))
    while engine.has_unfinished():
        engine.step()
    assert req.output_ids == expected


@pytest.mark.parametrize("params", PARAMS)
def test_same_tokens_after_a_prefix_cache_hit(hf, params):
    (target,) = prompts_for(22, [40])
    expected = alone(hf, target, params)
    engine = Engine.from_hf(hf, kv_cache_tokens=4096)
    engine.generate(target[:30] + [5, 6], SamplingParams(temperature=0, max_tokens=3))
    out = engine.generate(target, params)[0]
    assert out.num_cached_prompt_tokens == 30
    assert out.token_ids == expected
    again = engine.generate(target, params)[0]  # whole prompt (and more) cached
    assert again.num_cached_prompt_tokens == 39
    assert again.token_ids == expected


@pytest.mark.parametrize("params", PARAMS)
def test_same_tokens_after_preemption(hf, params):
    prompts = prompts_for(23, [30, 28, 26, 24])
    expected = [alone(hf, ids, params) for ids in prompts]
    engine = Engine.from_hf(hf, kv_cache_tokens=100, max_batch_tokens=64)
    outs = engine.generate(prompts, params)
    assert engine.stats()["num_preemptions"] > 0
    assert [o.token_ids for o in outs] == expected

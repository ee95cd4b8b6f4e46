"""Every example spec end to end on the default model (short replies to keep CI fast)."""

from pathlib import Path

import pytest
from fake_engine import assert_declared_outputs

import hive
from hive.runtime import Engine
from hive.runtime.run import load

pytestmark = pytest.mark.model

SPECS = sorted(Path(__file__).parents[2].joinpath("specs").glob("*.*"))
INPUTS = {
    "question": "What is 12 + 30?",
    "task": "Explain what a cache is in one sentence.",
    "problem": "What is 7 * 6?",
    "puzzle": "Use 2, 3 and 4 to make 24.",
    "request": "An 8-bit counter with reset.",
    "message": "Win a free phone now!!!",
    "chunks": ["Caches keep recent data close.", "Evicting the wrong entry costs a refill."],
}
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def engine(smollm):
    hf_model, tokenizer, _ = smollm
    return Engine.from_hf(hf_model, tokenizer, kv_cache_tokens=16384)


def inputs_for(plan):
    return {name: INPUTS[name] for name in plan.spec.input_specs()}


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_example_runs_on_the_default_model(engine, spec):
    plan = load(spec)
    result = hive.run(plan, inputs_for(plan), engine=engine, seed=1, max_tokens=MAX_TOKENS)
    assert_declared_outputs(plan, result.outputs)
    assert result.metrics["calls"] >= 1
    assert all(c.completion_tokens <= MAX_TOKENS and c.finish_reason for c in result.calls)


def test_a_run_is_reproducible_with_a_warm_or_cold_prefix_cache(smollm):
    """Same seed, same results: on a fresh engine (cold cache) and again on one whose
    radix cache already holds every prompt."""
    plan = load("specs/self_consistency.yaml")
    inputs = {"question": "What is 5 + 9?"}
    options = dict(seed=3, max_tokens=MAX_TOKENS, logits_cache="off")  # the radix cache only
    fresh = Engine.from_hf(*smollm[:2], kv_cache_tokens=16384)
    first = hive.run(plan, inputs, engine=fresh, **options)
    warm = hive.run(plan, inputs, engine=fresh, **options)
    assert warm.metrics["cached_prompt_tokens"] > first.metrics["cached_prompt_tokens"]
    cold = hive.run(plan, inputs, engine=Engine.from_hf(*smollm[:2]), **options)
    texts = lambda r: sorted((c.path, c.text) for c in r.calls)  # noqa: E731
    assert first.outputs == warm.outputs == cold.outputs
    assert texts(first) == texts(warm) == texts(cold)
    # The plan's Logits Cache (exact) changes no reply, and a second run replays them.
    cached = Engine.from_hf(*smollm[:2], kv_cache_tokens=16384)
    for _ in range(2):
        run = hive.run(plan, inputs, engine=cached, seed=3, max_tokens=MAX_TOKENS)
        assert run.outputs == first.outputs and texts(run) == texts(first)
    assert cached.stats()["logits_cache_hits"] > 0

"""The Logits Cache: exact replay (same tokens with the cache on and off), sharing, budget."""

from __future__ import annotations

import asyncio
import math

import pytest
import torch
from runtime_helpers import SAMPLING_KINDS, TINY, make_tiny, prompts_for
from transformers import LlamaConfig, LlamaForCausalLM

from hive.runtime import Engine, GenerationRequest, SamplingParams
from hive.runtime.engine.errors import EngineError, InvalidRequestError
from hive.runtime.engine.inverse_cdf import cdf_tables, sample_from_probs
from hive.runtime.engine.logits_cache import MIN_BUDGET_BYTES
from hive.runtime.engine.sampler import filtered_probs
from hive.runtime.engine.stored_distribution import store_rows


@pytest.fixture(scope="module")
def hf():
    return make_tiny("llama")


def params(mode=None, **kw):
    base = dict(seed=11, max_tokens=16, ignore_eos=True)
    return SamplingParams(**{**base, **kw, "logits_cache": mode})


def engine(hf, **kw):
    return Engine.from_hf(hf, **{"kv_cache_tokens": 2048, **kw})


def tokens(completions):
    return [c.token_ids for c in completions]


@pytest.mark.parametrize("kind", list(SAMPLING_KINDS))
def test_parallel_samples_are_identical_with_the_cache_on_and_off(hf, kind):
    (ids,) = prompts_for(20, [25])
    expected = tokens(engine(hf).generate(ids, params(n=8, **SAMPLING_KINDS[kind])))
    cached = engine(hf)
    assert tokens(cached.generate(ids, params("exact", n=8, **SAMPLING_KINDS[kind]))) == expected
    # The same request again replays entirely from the trie: no forward pass at all.
    before = cached.stats()
    assert tokens(cached.generate(ids, params("exact", n=8, **SAMPLING_KINDS[kind]))) == expected
    after = cached.stats()
    assert after["num_steps"] == before["num_steps"]
    assert after["logits_cache_hits"] - before["logits_cache_hits"] == 8 * 16


@pytest.mark.parametrize("kind", ["temperature", "top_p", "penalties"])
def test_sequential_resampling_is_identical_and_reuses_positions(hf, kind):
    (ids,) = prompts_for(21, [30])
    seeds = range(100, 108)
    plain = engine(hf)
    expected = [
        plain.generate(ids, params(seed=s, **SAMPLING_KINDS[kind]))[0].token_ids for s in seeds
    ]
    cached = engine(hf)
    got = [
        cached.generate(ids, params("exact", seed=s, **SAMPLING_KINDS[kind]))[0].token_ids
        for s in seeds
    ]
    assert got == expected
    stats = cached.stats()
    assert stats["logits_cache_hits"] >= len(seeds) - 1  # at least every first token
    computed = stats["num_decode_tokens"] + stats["num_prefill_tokens"]
    assert computed < plain.stats()["num_decode_tokens"] + plain.stats()["num_prefill_tokens"]


@pytest.fixture(scope="module")
def wide_hf():
    """A vocabulary of several inverse-CDF blocks: untruncated rows keep only their head."""
    torch.manual_seed(1)
    return LlamaForCausalLM(LlamaConfig(**{**TINY, "vocab_size": 5000})).eval()


def test_untruncated_rows_keep_a_head_and_draws_past_it_run_the_model(wide_hf):
    (ids,) = prompts_for(30, [20], vocab=5000)
    p = dict(n=8, temperature=1.5)  # a flat random model: the head covers little mass
    expected = tokens(engine(wide_hf).generate(ids, params(**p)))
    cached = engine(wide_hf)
    for _ in range(2):
        assert tokens(cached.generate(ids, params("exact", **p))) == expected
    stats = cached.stats()
    assert stats["logits_cache_tail_misses"] > 0 and stats["logits_cache_hits"] > 0
    top_p = dict(n=8, temperature=0.9, top_p=0.5)  # several blocks, complete support
    expected = tokens(engine(wide_hf).generate(ids, params(**top_p)))
    for _ in range(2):
        assert tokens(cached.generate(ids, params("exact", **top_p))) == expected


@pytest.mark.parametrize("page_size", [2, 4])
def test_exact_with_pages_of_several_tokens(hf, page_size):
    (ids,) = prompts_for(31, [23])
    p = dict(n=8, max_tokens=20, **SAMPLING_KINDS["top_k"])
    expected = tokens(engine(hf).generate(ids, params(**p)))
    cached = engine(hf, page_size=page_size)
    for seed in (11, 11, 12):
        want = (
            expected
            if seed == 11
            else tokens(engine(hf).generate(ids, params(**{**p, "seed": 12})))
        )
        assert tokens(cached.generate(ids, params("exact", **{**p, "seed": seed}))) == want
    cached.scheduler.check_invariants()


def test_aborting_a_path_leaves_the_others_exact(hf):
    (ids,) = prompts_for(32, [20])
    p = dict(n=6, max_tokens=20, **SAMPLING_KINDS["temperature"])
    expected = tokens(engine(hf).generate(ids, params(**p)))
    cached = engine(hf)
    requests = cached.add_request(ids, params("exact", **p))
    for _ in range(4):
        cached.step()
    cached.abort(requests[0])
    cached.abort(requests[0])  # twice: a no-op
    while cached.has_unfinished():
        cached.step()
    assert [r.output_ids for r in requests[1:]] == expected[1:]
    assert requests[0].finish_reason == "abort"
    cached.scheduler.check_invariants()
    assert tokens(cached.generate(ids, params("exact", **p))) == expected


def test_async_submits_share_the_cache_and_stay_exact(hf):
    (ids,) = prompts_for(33, [20])
    seeds = range(5)
    plain = [
        engine(hf).generate(ids, params(seed=s, **SAMPLING_KINDS["top_p"]))[0].token_ids
        for s in seeds
    ]
    cached = engine(hf)

    async def main():
        reqs = [
            GenerationRequest(ids, params("exact", seed=s, **SAMPLING_KINDS["top_p"]))
            for s in seeds
        ]
        return await asyncio.gather(*(cached.submit(r) for r in reqs))

    assert [r[0].token_ids for r in asyncio.run(main())] == plain
    assert cached.stats()["logits_cache_hits"] > 0


def test_identical_paths_share_one_forward_row(hf):
    (ids,) = prompts_for(22, [25])
    cached = engine(hf)
    out = cached.generate(ids, params("exact", n=8, temperature=0))
    assert len({tuple(t) for t in tokens(out)}) == 1
    stats = cached.stats()
    # The prompt once, then one row per position for all eight paths.
    assert stats["num_prefill_tokens"] == 25
    assert stats["num_decode_tokens"] == 15
    assert stats["logits_cache_hits"] == 7 * 16


def test_exact_under_a_budget_that_forces_evictions(hf):
    (ids,) = prompts_for(23, [20])
    budget_mb = 0.03
    expected = [
        tokens(engine(hf).generate(ids, params(n=4, seed=s, **SAMPLING_KINDS["top_p"])))
        for s in (1, 2, 3, 1)
    ]
    cached = engine(hf, logits_cache_mb=budget_mb)
    got = [
        tokens(cached.generate(ids, params("exact", n=4, seed=s, **SAMPLING_KINDS["top_p"])))
        for s in (1, 2, 3, 1)
    ]
    assert got == expected
    stats = cached.stats()
    assert stats["logits_cache_evicted"] > 0
    assert stats["logits_cache_bytes_held"] <= budget_mb * 2**20


def test_exact_when_the_kv_pool_forces_preemption(hf):
    (ids,) = prompts_for(24, [30])
    p = dict(n=6, max_tokens=24, **SAMPLING_KINDS["temperature"])
    expected = tokens(engine(hf).generate(ids, params(**p)))
    small = engine(hf, kv_cache_tokens=90)
    assert tokens(small.generate(ids, params("exact", **p))) == expected
    assert tokens(small.generate(ids, params("exact", **p))) == expected
    assert small.stats()["num_preemptions"] > 0
    small.scheduler.check_invariants()


def test_logprobs_and_stop_tokens_replay_like_the_model(hf):
    (ids,) = prompts_for(25, [18])
    plain = engine(hf).generate(ids, params(n=4, logprobs=True, **SAMPLING_KINDS["top_k"]))
    stop = plain[0].token_ids[5]
    cached = engine(hf)
    for _ in range(2):
        got = cached.generate(ids, params("exact", n=4, logprobs=True, **SAMPLING_KINDS["top_k"]))
        assert tokens(got) == tokens(plain)
        for a, b in zip(got, plain, strict=True):
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
    p = dict(n=4, stop_token_ids=(stop,), ignore_eos=True, **SAMPLING_KINDS["top_k"])
    expected = engine(hf).generate(ids, params(**p))
    for _ in range(2):
        got = cached.generate(ids, params("exact", **p))
        assert tokens(got) == tokens(expected)
        assert [c.finish_reason for c in got] == [c.finish_reason for c in expected]


def test_keys_never_mix_contexts(hf):
    """Prompts that differ only in their last token, params that differ in one value."""
    (a,) = prompts_for(26, [20])
    b = a[:-1] + [a[-1] + 1]
    cached = engine(hf)
    runs = [
        (a, SAMPLING_KINDS["top_p"]),
        (b, SAMPLING_KINDS["top_p"]),
        (a, dict(temperature=0.71, top_p=0.9)),
    ]
    for ids, kw in runs + runs:
        expected = tokens(engine(hf).generate(ids, params(n=3, **kw)))
        assert tokens(cached.generate(ids, params("exact", n=3, **kw))) == expected
    assert cached.stats()["logits_cache_entries"] == 3


def test_a_zero_budget_disables_the_cache(hf):
    (ids,) = prompts_for(27, [20])
    expected = tokens(engine(hf).generate(ids, params(n=4, **SAMPLING_KINDS["temperature"])))
    off = engine(hf, logits_cache_mb=0)
    for _ in range(2):
        assert (
            tokens(off.generate(ids, params("exact", n=4, **SAMPLING_KINDS["temperature"])))
            == expected
        )
    stats = off.stats()
    assert stats["logits_cache_hits"] == stats["logits_cache_nodes"] == 0


def test_a_budget_smaller_than_one_row_caches_nothing_and_still_works(hf):
    (ids,) = prompts_for(28, [20])
    expected = tokens(engine(hf).generate(ids, params(n=4, **SAMPLING_KINDS["temperature"])))
    tiny = engine(hf, logits_cache_mb=(MIN_BUDGET_BYTES + 200) / 2**20)
    for _ in range(2):
        got = tiny.generate(ids, params("exact", n=4, **SAMPLING_KINDS["temperature"]))
        assert tokens(got) == expected
    stats = tiny.stats()
    assert stats["logits_cache_inserted"] == 0 and stats["logits_cache_rejected"] > 0


def test_bad_options_are_clear_errors(hf):
    with pytest.raises(InvalidRequestError, match="logits_cache must be"):
        SamplingParams(logits_cache="fast")
    with pytest.raises(EngineError, match="logits_cache_mb"):
        engine(hf, logits_cache_mb=-1)


def test_hotspot_resamples_differ_and_keep_a_prefix(hf):
    (ids,) = prompts_for(29, [20])
    cached = engine(hf)
    p = dict(max_tokens=24, **SAMPLING_KINDS["top_p"])
    paths = [cached.generate(ids, params("hotspot", seed=s, **p))[0].token_ids for s in range(6)]
    assert len({tuple(t) for t in paths}) == len(paths)  # every re-sample is a new path
    stats = cached.stats()
    assert stats["logits_cache_branched"] == len(paths) - 1
    shared = [
        next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
        for a, b in zip(paths, paths[1:], strict=False)
    ]
    assert sum(shared) > 0  # branches keep the earlier path's first tokens
    assert all(len(t) == 24 for t in paths)
    # A re-sample with a smaller max_tokens or a stop token inside the earlier path
    # stops there, though the branch copies that path's tokens.
    for _ in range(3):
        short = cached.generate(ids, params("hotspot", seed=40, **{**p, "max_tokens": 5}))[0]
        assert len(short.token_ids) <= 5
    stop = paths[-1][2]
    stopped = cached.generate(ids, params("hotspot", seed=41, stop_token_ids=(stop,), **p))[0]
    assert stop not in stopped.token_ids[:-1]


@pytest.mark.parametrize("seed", range(5))
def test_stored_rows_replay_the_samplers_token(seed):
    """Intervals reproduce the inverse CDF: the same token, or a miss in an unkept tail."""
    g = torch.Generator().manual_seed(seed)
    vocab = 3000 + 517 * seed
    logits = torch.randn(4, vocab, generator=g) * 3
    ps = [
        SamplingParams(temperature=1.0),
        SamplingParams(temperature=0.6, top_p=0.8),
        SamplingParams(temperature=1.2, top_k=50),
        SamplingParams(temperature=0.9, min_p=0.05),
    ]
    probs = filtered_probs(logits, ps)
    dists = store_rows(probs, cdf_tables(probs), logits, [0, 1, 2, 3], [False] * 4, [0] * 4)
    assert [d.ids for d in store_rows(probs, cdf_tables(probs), logits, [2], [False], [0])] == [
        dists[2].ids
    ]
    assert not dists[0].complete and all(d.complete for d in dists[1:])
    uniforms = torch.rand(400, generator=g, dtype=torch.float64)
    misses = 0
    for row, dist in enumerate(dists):
        expected = sample_from_probs(probs[row : row + 1].expand(400, -1), uniforms).tolist()
        for u, token in zip(uniforms.tolist(), expected, strict=True):
            i = dist.lookup(u)
            if i is None:
                assert not dist.complete
                misses += 1
            else:
                assert dist.ids[i] == token
    assert misses < 10  # the unkept tail holds under 0.1% of the mass
    # Draws at the very edges of each kept token's interval, where rounding decides.
    for row, dist in enumerate(dists):
        edges = []
        for lo, hi in zip(dist._lo[:200], dist._hi[:200], strict=True):
            edges += [lo / dist.total, math.nextafter(hi / dist.total, 0.0)]
        edges = [u for u in edges if 0.0 <= u < 1.0]
        us = torch.tensor(edges, dtype=torch.float64)
        expected = sample_from_probs(probs[row : row + 1].expand(len(edges), -1), us).tolist()
        for u, token in zip(edges, expected, strict=True):
            i = dist.lookup(u)
            assert i is None or dist.ids[i] == token


def test_a_hotspot_branch_copies_the_earlier_paths_confident_tokens_after_it():
    """P = 10 11 12 13 14, uncertain at positions 0 and 3 (two tokens, half each),
    confident elsewhere: a branch at 0 takes the other token and copies 11 12, up to
    the next uncertain position; a branch at 3 keeps 10 11 12, takes 23 and copies 14."""
    from array import array

    from hive.runtime.engine.hotspot import STABLE_ENTROPY, branch_point
    from hive.runtime.engine.logits_cache import LogitsCache
    from hive.runtime.engine.stored_distribution import StoredDistribution, greedy_distribution

    def coin(a, b):
        half = math.log(0.5)
        return StoredDistribution(array("i", [a, b]), array("f", [half, half]), 1.0, True,
                                  lo=array("d", [0.0, 0.5]), hi=array("d", [0.5, 1.0]))  # fmt: skip

    assert coin(1, 2).entropy > STABLE_ENTROPY >= greedy_distribution(1, 0.0).entropy
    cache, key, base = LogitsCache(1 << 20), ("prompt", "params"), [10, 11, 12, 13, 14]
    rows = [coin(10, 20), greedy_distribution(11, 0.0), greedy_distribution(12, 0.0),
            coin(13, 23), greedy_distribution(14, 0.0)]  # fmt: skip
    for depth, dist in enumerate(rows):
        assert cache.store(cache.find(key, base[:depth]), dist)
    cache.find(key, base)
    cache.complete_path(key, base)
    seen = set()
    for seed in range(20):
        branch = branch_point(cache, key, torch.Generator().manual_seed(seed))
        assert branch is not None and len(branch.logprobs) == len(branch.tokens)
        seen.add(tuple(branch.tokens))
    assert seen == {(20, 11, 12), (10, 11, 12, 23, 14)}

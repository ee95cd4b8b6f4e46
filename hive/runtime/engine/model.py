"""Our forward pass for the Llama family (Llama, Qwen2, Mistral).

RMSNorm, RoPE (tables from the model's rope parameters), grouped-query
attention through the attention backend, SwiGLU MLP, tied or untied head,
optional q/k/v/o biases (Qwen2). Weights are taken from a `transformers`
state dict and fused: q/k/v into one matrix, gate/up into one. All tokens of
a step run through each linear layer at once; only rows that are sampled go
through the final norm and the head.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from hive.runtime.engine.attention.base import BaseAttentionBackend
from hive.runtime.engine.forward_batch import ForwardBatch
from hive.runtime.engine.model_config import ModelArgs, rope_tables


class LayerWeights:
    __slots__ = ("input_norm", "qkv", "qkv_bias", "o", "o_bias", "post_norm", "gate_up", "down")

    def __init__(self, state: dict[str, torch.Tensor], prefix: str) -> None:
        def get(name: str) -> torch.Tensor | None:
            return state.get(prefix + name)

        self.input_norm = get("input_layernorm.weight")
        self.post_norm = get("post_attention_layernorm.weight")
        q, k, v = (get(f"self_attn.{n}_proj.weight") for n in "qkv")
        self.qkv = torch.cat([q, k, v], dim=0).contiguous()
        biases = [get(f"self_attn.{n}_proj.bias") for n in "qkv"]
        if any(b is not None for b in biases):
            filled = [
                b if b is not None else torch.zeros(w.shape[0], dtype=w.dtype)
                for b, w in zip(biases, (q, k, v), strict=True)
            ]
            self.qkv_bias = torch.cat(filled).contiguous()
        else:
            self.qkv_bias = None
        self.o = get("self_attn.o_proj.weight")
        self.o_bias = get("self_attn.o_proj.bias")
        gate, up = get("mlp.gate_proj.weight"), get("mlp.up_proj.weight")
        self.gate_up = torch.cat([gate, up], dim=0).contiguous()
        self.down = get("mlp.down_proj.weight")


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    dtype = x.dtype
    if dtype == torch.float32:  # one fused op; the same math as below
        return F.rms_norm(x, weight.shape, weight, eps)
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class LlamaModel:
    def __init__(
        self,
        args: ModelArgs,
        state: dict[str, torch.Tensor],
        hf_config: Any,
        max_positions: int,
        device: torch.device | str,
        dtype: torch.dtype,
    ) -> None:
        self.args = args
        self.dtype = dtype
        state = {
            k.removeprefix("model."): v.detach().to(device=device, dtype=dtype)
            for k, v in state.items()
            if not k.endswith("rotary_emb.inv_freq")
        }
        self.embed = state["embed_tokens.weight"]
        head = state.get("lm_head.weight")
        self.lm_head = self.embed if args.tie_word_embeddings or head is None else head
        self.norm = state["norm.weight"]
        self.layers = [LayerWeights(state, f"layers.{i}.") for i in range(args.num_layers)]
        cos, sin = rope_tables(hf_config, args, max_positions, device)
        self.rope_cos = cos.to(dtype)
        self.rope_sin = sin.to(dtype)
        self.scale = args.head_dim**-0.5

    def weight_bytes(self) -> int:
        tensors = [self.embed, self.norm]
        if self.lm_head is not self.embed:
            tensors.append(self.lm_head)
        for layer in self.layers:
            tensors += [layer.input_norm, layer.post_norm, layer.qkv, layer.o, layer.gate_up]
            tensors += [layer.down]
        return sum(t.numel() * t.element_size() for t in tensors)

    @torch.inference_mode()
    def forward(self, batch: ForwardBatch, attention: BaseAttentionBackend) -> torch.Tensor:
        """Logits `(S, vocab)` in float32 for the batch's sampled rows."""
        args = self.args
        eps = args.rms_norm_eps
        num_tokens = batch.num_tokens
        q_size, kv_size, head_dim = args.q_size, args.kv_size, args.head_dim
        num_qk_heads = args.num_heads + args.num_kv_heads
        cos = self.rope_cos[batch.positions].unsqueeze(1)
        sin = self.rope_sin[batch.positions].unsqueeze(1)
        attention.prepare(batch)
        x = F.embedding(batch.input_ids, self.embed)
        for layer_id, w in enumerate(self.layers):
            h = rms_norm(x, w.input_norm, eps)
            qkv = F.linear(h, w.qkv, w.qkv_bias)
            # RoPE on q and k together: one set of ops over (heads + kv_heads).
            qk = qkv[:, : q_size + kv_size].view(num_tokens, num_qk_heads, head_dim)
            qk = apply_rope(qk, cos, sin)
            q, k = qk[:, : args.num_heads], qk[:, args.num_heads :]
            v = qkv[:, q_size + kv_size :].view(num_tokens, args.num_kv_heads, head_dim)
            o = attention.forward(layer_id, q, k, v)
            x = x + F.linear(o, w.o, w.o_bias)
            h = rms_norm(x, w.post_norm, eps)
            gate, up = F.linear(h, w.gate_up).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, w.down)
        x = rms_norm(x[batch.sample_indices], self.norm, eps)
        return F.linear(x, self.lm_head).float()

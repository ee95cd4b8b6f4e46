"""Our forward pass for the Llama family (Llama, Qwen2, Mistral).

RMSNorm, RoPE (tables from the model's rope parameters), grouped-query
attention through the attention backend, SwiGLU MLP, tied or untied head,
optional q/k/v/o biases (Qwen2). Weights are taken from a `transformers`
state dict and fused: q/k/v into one matrix, gate/up into one. All tokens of
a step run through each linear layer at once; only rows that are sampled go
through the final norm and the head.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

from hive.runtime.engine.attention.base import BaseAttentionBackend
from hive.runtime.engine.forward_batch import ForwardBatch
from hive.runtime.engine.linear import Linear
from hive.runtime.engine.model_config import ModelArgs, rope_tables


class LayerWeights:
    __slots__ = ("input_norm", "qkv", "o", "post_norm", "gate_up", "down")

    def __init__(
        self, state: dict[str, torch.Tensor], prefix: str, pack: bool, float32_kernel: str
    ) -> None:
        def get(name: str) -> torch.Tensor | None:
            return state.get(prefix + name)

        self.input_norm = get("input_layernorm.weight")
        self.post_norm = get("post_attention_layernorm.weight")
        q, k, v = (get(f"self_attn.{n}_proj.weight") for n in "qkv")
        biases = [get(f"self_attn.{n}_proj.bias") for n in "qkv"]
        if any(b is not None for b in biases):
            filled = [
                b if b is not None else torch.zeros(w.shape[0], dtype=w.dtype)
                for b, w in zip(biases, (q, k, v), strict=True)
            ]
            qkv_bias = torch.cat(filled).contiguous()
        else:
            qkv_bias = None
        linear = functools.partial(Linear, pack=pack, float32_kernel=float32_kernel)
        self.qkv = linear(torch.cat([q, k, v], dim=0).contiguous(), qkv_bias)
        self.o = linear(get("self_attn.o_proj.weight"), get("self_attn.o_proj.bias"))
        gate, up = get("mlp.gate_proj.weight"), get("mlp.up_proj.weight")
        self.gate_up = linear(torch.cat([gate, up], dim=0).contiguous())
        self.down = linear(get("mlp.down_proj.weight"))

    def linears(self) -> tuple[Linear, ...]:
        return (self.qkv, self.o, self.gate_up, self.down)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) * weight.

    float32 on a CPU: `F.rms_norm` is composite there (pow, mean, add, rsqrt and two
    multiplies: four passes over the rows); one `vector_norm` reduction and two passes
    give the same within float32 rounding (with the in-place SwiGLU below, workload
    (a) of `hive bench engine` ran 2.4-2.9% faster, paired medians of 8 runs).
    Elsewhere the fused op: it accumulates in float32 for half-precision inputs, as
    transformers' RMSNorm does, but rounds once instead of twice: within one bf16 ulp.
    """
    if x.dtype != torch.float32 or x.device.type != "cpu":
        return F.rms_norm(x, weight.shape, weight, eps)
    scale = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    scale = scale.square_().div_(x.shape[-1]).add_(eps).rsqrt_()
    return torch.mul(x, scale).mul_(weight)


def apply_rope_(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> None:
    """x = x * cos + rotate_half(x) * sin, in place, with rotate_half(x) * sin as
    roll(x) * signed_sin.

    rotate_half(x) = cat(-x2, x1) equals roll(x, half) with its first half
    negated; folding that sign into the sin table (`signed_sin`) saves the
    negation and the concatenation: three ops instead of six. In place, so q, k
    and v stay in the projection's output, where K and V of a token sit side by
    side as the KV pool stores them.
    """
    rolled = x.roll(x.shape[-1] // 2, dims=-1)
    x.mul_(cos).addcmul_(rolled, signed_sin)


class LlamaModel:
    def __init__(
        self,
        args: ModelArgs,
        state: dict[str, torch.Tensor],
        hf_config: Any,
        max_positions: int,
        device: torch.device | str,
        dtype: torch.dtype,
        pack_weights: bool = True,
        float32_kernel: str = "mkl",
    ) -> None:
        """`pack_weights`: lay linear weights out for the device's fastest kernel
        (linear.py; in float32 on a CPU with `float32_kernel` "mkl" that keeps a
        second copy of them)."""
        self.args = args
        self.dtype = dtype
        state = {
            k.removeprefix("model."): v.detach().to(device=device, dtype=dtype)
            for k, v in state.items()
            if not k.endswith("rotary_emb.inv_freq")
        }
        self.embed = state["embed_tokens.weight"]
        head = state.get("lm_head.weight")
        # With tied embeddings and a packed head (bf16, or oneDNN float32, on a CPU), the
        # head is a second copy of the table: the lookup needs plain rows, the matmul the
        # packed layout.
        self.lm_head = Linear(
            self.embed if args.tie_word_embeddings or head is None else head,
            pack=pack_weights,
            float32_kernel=float32_kernel,
        )
        self.norm = state["norm.weight"]
        self.layers = [
            LayerWeights(state, f"layers.{i}.", pack_weights, float32_kernel)
            for i in range(args.num_layers)
        ]
        cos, sin = rope_tables(hf_config, args, max_positions, device)
        half = args.head_dim // 2
        self.rope_cos = cos.to(dtype)
        self.rope_signed_sin = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1).to(dtype)
        self.scale = args.head_dim**-0.5

    def weight_bytes(self) -> int:
        """Bytes of weights a decode step reads (the embedding table only through the head)."""
        tensors = [self.norm]
        for layer in self.layers:
            tensors += [layer.input_norm, layer.post_norm]
        linears = [self.lm_head] + [lin for layer in self.layers for lin in layer.linears()]
        return sum(t.numel() * t.element_size() for t in tensors) + sum(
            lin.num_bytes for lin in linears
        )

    @torch.inference_mode()
    def forward(self, batch: ForwardBatch, attention: BaseAttentionBackend) -> torch.Tensor:
        """Logits `(S, vocab)` in float32 for the batch's sampled rows."""
        args = self.args
        eps = args.rms_norm_eps
        num_tokens = batch.num_tokens
        head_dim = args.head_dim
        num_qk_heads = args.num_heads + args.num_kv_heads
        num_qkv_heads = num_qk_heads + args.num_kv_heads
        cos = self.rope_cos[batch.positions].unsqueeze(1)
        sin = self.rope_signed_sin[batch.positions].unsqueeze(1)
        attention.prepare(batch)
        x = F.embedding(batch.input_ids, self.embed)
        for layer_id, w in enumerate(self.layers):
            h = rms_norm(x, w.input_norm, eps)
            qkv = w.qkv(h).view(num_tokens, num_qkv_heads, head_dim)
            # RoPE on q and k together: one set of ops over (heads + kv_heads).
            apply_rope_(qkv[:, :num_qk_heads], cos, sin)
            q = qkv[:, : args.num_heads]
            kv = qkv[:, args.num_heads :].view(num_tokens, 2, args.num_kv_heads, head_dim)
            o = attention.forward(layer_id, q, kv)
            x = x + w.o(o)
            h = rms_norm(x, w.post_norm, eps)
            gate, up = w.gate_up(h).chunk(2, dim=-1)
            x = x + w.down(F.silu(gate).mul_(up))  # in place: one activation buffer, not two
        x = rms_norm(x[batch.sample_indices], self.norm, eps)
        return self.lm_head(x).float()

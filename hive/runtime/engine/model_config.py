"""The shape of a Llama-family model, read from a `transformers` config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from hive.runtime.engine.errors import UnsupportedModelError

SUPPORTED_ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "MistralForCausalLM": "mistral",
}
SUPPORTED_MODEL_TYPES = set(SUPPORTED_ARCHITECTURES.values())
# RoPE variants whose frequencies do not depend on the sequence length.
STATIC_ROPE_TYPES = {"default", "linear", "llama3", "yarn", "proportional"}


@dataclass(frozen=True)
class ModelArgs:
    model_type: str
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    rms_norm_eps: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    rope_type: str
    sliding_window: int | None

    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim


def supported_names() -> str:
    return ", ".join(sorted(SUPPORTED_ARCHITECTURES))


def model_args_from_hf(config: Any) -> ModelArgs:
    archs = list(getattr(config, "architectures", None) or [])
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        shown = archs[0] if archs else model_type
        raise UnsupportedModelError(
            f"unsupported model architecture {shown!r}; Hive's engine supports {supported_names()}"
        )
    act = getattr(config, "hidden_act", "silu")
    if act != "silu":
        raise UnsupportedModelError(f"unsupported activation {act!r}; only silu (SwiGLU) is")
    if getattr(config, "mlp_bias", False):
        raise UnsupportedModelError("MLP biases (mlp_bias=True) are not supported")
    rope = rope_parameters(config)
    rope_type = rope.get("rope_type", rope.get("type", "default")) or "default"
    if rope_type not in STATIC_ROPE_TYPES:
        raise UnsupportedModelError(
            f"unsupported rope type {rope_type!r}; supported: {', '.join(sorted(STATIC_ROPE_TYPES))}"
        )
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise UnsupportedModelError("partial rotary embeddings are not supported")
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    sliding = getattr(config, "sliding_window", None)
    if model_type == "qwen2" and not getattr(config, "use_sliding_window", False):
        sliding = None
    return ModelArgs(
        model_type=model_type,
        num_layers=config.num_hidden_layers,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_heads=config.num_attention_heads,
        num_kv_heads=getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
        head_dim=head_dim,
        vocab_size=config.vocab_size,
        rms_norm_eps=config.rms_norm_eps,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
        rope_type=rope_type,
        sliding_window=sliding,
    )


def rope_parameters(config: Any) -> dict[str, Any]:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    if params is None:
        return {"rope_type": "default", "rope_theta": getattr(config, "rope_theta", 10000.0)}
    return dict(params)


def rope_tables(
    config: Any, args: ModelArgs, max_positions: int, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables `(max_positions, head_dim)` in float32, as transformers computes them."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    if args.rope_type == "default":
        base = rope_parameters(config).get("rope_theta", 10000.0)
        exponents = torch.arange(0, args.head_dim, 2, dtype=torch.int64).float() / args.head_dim
        inv_freq = 1.0 / (base**exponents)
        scaling = 1.0
    else:
        inv_freq, scaling = ROPE_INIT_FUNCTIONS[args.rope_type](config, "cpu")
    positions = torch.arange(max_positions, dtype=torch.float32)
    freqs = positions[:, None] * inv_freq.float()[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return (emb.cos() * scaling).to(device), (emb.sin() * scaling).to(device)

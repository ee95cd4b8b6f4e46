"""Shared fixtures: tiny random Llama-family models and the default model (loaded once)."""

from __future__ import annotations

import pytest
import torch
from runtime_helpers import make_tiny

from hive.runtime import Engine


@pytest.fixture(scope="module")
def tiny_llama() -> torch.nn.Module:
    return make_tiny("llama")


@pytest.fixture
def tiny_engine(tiny_llama: torch.nn.Module) -> Engine:
    return Engine.from_hf(tiny_llama, kv_cache_tokens=4096)


@pytest.fixture(scope="session")
def smollm():
    """(hf_model, tokenizer, engine) for the default model, loaded once per session."""
    from hive.runtime.engine.model_loader import load_hf_model, resolve_model

    hf_model, tokenizer = load_hf_model(resolve_model(None))
    engine = Engine.from_hf(hf_model, tokenizer, kv_cache_tokens=16384)
    return hf_model, tokenizer, engine

"""Fixtures shared by every test directory."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smollm():
    """(hf_model, tokenizer, engine) for the default model, loaded once per session
    (reading the GGUF file takes most of 20 s; engines built from the loaded model are quick)."""
    from hive.runtime import Engine
    from hive.runtime.engine.model_loader import load_hf_model, resolve_model

    hf_model, tokenizer = load_hf_model(resolve_model(None))
    engine = Engine.from_hf(hf_model, tokenizer, kv_cache_tokens=16384)
    return hf_model, tokenizer, engine

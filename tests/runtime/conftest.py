"""Shared fixtures: tiny random Llama-family models (the default model: tests/conftest.py)."""

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

"""Attention backends in a registry; each is imported only when chosen."""

from __future__ import annotations

import importlib

from hive.runtime.engine.attention.base import BaseAttentionBackend
from hive.runtime.engine.errors import EngineError

ATTENTION_BACKENDS: dict[str, str] = {
    "torch": "hive.runtime.engine.attention.torch_backend:TorchAttentionBackend",
    "flashinfer": "hive.runtime.engine.attention.flashinfer_backend:FlashInferAttentionBackend",
}


def backend_class(name: str) -> type[BaseAttentionBackend]:
    target = ATTENTION_BACKENDS.get(name)
    if target is None:
        known = ", ".join(sorted(ATTENTION_BACKENDS))
        raise EngineError(f"unknown attention backend {name!r}; known: {known}")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


__all__ = ["ATTENTION_BACKENDS", "BaseAttentionBackend", "backend_class"]

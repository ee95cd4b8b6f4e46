"""Hive runtime: the inference engine (and, later, the plan executor)."""

from hive.runtime.engine import (
    Completion,
    Engine,
    EngineConfig,
    EngineError,
    GenerationRequest,
    SamplingParams,
)

__all__ = [
    "Completion",
    "Engine",
    "EngineConfig",
    "EngineError",
    "GenerationRequest",
    "SamplingParams",
]

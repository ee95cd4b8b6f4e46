"""Hive runtime: the inference engine (and, later, the plan executor)."""

from hive.runtime.engine import (
    AgentPrior,
    Completion,
    Engine,
    EngineConfig,
    EngineError,
    GenerationRequest,
    SamplingParams,
)

__all__ = [
    "AgentPrior",
    "Completion",
    "Engine",
    "EngineConfig",
    "EngineError",
    "GenerationRequest",
    "SamplingParams",
]

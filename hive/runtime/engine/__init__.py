"""Hive's LLM inference engine: paged KV, radix prefix cache, continuous batching."""

from hive.runtime.engine.agent_stats import AgentPrior
from hive.runtime.engine.config import EngineConfig
from hive.runtime.engine.engine import Engine
from hive.runtime.engine.errors import (
    BackendUnavailableError,
    EngineError,
    InvalidRequestError,
    KVCacheTooSmallError,
    KVPoolTooLargeError,
    ModelLoadError,
    UnsupportedModelError,
)
from hive.runtime.engine.request import Completion
from hive.runtime.engine.sampling_params import SamplingParams
from hive.runtime.engine.serving import GenerationRequest

__all__ = [
    "AgentPrior",
    "BackendUnavailableError",
    "Completion",
    "Engine",
    "EngineConfig",
    "EngineError",
    "GenerationRequest",
    "InvalidRequestError",
    "KVCacheTooSmallError",
    "KVPoolTooLargeError",
    "ModelLoadError",
    "SamplingParams",
    "UnsupportedModelError",
]

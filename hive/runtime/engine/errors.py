"""Errors the engine raises for user mistakes; all are `HiveError`s."""

from __future__ import annotations

from hive.errors import HiveError


class EngineError(HiveError):
    """Base class of every user-facing engine error."""


class ModelLoadError(EngineError):
    """The model name, path or file could not be resolved or read."""


class UnsupportedModelError(ModelLoadError):
    """The model's architecture is not one the engine's forward implements."""


class InvalidRequestError(EngineError):
    """A prompt or sampling parameter is invalid (empty prompt, bad top_p, ...)."""


class KVCacheTooSmallError(EngineError):
    """The KV pool cannot hold even one request of the asked size."""


class KVPoolTooLargeError(EngineError):
    """The asked KV pool does not fit in the device's available memory."""


class BackendUnavailableError(EngineError):
    """An attention backend was selected that cannot run here (e.g. flashinfer without CUDA)."""

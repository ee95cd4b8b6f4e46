"""Frozen engine configuration.

Values the engine discovers at run time (number of KV pages, eos ids, the
model's context length) live in runtime state, never written back here.
"""

from __future__ import annotations

from dataclasses import dataclass

from hive.runtime.engine.errors import EngineError

DEFAULT_MODEL = "smollm2-135m"


ADMISSIONS = ("shares", "residency", "fcfs")
FLOAT32_KERNELS = ("mkl", "onednn")  # the CPU's float32 GEMM (linear.py)


def check_admission(admission: object) -> None:
    """The one check of an admission mode, for EngineConfig and the Scheduler (replays
    build one without a config)."""
    if admission not in ADMISSIONS:
        names = ", ".join(f"'{a}'" for a in ADMISSIONS[:-1]) + f" or '{ADMISSIONS[-1]}'"
        raise EngineError(f"admission must be {names}, got {admission!r}")


@dataclass(frozen=True)
class EngineConfig:
    """How to build and run an engine.

    `kv_cache_tokens` and `kv_cache_bytes` size the KV pool; when both are
    None the pool holds `DEFAULT_KV_TOKENS` tokens, capped at 40% of the
    device's available memory. A pool larger than the available memory is a
    `KVPoolTooLargeError`.

    `packed_weights` lays the CPU's linear weights out for its fastest kernel
    (linear.py): bf16 weights are replaced by a oneDNN-packed copy; float32
    weights get a second, MKL-packed copy used for 4-16-row decode batches.
    None (the default) packs bf16 always and float32 when that second copy
    takes under a quarter of the available memory.

    `float32_kernel` is the CPU's float32 GEMM: "mkl" (MKL's sgemm, with the
    packed copy above) or "onednn" (a oneDNN-packed copy that replaces the
    plain one, for every batch size); None (the default) picks MKL on Intel
    CPUs and oneDNN on others, where MKL is slow (linear.py).
    """

    model: str | None = None
    device: str = "cpu"
    dtype: str | None = None  # None: float32 on cpu, bfloat16 on cuda
    attention: str = "torch"
    kv_cache_tokens: int | None = None
    kv_cache_bytes: int | None = None
    page_size: int = 1
    max_batch_tokens: int = 2048
    max_running_requests: int = 256
    max_context: int | None = None  # None: the model's max_position_embeddings
    eviction_policy: str = "lru"
    # "shares": per-agent shares of slots and tokens; "residency": shares, and with a policy
    # that reserves KV (workflow) a call waits rather than evict a more valuable agent's
    # prefix (kv_residency.py); "fcfs": arrival order.
    admission: str = "shares"
    packed_weights: bool | None = None
    float32_kernel: str | None = None  # None: by the CPU's vendor (linear.py)
    record_trace: bool = False  # keep (agent, prompt, output, arrival step) of every request
    logits_cache_mb: float = 256.0  # Logits Cache budget (requests opt in); 0 disables it
    # Logits Cache drafts: tokens of an earlier path a decode step verifies (drafts.py); 0: off
    draft_tokens: int = 4

    def __post_init__(self) -> None:
        for name in ("page_size", "max_batch_tokens", "max_running_requests", "draft_tokens"):
            _require_int(name, getattr(self, name))
        for name in ("kv_cache_tokens", "kv_cache_bytes", "max_context"):
            if getattr(self, name) is not None:
                _require_int(name, getattr(self, name))
        for name in ("device", "attention", "eviction_policy", "admission"):
            if not isinstance(getattr(self, name), str):
                raise EngineError(f"{name} must be a string, got {getattr(self, name)!r}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise EngineError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        check_admission(self.admission)
        if self.page_size < 1:
            raise EngineError(f"page_size must be >= 1, got {self.page_size}")
        if self.max_batch_tokens < 1:
            raise EngineError(f"max_batch_tokens must be >= 1, got {self.max_batch_tokens}")
        if self.draft_tokens < 0:
            raise EngineError(f"draft_tokens must be >= 0 (0: no drafts), got {self.draft_tokens}")
        if self.max_running_requests < 1:
            raise EngineError(f"max_running_requests must be >= 1, got {self.max_running_requests}")
        for name in ("kv_cache_tokens", "kv_cache_bytes", "max_context"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise EngineError(f"{name} must be >= 1, got {value}")
        if not isinstance(self.record_trace, bool):
            raise EngineError(f"record_trace must be true or false, got {self.record_trace!r}")
        if self.packed_weights is not None and not isinstance(self.packed_weights, bool):
            raise EngineError(
                f"packed_weights must be true, false or None, got {self.packed_weights!r}"
            )
        if (
            not isinstance(self.logits_cache_mb, int | float)
            or isinstance(self.logits_cache_mb, bool)
            or not self.logits_cache_mb >= 0
            or self.logits_cache_mb == float("inf")
        ):
            raise EngineError(
                f"logits_cache_mb must be a number >= 0 (0 disables it), got {self.logits_cache_mb!r}"
            )
        if self.float32_kernel not in (None, *FLOAT32_KERNELS):
            names = " or ".join(f"'{k}'" for k in FLOAT32_KERNELS)
            raise EngineError(
                f"float32_kernel must be {names} (or None: by the CPU), got {self.float32_kernel!r}"
            )
        if self.dtype not in (None, "float32", "bfloat16", "float16"):
            raise EngineError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")


DEFAULT_KV_TOKENS = 65536


def _require_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise EngineError(f"{name} must be an integer, got {value!r}")


def make_config(**options: object) -> EngineConfig:
    """An EngineConfig from keyword options; an unknown option is an EngineError."""
    try:
        return EngineConfig(**options)  # type: ignore[arg-type]
    except TypeError as exc:
        known = ", ".join(EngineConfig.__dataclass_fields__)
        raise EngineError(f"{exc}; engine options are: {known}") from None

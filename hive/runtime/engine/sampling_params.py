"""Sampling parameters of one request, validated at construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hive.runtime.engine.errors import InvalidRequestError

LOGITS_CACHE_MODES = (None, "exact", "hotspot")
MAX_N = 4096  # samples of one request (the flow language's `sample` has the same cap)


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens and when to stop.

    `temperature == 0` is greedy. `seed` fixes the request's generator; sample
    `i` of `n` uses `seed + i`. With `seed=None` each sample draws a random seed.

    `logits_cache` reuses next-token distributions of earlier paths of the same
    prompt and parameters (logits_cache.py): "exact" gives the same tokens as
    without it; "hotspot" is an approximate sampler that re-samples an earlier
    path only from one of its most uncertain positions (hotspot.py).
    """

    max_tokens: int = 64
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    seed: int | None = None
    n: int = 1
    logprobs: bool = False
    logits_cache: str | None = None  # None | "exact" | "hotspot"

    def __post_init__(self) -> None:
        stop = (self.stop,) if isinstance(self.stop, str) else _tuple(self.stop, "stop")
        _check(
            all(isinstance(x, str) and x for x in stop), "stop strings must be non-empty strings"
        )
        object.__setattr__(self, "stop", stop)
        stop_ids = _tuple(self.stop_token_ids, "stop_token_ids")
        _check(all(_is_int(x) and x >= 0 for x in stop_ids), "stop_token_ids must be token ids")
        object.__setattr__(self, "stop_token_ids", stop_ids)
        for name in ("max_tokens", "top_k", "n"):
            _check(
                _is_int(getattr(self, name)),
                f"{name} must be an integer, got {getattr(self, name)!r}",
            )
        for name in (
            "temperature",
            "top_p",
            "min_p",
            "repetition_penalty",
            "frequency_penalty",
            "presence_penalty",
        ):
            value = getattr(self, name)
            ok = (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            )
            _check(ok, f"{name} must be a finite number, got {value!r}")
        _check(self.max_tokens >= 1, f"max_tokens must be >= 1, got {self.max_tokens}")
        _check(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}")
        _check(self.top_k >= 0, f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        _check(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}")
        _check(0 <= self.min_p < 1, f"min_p must be in [0, 1), got {self.min_p}")
        _check(
            self.repetition_penalty > 0,
            f"repetition_penalty must be > 0, got {self.repetition_penalty}",
        )
        _check(1 <= self.n <= MAX_N, f"n must be between 1 and {MAX_N}, got {self.n}")
        _check(
            self.logits_cache in LOGITS_CACHE_MODES,
            f"logits_cache must be 'exact', 'hotspot' or None, got {self.logits_cache!r}",
        )
        _check(
            self.seed is None or (_is_int(self.seed) and 0 <= self.seed < 2**63),
            f"seed must be an integer in [0, 2**63) or None, got {self.seed!r}",
        )

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1

    @property
    def has_penalties(self) -> bool:
        return (
            self.repetition_penalty != 1.0
            or self.frequency_penalty != 0.0
            or self.presence_penalty != 0.0
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tuple(value: object, name: str) -> tuple:
    try:
        return tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidRequestError(f"{name} must be a list, got {value!r}") from None


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidRequestError(message)

"""Counters the engine keeps; `Engine.stats()` returns a snapshot."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class EngineStats:
    num_steps: int = 0
    num_prefill_tokens: int = 0
    num_decode_tokens: int = 0
    num_prefix_hit_tokens: int = 0
    num_evicted_pages: int = 0
    num_preemptions: int = 0
    num_reclaimed_slots: int = 0  # preemptions that gave an agent back its share of slots
    num_draft_tokens: int = 0  # Logits Cache drafts verified (drafts.py)
    num_accepted_draft_tokens: int = 0  # of those: tokens the sampler took
    num_finished: int = 0
    num_failed: int = 0
    forward_seconds: float = 0.0

    def snapshot(self) -> dict[str, float]:
        return dict(asdict(self))

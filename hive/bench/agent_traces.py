"""Synthetic multi-agent request traces for the cache replay (hive/runtime/engine/replay.py).

`coordinator_trace`: a coordinator with a long prompt called every round, then one
of six workers whose call rates are skewed (an exponential draw: worker 0 most
often), and every other round a one-off agent. Token ids are random but fixed
by the seed; prompts are distinct per agent, with a per-round suffix.
"""

from __future__ import annotations

import random

from hive.runtime.engine.replay import TraceRequest


def _prompt(rng: random.Random, n: int, vocab: int = 300) -> list[int]:
    return [rng.randrange(vocab) for _ in range(n)]


def coordinator_trace(
    rounds: int = 16,
    seed: int = 0,
    coordinator_tokens: int = 300,
    worker_tokens: int = 120,
    workers: int = 6,
    one_off_tokens: int = 150,
    output_tokens: int = 4,
) -> list[TraceRequest]:
    prompts = random.Random(1000 + seed)
    coord = _prompt(prompts, coordinator_tokens)
    worker_prompts = [_prompt(prompts, worker_tokens) for _ in range(workers)]
    rng = random.Random(seed)
    out = [5] * output_tokens
    trace: list[TraceRequest] = []
    wave = 0
    for r in range(rounds):
        trace.append(TraceRequest("coord", coord + [r + 1], out, wave=wave))
        wave += 1
        w = min(int(rng.expovariate(0.7)), workers - 1)
        trace.append(TraceRequest(f"w{w}", worker_prompts[w] + [r + 1], out, wave=wave))
        wave += 1
        if r % 2:
            trace.append(TraceRequest(f"once{r}", _prompt(prompts, one_off_tokens), out, wave=wave))
            wave += 1
    return trace

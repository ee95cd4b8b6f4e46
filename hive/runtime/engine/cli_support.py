"""The logic behind `hive generate` and `hive bench engine` (the CLI stays thin)."""

from __future__ import annotations

import json

from hive.runtime.engine.engine import Engine
from hive.runtime.engine.errors import EngineError
from hive.runtime.engine.sampling_params import SamplingParams


def generate_lines(
    prompt: str,
    *,
    model: str | None,
    n: int,
    temperature: float,
    seed: int | None,
    max_tokens: int,
    raw: bool,
    dtype: str | None = None,
    logits_cache: str = "off",
    draft_tokens: int = 4,
) -> list[str]:
    """Completions of `prompt` as printable lines (chat template unless `raw`)."""
    if logits_cache not in ("off", "exact", "hotspot"):
        raise EngineError(f"--logits-cache must be off, exact or hotspot, got {logits_cache!r}")
    mode = None if logits_cache == "off" else logits_cache
    params = SamplingParams(
        n=n, temperature=temperature, seed=seed, max_tokens=max_tokens, logits_cache=mode
    )
    engine = Engine.from_pretrained(
        model, kv_cache_tokens=8192, dtype=dtype, draft_tokens=draft_tokens
    )
    source = prompt if raw else [{"role": "user", "content": prompt}]
    completions = engine.generate(source, params)
    lines = []
    for c in completions:
        if n > 1:
            lines.append(
                f"--- sample {c.sample_index} ({c.finish_reason}, {len(c.token_ids)} tokens)"
            )
        lines.append(c.text if c.error is None else f"error: {c.error}")
    if mode is not None:
        stats = engine.stats()
        lines.append(
            f"--- logits cache ({mode}): {stats['logits_cache_hits']} positions from the cache, "
            f"{stats['logits_cache_misses']} computed, {stats['num_accepted_draft_tokens']} "
            f"of {stats['num_draft_tokens']} drafted tokens taken"
        )
    return lines


def bench_engine_text(
    *, model: str | None, quick: bool, as_json: bool, dtype: str = "auto", repeat: int = 1
) -> str:
    from hive.runtime.engine.bench import format_report, run_bench

    if dtype not in ("auto", "float32", "bfloat16"):
        raise EngineError(f"--dtype must be auto, float32 or bfloat16, got {dtype!r}")
    if repeat < 1:
        raise EngineError(f"--repeat must be >= 1, got {repeat}")
    results = run_bench(model=model, quick=quick, dtype=dtype, repeat=repeat)
    return json.dumps(results, indent=2) if as_json else format_report(results)

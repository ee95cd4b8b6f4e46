"""`hive bench resample`: the Logits Cache (off, exact, hotspot) on re-sampling workloads.

Three workloads on the default model, one engine build per (workload, mode),
all in one process:

1. `resample`: 8 arithmetic word problems (benchmarks/eval/arithmetic.jsonl;
   `problems` takes the first N of its 40, for accuracy that says more), each
   sampled sequentially, up to 8 times, until the extracted answer is right
   (temperature 0.7, top-p 0.95, at most 128 tokens). The problems run
   concurrently; each one's attempts follow each other. With `seeds` > 1 it
   runs again from other base seeds, and a `resample*` row pools the seeds
   (times, steps and tokens summed, accuracy averaged): which problems a run
   happens to solve sets how many attempts it makes, so one seed's ratio
   swings widely (hotspot mode: 1.38x-2.26x fewer steps over five seeds).
2. `parallel`: 16 parallel samples of one problem at the same parameters.
3. `sweep`: the 16 parallel samples at temperature 0.3, 0.7 and 1.0.

Per run: wall time and its ratio to cache off, forward tokens computed
(prefill + decode), positions served from the cache, bytes held, accuracy
(problems solved within the attempts, or the share of right samples), and
distinct paths. From the cache-off run's paths: the redundancy bound r, the
fraction of (path, position) pairs whose prefix some path had computed before
(1 - distinct prefixes / positions), and 1/(1-r), exact mode's ideal speedup
in forward positions.
"""

from __future__ import annotations

import gc
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hive.errors import HiveError
from hive.runtime.engine.bench import machine
from hive.runtime.engine.engine import Engine
from hive.runtime.engine.model_loader import load_hf_model, resolve_model
from hive.runtime.engine.sampling_params import SamplingParams

DATASET = Path(__file__).resolve().parents[2] / "benchmarks" / "eval" / "arithmetic.jsonl"
MODES = (None, "exact", "hotspot")
SYSTEM = (
    "You solve arithmetic word problems. Explain the steps in one or two short sentences, "
    "then end with 'Answer: <number>'."
)
PROBLEMS = 8
ATTEMPTS = 8
SAMPLES = 16
MAX_TOKENS = 128
TOP_P = 0.95
SWEEP = (0.3, 0.7, 1.0)
SEED = 1234
SEED_STRIDE = 10_000  # base seeds of `seeds` > 1: SEED + k * SEED_STRIDE (attempt seeds < 8,000)
KV_TOKENS = 16384  # every path of a workload fits: the comparison is about the logits cache


def messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def extract_answer(text: str) -> str | None:
    """The number after the last 'Answer:', else the last number in the text."""
    found = re.findall(r"Answer:\s*\$?(-?\d+)", text)
    if not found:
        found = re.findall(r"-?\d+", text)
    return found[-1] if found else None


def load_problems(n: int = PROBLEMS) -> list[dict[str, str]]:
    lines = DATASET.read_text().splitlines()
    if not 1 <= n <= len(lines):
        raise HiveError(f"--problems must be 1 to {len(lines)} (the problems in {DATASET.name})")
    return [json.loads(line) for line in lines[:n]]


@dataclass
class RunResult:
    workload: str
    mode: str
    temperature: float
    seconds: float
    forward_tokens: int
    cache_positions: int
    bytes_held: int
    accuracy: float
    paths: int
    distinct_paths: int
    positions: int  # generated positions over all paths
    redundancy: float  # r of this run's own paths
    seed: int = SEED  # the base seed (re-sampling: + 1000 * problem + attempt); -1: pooled
    steps: int = 0  # engine steps (forward passes)
    draft_tokens: int = 0  # drafted tokens verified (drafts.py), in forward_tokens
    accepted_draft_tokens: int = 0  # of those: taken
    extra: dict[str, Any] = field(default_factory=dict)


def redundancy(prompt_paths: list[tuple[tuple[int, ...], list[int]]]) -> tuple[float, int]:
    """(r, positions): the share of (path, position) pairs whose prefix was seen before."""
    seen: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
    positions = 0
    for prompt, path in prompt_paths:
        for depth in range(len(path)):
            seen.add((prompt, tuple(path[:depth])))
        positions += len(path)
    return (1 - len(seen) / positions if positions else 0.0), positions


def _engine(hf_model: Any, tokenizer: Any, dtype: str) -> Engine:
    gc.collect()  # the previous run's engine (its pool and packed weights) goes first
    return Engine.from_hf(hf_model, tokenizer, dtype=dtype, kv_cache_tokens=KV_TOKENS)


def run_resample(
    engine: Engine, mode: str | None, problems: list[dict[str, str]], seed: int = SEED
) -> RunResult:
    """Each problem re-sampled until right (or ATTEMPTS); all problems concurrently."""
    started = time.perf_counter()
    attempts = [0] * len(problems)
    solved = [False] * len(problems)
    owner: dict[int, int] = {}
    paths: list[tuple[tuple[int, ...], list[int]]] = []

    def submit(i: int) -> None:
        params = SamplingParams(
            temperature=0.7, top_p=TOP_P, max_tokens=MAX_TOKENS, seed=seed + 1000 * i + attempts[i],
            logits_cache=mode,
        )  # fmt: skip
        attempts[i] += 1
        (req,) = engine.add_request(messages(problems[i]["question"]), params)
        owner[req.rid] = i

    for i in range(len(problems)):
        submit(i)
    while engine.has_unfinished():
        for req in engine.step():
            i = owner.pop(req.rid)
            completion = engine.completion(req)
            paths.append((tuple(req.prompt_ids), completion.token_ids))
            if extract_answer(completion.text) == problems[i]["answer"]:
                solved[i] = True
            elif attempts[i] < ATTEMPTS:
                submit(i)
    seconds = time.perf_counter() - started
    accuracy = sum(solved) / len(problems)
    result = _result(engine, "resample", mode, 0.7, seconds, paths, accuracy, seed)
    result.extra["attempts"] = sum(attempts)
    return result


def run_parallel(
    engine: Engine, mode: str | None, problem: dict[str, str], temperature: float, name: str
) -> RunResult:
    params = SamplingParams(
        temperature=temperature, top_p=TOP_P, max_tokens=MAX_TOKENS, seed=SEED, n=SAMPLES,
        logits_cache=mode,
    )  # fmt: skip
    started = time.perf_counter()
    completions = engine.generate(messages(problem["question"]), params)
    seconds = time.perf_counter() - started
    right = [extract_answer(c.text) == problem["answer"] for c in completions]
    paths = [(tuple(c.prompt_token_ids), c.token_ids) for c in completions]
    return _result(engine, name, mode, temperature, seconds, paths, sum(right) / len(right))


def _result(
    engine: Engine,
    workload: str,
    mode: str | None,
    temperature: float,
    seconds: float,
    paths: list[tuple[tuple[int, ...], list[int]]],
    accuracy: float,
    seed: int = SEED,
) -> RunResult:
    stats = engine.stats()
    r, positions = redundancy(paths)
    return RunResult(
        workload=workload,
        mode=mode or "off",
        temperature=temperature,
        seconds=seconds,
        forward_tokens=int(stats["num_prefill_tokens"] + stats["num_decode_tokens"]),
        cache_positions=int(stats["logits_cache_hits"]),
        bytes_held=int(stats["logits_cache_bytes_held"]),
        accuracy=accuracy,
        paths=len(paths),
        distinct_paths=len({(p, tuple(t)) for p, t in paths}),
        positions=positions,
        redundancy=r,
        seed=seed,
        steps=int(stats["num_steps"]),
        draft_tokens=int(stats["num_draft_tokens"]),
        accepted_draft_tokens=int(stats["num_accepted_draft_tokens"]),
    )


def run_bench(
    model: str | None = None,
    dtype: str = "float32",
    quick: bool = False,
    repeat: int = 1,
    seeds: int = 1,
    problems: int = PROBLEMS,
) -> dict:
    """Every (workload, mode) `repeat` times on fresh engines; the median wall time is kept
    (the paths, and so every other figure, are the same in each repeat: fixed seeds).
    Re-sampling runs from `seeds` base seeds, pooled in a `resample*` row when > 1, on the
    first `problems` of the dataset (more problems: an accuracy figure that says more)."""
    problem_set = load_problems(2 if quick else problems)  # a bad count fails before the load
    hf_model, tokenizer = load_hf_model(resolve_model(model))
    runs: list[RunResult] = []
    engine = _engine(hf_model, tokenizer, dtype)
    engine.generate("warm up", SamplingParams(max_tokens=4, temperature=0))  # first-call costs
    plan: list[tuple[str, float, int]] = [
        ("resample", 0.7, SEED + k * SEED_STRIDE) for k in range(seeds)
    ]
    plan += [("parallel", 0.7, SEED)]
    plan += [("sweep", t, SEED) for t in (SWEEP if not quick else SWEEP[:1])]
    for workload, temperature, seed in plan:
        for mode in MODES:
            repeats = []
            for _ in range(repeat):
                del engine
                engine = _engine(hf_model, tokenizer, dtype)  # a cold prefix and logits cache
                if workload == "resample":
                    repeats.append(run_resample(engine, mode, problem_set, seed))
                else:
                    repeats.append(
                        run_parallel(engine, mode, problem_set[0], temperature, workload)
                    )
            repeats.sort(key=lambda r: r.seconds)
            runs.append(repeats[len(repeats) // 2])
            runs[-1].extra["repeats_s"] = [round(r.seconds, 2) for r in repeats]
            print(
                f"{workload} t={temperature} seed={seed} {mode or 'off'}: {runs[-1].seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    rows = [_row(r, runs) for r in runs]
    if seeds > 1:
        pooled = [
            pool_seeds([r for r in runs if r.workload == "resample" and r.mode == (m or "off")])
            for m in MODES
        ]
        after = seeds * len(MODES)  # the re-sampling rows come first
        rows[after:after] = [_row(r, pooled) for r in pooled]
    return {
        "machine": machine(),
        "repeat": repeat,
        "seeds": seeds,
        "problems": len(problem_set),
        "runs": rows,
    }


def pool_seeds(runs: list[RunResult]) -> RunResult:
    """One mode's re-sampling runs from several seeds as one row: times, tokens, steps and
    paths summed, accuracy averaged, r weighted by positions (each run had its own cache,
    so no prefix is shared across seeds)."""
    positions = sum(r.positions for r in runs)
    return RunResult(
        workload="resample*",
        mode=runs[0].mode,
        temperature=runs[0].temperature,
        seconds=sum(r.seconds for r in runs),
        forward_tokens=sum(r.forward_tokens for r in runs),
        cache_positions=sum(r.cache_positions for r in runs),
        bytes_held=max(r.bytes_held for r in runs),
        accuracy=sum(r.accuracy for r in runs) / len(runs),
        paths=sum(r.paths for r in runs),
        distinct_paths=sum(r.distinct_paths for r in runs),
        positions=positions,
        redundancy=sum(r.redundancy * r.positions for r in runs) / positions if positions else 0.0,
        seed=-1,
        steps=sum(r.steps for r in runs),
        draft_tokens=sum(r.draft_tokens for r in runs),
        accepted_draft_tokens=sum(r.accepted_draft_tokens for r in runs),
        extra={
            "attempts": sum(r.extra.get("attempts", 0) for r in runs),
            "seeds": [r.seed for r in runs],
        },
    )


def _baseline(run: RunResult, runs: list[RunResult]) -> RunResult:
    return next(
        r
        for r in runs
        if r.workload == run.workload
        and r.temperature == run.temperature
        and r.seed == run.seed
        and r.mode == "off"
    )


def _row(run: RunResult, runs: list[RunResult]) -> dict[str, Any]:
    base = _baseline(run, runs)
    row = {k: v for k, v in run.__dict__.items() if k != "extra"} | run.extra
    row["speedup"] = base.seconds / run.seconds if run.seconds else 0.0
    row["forward_ratio"] = base.forward_tokens / run.forward_tokens if run.forward_tokens else 0.0
    row["step_ratio"] = base.steps / run.steps if run.steps else 0.0
    # Positions whose distribution the model computed (the rest came from the cache), and
    # the speedup in those over cache off: the figure the bound 1/(1-r) limits.
    row["computed_positions"] = run.positions - run.cache_positions
    row["position_ratio"] = (
        base.positions / row["computed_positions"] if row["computed_positions"] else 0.0
    )
    # The bound from the cache-off run: exact mode can skip at most these positions.
    row["bound_r"] = base.redundancy
    row["bound_speedup"] = 1 / (1 - base.redundancy) if base.redundancy < 1 else float("inf")
    return row


def format_report(result: dict) -> str:
    lines = [result["machine"]]
    if "problems" in result:
        lines.append(f"re-sampling: {result['problems']} problems, up to {ATTEMPTS} attempts each")
    lines.append("")
    header = (
        f"{'workload':<9} {'seed':>5} {'temp':>4} {'mode':<8} {'wall s':>7} {'x off':>6} "
        f"{'fwd tok':>8} "
        f"{'x fwd':>6} {'cached':>7} {'x pos':>6} {'MB held':>8} {'acc':>5} {'paths':>9} "
        f"{'r(off)':>6} {'1/(1-r)':>7} {'steps':>6} {'x steps':>7} {'drafts':>11}"
    )
    lines.append(header)
    for row in result["runs"]:
        lines.append(
            f"{row['workload']:<9} {'all' if row['seed'] < 0 else row['seed']:>5} "
            f"{row['temperature']:>4.1f} {row['mode']:<8} "
            f"{row['seconds']:>7.2f} {row['speedup']:>6.2f} {row['forward_tokens']:>8} "
            f"{row['forward_ratio']:>6.2f} {row['cache_positions']:>7} {row['position_ratio']:>6.2f} "
            f"{row['bytes_held'] / 2**20:>8.2f} {row['accuracy']:>5.2f} "
            f"{row['distinct_paths']:>4}/{row['paths']:<4} {row['bound_r']:>6.3f} "
            f"{row['bound_speedup']:>7.2f} {row['steps']:>6} {row['step_ratio']:>7.2f} "
            f"{row['accepted_draft_tokens']:>5}/{row['draft_tokens']:<5}"
        )
    lines.append("")
    lines.append(
        "x off: wall-time speedup over cache off; x fwd: forward tokens saved (off / mode); "
        "cached: positions served from the Logits Cache; x pos: positions the model computed, "
        "off / mode (what 1/(1-r) bounds; x fwd also counts K/V recomputed for replayed "
        "tokens and prompts); acc: resample = problems solved "
        f"within {ATTEMPTS} attempts, parallel/sweep = share of right samples; r(off): "
        "share of (path, position) pairs of the cache-off run whose prefix was computed "
        "before; 1/(1-r): exact mode's ideal speedup in forward positions; steps: forward "
        "passes, x steps: off / mode; drafts: drafted tokens taken / verified (in fwd tok); "
        "resample*: the re-sampling seeds pooled (sums; accuracy averaged)."
    )
    return "\n".join(lines)

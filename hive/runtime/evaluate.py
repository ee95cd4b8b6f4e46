"""`hive eval`: a workflow's accuracy and cost over a dataset (JSON lines).

Each line holds the spec's inputs and the expected value of one output
(`--expect answer`: the line's "answer" is compared with the run's output
"answer", or with `--output NAME`). Answers compare as numbers when both
read as numbers, otherwise as trimmed, case-folded text. All rows run
concurrently through one engine, so strategies can be compared on equal
terms: accuracy, calls, tokens, prefix-cache hits and wall time.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from hive.compiler.plan import Plan
from hive.runtime.calls import EngineLike
from hive.runtime.cli_run import read_inputs_file
from hive.runtime.errors import InputError
from hive.runtime.run import EnginePool, Result, arun, check_inputs, load
from hive.runtime.values import to_text


def same_answer(got: Any, expected: Any) -> bool:
    a, b = to_text(got).strip(), to_text(expected).strip()
    try:
        return float(a.replace(",", "")) == float(b.replace(",", ""))
    except ValueError:
        return a.casefold() == b.casefold()


def split_row(plan: Plan, row: dict[str, Any], expect: str, where: str) -> tuple[dict, Any]:
    if expect not in row:
        raise InputError(f"{where}: no '{expect}' field (the expected value)")
    declared = plan.spec.input_specs()
    inputs = {k: v for k, v in row.items() if k in declared}
    check_inputs(plan, inputs)  # a bad row fails before any model work
    return inputs, row[expect]


async def evaluate(
    spec_or_plan: str | Path | Plan,
    dataset: Path,
    expect: str,
    *,
    output: str | None = None,
    engine: EngineLike | None = None,
    seed: int = 0,
    limit: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    plan = load(spec_or_plan)
    output = output or expect
    if plan.spec.outputs is not None and output not in plan.spec.outputs:
        raise InputError(
            f"{plan.spec.name} has no output '{output}' (it returns "
            f"{', '.join(plan.spec.outputs)}); choose one with --output"
        )
    rows = read_inputs_file(dataset)[:limit]
    cases = [split_row(plan, row, expect, f"{dataset}:{i + 1}") for i, row in enumerate(rows)]
    engines = EnginePool(engine, options.pop("model", None) or plan.spec.model)
    started = time.perf_counter()
    results: list[Result] = await asyncio.gather(
        *(arun(plan, inputs, seed=seed, engines=engines, **options) for inputs, _ in cases)
    )
    seconds = time.perf_counter() - started
    correct = [
        same_answer(r.outputs.get(output), expected)
        for r, (_, expected) in zip(results, cases, strict=True)
    ]
    total = {key: sum(r.metrics[key] for r in results) for key in (
        "calls", "prompt_tokens", "cached_prompt_tokens", "completion_tokens")}  # fmt: skip
    return {
        "spec": plan.spec.name,
        "dataset": str(dataset),
        "examples": len(cases),
        "correct": sum(correct),
        "accuracy": sum(correct) / len(cases) if cases else 0.0,
        **total,
        "calls_per_example": total["calls"] / len(cases) if cases else 0.0,
        "wall_seconds": seconds,
        "rows": [
            {"expected": expected, "got": r.outputs.get(output), "correct": ok}
            for r, (_, expected), ok in zip(results, cases, correct, strict=True)
        ],
    }


def format_report(report: dict[str, Any]) -> str:
    return (
        f"{report['spec']} on {report['dataset']}: accuracy {report['accuracy']:.1%} "
        f"({report['correct']}/{report['examples']})\n"
        f"cost: {report['calls']} calls ({report['calls_per_example']:.1f} per example), "
        f"{report['completion_tokens']} generated tokens, {report['prompt_tokens']} prompt tokens "
        f"({report['cached_prompt_tokens']} from the prefix cache), {report['wall_seconds']:.1f}s"
    )

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
import math
import time
from pathlib import Path
from typing import Any

from hive.compiler.plan import Plan
from hive.errors import HiveError
from hive.runtime.calls import EngineLike
from hive.runtime.cli_run import read_inputs_file
from hive.runtime.errors import InputError
from hive.runtime.run import (
    EnginePool,
    Result,
    arun,
    check_inputs,
    check_logits_cache_option,
    load,
)
from hive.runtime.values import to_text


def same_answer(got: Any, expected: Any) -> bool:
    """Numbers by value (thousands separators allowed), text trimmed and case-folded;
    a missing answer (null) is never right."""
    if got is None:
        return False
    a, b = to_text(got).strip(), to_text(expected).strip()
    try:
        x, y = float(a.replace(",", "")), float(b.replace(",", ""))
    except ValueError:
        return a.casefold() == b.casefold()
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)


def split_row(plan: Plan, row: dict[str, Any], expect: str, where: str) -> tuple[dict, Any]:
    if expect not in row:
        raise InputError(f"{where}: no '{expect}' field (the expected value)")
    declared = plan.spec.input_specs()
    inputs = {k: v for k, v in row.items() if k in declared}  # other fields: metadata
    try:
        check_inputs(plan, inputs)  # a bad row fails before any model work
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
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
    if limit is not None and limit < 1:
        raise InputError(f"limit must be at least 1, got {limit}")
    check_logits_cache_option(options.get("logits_cache", "plan"))  # before any model work
    rows = read_inputs_file(dataset)[:limit]
    cases = [split_row(plan, row, expect, f"{dataset}:{i + 1}") for i, row in enumerate(rows)]
    model = options.pop("model", None)
    engines = EnginePool(engine, model or plan.spec.model)
    started = time.perf_counter()
    results: list[Result | BaseException] = await asyncio.gather(
        *(arun(plan, inputs, seed=seed, engines=engines, model=model, **options)
          for inputs, _ in cases),
        return_exceptions=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, HiveError):
            raise r  # a bug, not a failed example
    done = [r for r in results if isinstance(r, Result)]
    if done and output not in done[0].outputs:
        raise InputError(
            f"{plan.spec.name} has no output '{output}' (it returns "
            f"{', '.join(done[0].outputs)}); choose one with --output"
        )
    report_rows = []
    for r, (_, expected) in zip(results, cases, strict=True):
        if isinstance(r, Result):
            got = r.outputs.get(output)
            report_rows.append(
                {"expected": expected, "got": got, "correct": same_answer(got, expected)}
            )
        else:
            report_rows.append(
                {"expected": expected, "got": None, "correct": False, "error": str(r)}
            )
    correct = sum(row["correct"] for row in report_rows)
    total = {key: sum(r.metrics[key] for r in done) for key in (
        "calls", "prompt_tokens", "cached_prompt_tokens", "completion_tokens")}  # fmt: skip
    return {
        "spec": plan.spec.name,
        "dataset": str(dataset),
        "examples": len(cases),
        "correct": correct,
        "errors": len(cases) - len(done),
        "accuracy": correct / len(cases) if cases else 0.0,
        **total,
        "calls_per_example": total["calls"] / len(cases) if cases else 0.0,
        "wall_seconds": seconds,
        "rows": report_rows,
    }


def format_report(report: dict[str, Any]) -> str:
    failed = [row["error"] for row in report["rows"] if "error" in row]
    errors = f"; {len(failed)} failed (first: {failed[0]})" if failed else ""
    return (
        f"{report['spec']} on {report['dataset']}: accuracy {report['accuracy']:.1%} "
        f"({report['correct']}/{report['examples']}{errors})\n"
        f"cost: {report['calls']} calls ({report['calls_per_example']:.1f} per example), "
        f"{report['completion_tokens']} generated tokens, {report['prompt_tokens']} prompt tokens "
        f"({report['cached_prompt_tokens']} from the prefix cache), {report['wall_seconds']:.1f}s"
    )

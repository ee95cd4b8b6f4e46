"""The logic of `hive run` and `hive eval` (hive/cli.py only parses options)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from hive.compiler import strict_json
from hive.compiler.plan import Plan
from hive.runtime.engine.config import make_config
from hive.runtime.errors import InputError
from hive.runtime.progress import show_progress
from hive.runtime.run import (
    EnginePool,
    Result,
    arun,
    check_inputs,
    check_logits_cache_option,
    load,
)
from hive.runtime.trace import Trace


def parse_input_pairs(plan: Plan, pairs: list[str]) -> dict[str, Any]:
    """`--input k=v` values, read as the declared type (strings as given, others as JSON)."""
    declared = plan.spec.input_specs()
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise InputError(f"--input {pair!r}: expected NAME=VALUE")
        decl = declared.get(name)
        if decl is None or decl.type == "string":
            values[name] = raw  # unknown names are reported by check_inputs
            continue
        try:
            values[name] = strict_json.loads(raw)
        except strict_json.JSONProblem as exc:
            if exc.kind != "syntax":  # not a malformed value but an unreadable one
                raise InputError(f"--input {name}: {exc.message}") from None
            if decl.type == "any":
                values[name] = raw
            else:
                raise InputError(
                    f"--input {name}: {raw!r} is not a {decl.type} (write it as JSON, e.g. "
                    + ('["a", "b"]' if decl.type.startswith("list") else "42 or true")
                    + ")"
                ) from None
    return values


def read_inputs_file(path: Path) -> list[dict[str, Any]]:
    """A JSON object (one run) or JSON lines (one run per line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read inputs: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if path.suffix.lower() == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                rows.append(_json_object(line, f"{path}:{number}", one_line=True))
        if not rows:
            raise InputError(f"{path}: no inputs (the file has no JSON lines)")
        return rows
    try:
        return [_json_object(text, str(path))]
    except InputError as exc:
        first = text.lstrip().split("\n", 1)[0]
        if _is_json_object(first) and first.strip() != text.strip():
            # One JSON object per line is JSON lines, read from a .jsonl file only.
            raise InputError(f"{exc}; for one run per line, name the file .jsonl") from None
        raise


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(strict_json.loads(text), dict)
    except strict_json.JSONProblem:
        return False


def _json_object(text: str, where: str, one_line: bool = False) -> dict[str, Any]:
    """`text` as a JSON object; `one_line`: a line of a JSON lines file (`where` names
    the line, the error only its column)."""
    try:
        value = strict_json.loads(text)
    except strict_json.JSONProblem as exc:
        at = exc.where if not one_line or exc.offset is None else f" at column {exc.col}"
        raise InputError(f"{where}: not JSON: {exc.message}{at}") from None
    if not isinstance(value, dict):
        raise InputError(f"{where}: inputs must be a JSON object of name: value")
    return value


async def run_many(
    plan: Plan,
    rows: list[dict[str, Any]],
    *,
    engines: EnginePool,
    seed: int,
    options: dict[str, Any],
    console: Console | None,
    traces: list[Trace],
) -> list[Result | Exception]:
    """Every input row (checked by the caller) through the same engines, concurrently."""
    started = time.perf_counter()
    progress = None
    if console is not None:
        progress = asyncio.ensure_future(
            show_progress(
                console,
                lambda: traces,
                lambda: _engine_stats(engines),
                lambda: time.perf_counter() - started,
            )
        )
    try:
        jobs = []
        for row in rows:
            trace = Trace()
            traces.append(trace)
            jobs.append(arun(plan, row, seed=seed, engines=engines, trace=trace, **options))
        return list(await asyncio.gather(*jobs, return_exceptions=len(rows) > 1))
    finally:
        if progress is not None:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)


def check_row(plan: Plan, row: dict[str, Any], index: int, num_rows: int) -> None:
    """check_inputs, naming the row (1-based, in file order) when there are several."""
    try:
        check_inputs(plan, row)
    except InputError as exc:
        if num_rows > 1:
            raise InputError(f"input {index + 1}: {exc}") from None
        raise


def _engine_stats(engines: EnginePool) -> dict[str, Any] | None:
    for engine in engines.engines.values():
        stats = getattr(engine, "stats", None)
        if stats is not None:
            return stats()
    return None


def format_outputs(result: Result) -> list[str]:
    lines = []
    for key, value in result.outputs.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if isinstance(text, str) and "\n" in text:
            lines.append(f"{key}:")
            lines += [f"  {line}" for line in text.splitlines()]
        else:
            lines.append(f"{key}: {text}")
    return lines


def format_metrics(result: Result) -> str:
    m = result.metrics
    return (
        f"{m['calls']} calls, {m['completion_tokens']} generated tokens, "
        f"{m['cached_prompt_tokens']}/{m['prompt_tokens']} prompt tokens from the prefix cache, "
        f"{m['wall_seconds']:.1f}s"
    )


def execute(
    spec: Path,
    *,
    pairs: list[str],
    inputs_file: Path | None,
    model: str | None,
    seed: int,
    as_json: bool,
    trace_path: Path | None,
    engine_options: dict[str, Any],
    run_options: dict[str, Any],
    out: Console,
    err: Console,
) -> int:
    """`hive run`; returns the exit status (0 ok, 1 failed, 130 interrupted)."""
    from hive.compiler.errors import SpecError
    from hive.errors import HiveError

    traces: list[Trace] = []
    status = 0
    try:
        plan = load(spec)
        rows = read_inputs_file(inputs_file) if inputs_file is not None else [{}]
        if pairs:
            extra = parse_input_pairs(plan, pairs)
            rows = [{**row, **extra} for row in rows]
        if "eviction_policy" in engine_options:  # a typo fails now, not after loading a model
            from hive.runtime.engine.eviction import make_eviction_policy

            make_eviction_policy(engine_options["eviction_policy"])
        check_logits_cache_option(run_options.get("logits_cache", "plan"))
        make_config(**engine_options)  # a bad engine option fails before the model loads
        engines = EnginePool(None, model or plan.spec.model, **engine_options)
        for i, row in enumerate(rows):
            check_row(plan, row, i, len(rows))  # bad inputs fail before the model loads
        engines(model or plan.spec.model)  # load the model once, before the progress line
        console = err if err.is_terminal and not as_json else None
        results = asyncio.run(
            run_many(
                plan,
                rows,
                engines=engines,
                seed=seed,
                options={"model": model, **run_options},
                console=console,
                traces=traces,
            )
        )
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        status = 130
        results = []
    except SpecError as exc:
        err.print(exc.format(), markup=False)
        return 1
    except HiveError as exc:
        err.print(f"error: {exc}", markup=False)
        status, results = 1, []
    finally:
        if trace_path is not None and traces:
            try:
                write_traces(trace_path, traces)
                err.print(f"wrote trace {trace_path}", markup=False)
            except HiveError as exc:
                err.print(f"error: {exc}", markup=False)
                status = 1
    for i, result in enumerate(results):
        where = f"input {i + 1}: " if len(results) > 1 else ""
        if isinstance(result, HiveError):
            err.print(f"error: {where}{result}", markup=False)
            status = 1
            continue
        if isinstance(result, BaseException):
            raise result
        if as_json:
            out.print(json.dumps(result.to_dict() if len(results) == 1 else {
                "input": i + 1, "outputs": result.outputs, "metrics": result.metrics
            }, default=str), markup=False)  # fmt: skip
        else:
            if len(results) > 1:
                out.print(f"# input {i + 1}", markup=False)
            for line in format_outputs(result):
                out.print(line, markup=False)
            err.print(format_metrics(result), markup=False)
    return status


def write_traces(path: Path, traces: list[Trace]) -> None:
    """One Chrome trace; with several inputs, one process (pid) per input."""
    events: list[dict[str, Any]] = []
    for pid, trace in enumerate(traces, 1):
        for event in trace.to_chrome()["traceEvents"]:
            event["pid"] = pid
            if event.get("name") == "process_name":
                event["args"] = {
                    "name": f"hive run (input {pid})" if len(traces) > 1 else "hive run"
                }
            events.append(event)
    try:
        path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}, default=str))
    except OSError as exc:
        from hive.runtime.errors import RunError

        raise RunError(f"cannot write trace {path}: {exc.strerror}") from None

"""The `hive` command line: validate, compile, schema, run, eval, generate, bench.

Commands are thin: they parse options, call the library and print. Every
`HiveError` becomes a clear message and exit status 1, never a traceback.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hive.errors import HiveError

app = typer.Typer(
    name="hive",
    help="Compile and run multi-agent LLM workflows and test-time scaling.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks that compare Hive with a named peer in one run.")
app.add_typer(bench_app, name="bench")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class DiagnosticFormat(StrEnum):
    text = "text"
    github = "github"


class Emit(StrEnum):
    plan = "plan"
    ir = "ir"
    dot = "dot"
    mermaid = "mermaid"


def _fail(error: HiveError) -> typer.Exit:
    from hive.compiler.errors import SpecError

    text = error.format() if isinstance(error, SpecError) else f"error: {error}"
    err.print(text, markup=False)
    return typer.Exit(1)


@app.command()
def validate(
    specs: Annotated[
        list[Path], typer.Argument(help="Spec files (YAML or JSON).", show_default=False)
    ],
    format: Annotated[
        DiagnosticFormat, typer.Option("--format", help="text, or github for CI annotations.")
    ] = DiagnosticFormat.text,
) -> None:
    """Check specs; exit 0 when all are valid, 1 otherwise."""
    from hive.compiler import compile_loaded, load_spec
    from hive.compiler.errors import SpecError

    failed = 0
    for path in specs:
        try:
            compiled = compile_loaded(load_spec(path))
        except SpecError as exc:
            failed += 1
            for d in exc.diagnostics:
                _print_diagnostic(d, format)
            continue
        for w in compiled.warnings:
            _print_diagnostic(w, format)
        if format is DiagnosticFormat.text:
            out.print(f"[green]ok[/green] {path}")
    if format is DiagnosticFormat.text and len(specs) > 1:
        out.print(f"{len(specs) - failed} valid, {failed} invalid")
    raise typer.Exit(1 if failed else 0)


def _print_diagnostic(d, format: DiagnosticFormat) -> None:
    if format is DiagnosticFormat.github:
        print(d.format_github())
    else:
        err.print(d.format(), markup=False)


@app.command("compile")
def compile_command(
    spec: Annotated[Path, typer.Argument(help="The spec file.", show_default=False)],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
    ] = None,
    emit: Annotated[
        Emit, typer.Option("--emit", help="plan (JSON), ir (text), dot or mermaid.")
    ] = Emit.plan,
) -> None:
    """Compile a spec into a plan (or show its IR or flow graph)."""
    from hive.compiler import compile_loaded, load_spec

    try:
        compiled = compile_loaded(load_spec(spec))
    except HiveError as exc:
        raise _fail(exc) from None
    for w in compiled.warnings:
        err.print(w.format(), markup=False)
    text = _render(compiled.plan, emit)
    if output is None:
        sys.stdout.write(text)
    else:
        _write(output, text)


def _write(output: Path, text: str) -> None:
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        err.print(f"error: cannot write {output}: {exc.strerror}", markup=False)
        raise typer.Exit(1) from None
    err.print(f"wrote {output}", markup=False)


def _render(plan, emit: Emit) -> str:
    from hive.compiler.graph import to_dot, to_mermaid
    from hive.compiler.report import format_ir_report

    if emit is Emit.plan:
        return plan.to_json() + "\n"
    if emit is Emit.ir:
        return format_ir_report(plan)
    if emit is Emit.dot:
        return to_dot(plan)
    return to_mermaid(plan)


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of the spec format (for editors and CI)."""
    from hive.compiler.schema import spec_schema_text

    text = spec_schema_text()
    if output is None:
        sys.stdout.write(text)
    else:
        _write(output, text)


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="The user message (or raw text with --raw).")],
    model: Annotated[str | None, typer.Option(help="smollm2-135m, a model dir or .gguf.")] = None,
    n: Annotated[int, typer.Option(help="Samples of the prompt.")] = 1,
    temperature: Annotated[float, typer.Option(help="0 is greedy.")] = 0.7,
    seed: Annotated[int | None, typer.Option(help="Seed; sample i uses seed + i.")] = None,
    max_tokens: Annotated[int, typer.Option(help="New tokens at most.")] = 128,
    raw: Annotated[bool, typer.Option(help="Skip the chat template.")] = False,
    dtype: Annotated[
        str | None,
        typer.Option(
            help="float32 (the CPU default; matches transformers), bfloat16 (fast on AMX CPUs), float16."
        ),
    ] = None,
    logits_cache: Annotated[
        str,
        typer.Option(
            help="off, exact (reuse next-token distributions across the samples; the same "
            "tokens as off) or hotspot (APPROXIMATE: each sample after the first re-samples "
            "an earlier one from an uncertain position and copies its confident tokens "
            "after it)."
        ),
    ] = "off",
    draft_tokens: Annotated[
        int,
        typer.Option(
            min=0,
            help="With the Logits Cache: tokens of an earlier sample that a decode step "
            "verifies (the same tokens, fewer steps; 0: off).",
        ),
    ] = 4,
) -> None:
    """Generate with Hive's engine for a quick look."""
    try:
        from hive.runtime.engine.cli_support import generate_lines

        lines = generate_lines(
            prompt,
            model=model,
            n=n,
            temperature=temperature,
            seed=seed,
            max_tokens=max_tokens,
            raw=raw,
            dtype=dtype,
            logits_cache=logits_cache,
            draft_tokens=draft_tokens,
        )
    except HiveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for line in lines:
        typer.echo(line)


@app.command("run")
def run_command(
    spec: Annotated[
        Path, typer.Argument(help="A spec (YAML/JSON) or a compiled plan.", show_default=False)
    ],
    input: Annotated[
        list[str] | None,
        typer.Option(
            "--input", "-i", help="An input as NAME=VALUE (repeatable); non-strings as JSON."
        ),
    ] = None,
    inputs: Annotated[
        Path | None,
        typer.Option(
            help="Inputs from a JSON file, or a .jsonl file: one run per line, all concurrent."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Replace the spec's model (smollm2-135m, a dir, a .gguf).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Run seed: every call's seed derives from it.")] = 0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print outputs, metrics and calls as JSON.")
    ] = False,
    trace: Annotated[
        Path | None, typer.Option(help="Write a Chrome/Perfetto trace (one track per agent).")
    ] = None,
    policy: Annotated[
        str,
        typer.Option(
            help="KV-cache eviction policy: workflow (the default: each agent's next call, "
            "the hot agents' weighted by their contribution), agent (contribution-weighted "
            "recency), lru or lfu."
        ),
    ] = "workflow",
    admission: Annotated[
        str,
        typer.Option(
            help="Batch admission: shares (each agent's slots and prefill tokens by its "
            "contribution, unused share lent), residency (shares, and with --policy workflow "
            "a call waits rather than evict a more valuable agent's cached prefix: less "
            "prefill, more steps) or fcfs (arrival order)."
        ),
    ] = "shares",
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="Cap every call's max_tokens (quick runs).")
    ] = None,
    early_stop: Annotated[
        bool, typer.Option(help="Stop a vote's remaining samples once its winner is certain.")
    ] = True,
    dtype: Annotated[str | None, typer.Option(help="float32 (CPU default) or bfloat16.")] = None,
    logits_cache: Annotated[
        str,
        typer.Option(
            help="plan (the Logits Cache where the compiler marked repeated calls, in the "
            "mode of each node: exact unless the agent asks for hotspot), exact, hotspot "
            "(APPROXIMATE: re-samples branch from an earlier path's uncertain positions and "
            "copy its confident tokens after the branch) "
            "or off."
        ),
    ] = "plan",
    logits_cache_mb: Annotated[
        float, typer.Option(help="The Logits Cache's memory budget in MiB (0 disables it).")
    ] = 256.0,
    draft_tokens: Annotated[
        int,
        typer.Option(
            min=0,
            help="Logits Cache drafts: tokens of an earlier path that a decode step verifies "
            "(the same tokens, fewer steps; 0: off).",
        ),
    ] = 4,
) -> None:
    """Run a workflow on Hive's engine and print its outputs."""
    from hive.runtime.cli_run import execute

    raise typer.Exit(
        execute(
            spec,
            pairs=input or [],
            inputs_file=inputs,
            model=model,
            seed=seed,
            as_json=json_output,
            trace_path=trace,
            engine_options={
                "eviction_policy": policy,
                "admission": admission,
                "logits_cache_mb": logits_cache_mb,
                "draft_tokens": draft_tokens,
                **({"dtype": dtype} if dtype else {}),
            },
            run_options={
                "max_tokens": max_tokens,
                "early_stop": early_stop,
                "logits_cache": logits_cache,
            },
            out=out,
            err=err,
        )
    )


@app.command("eval")
def eval_command(
    spec: Annotated[Path, typer.Argument(help="A spec or compiled plan.", show_default=False)],
    dataset: Annotated[Path, typer.Option(help="JSON lines: the inputs and the expected value.")],
    expect: Annotated[str, typer.Option(help="The dataset field that holds the expected value.")],
    output: Annotated[
        str | None, typer.Option(help="The output compared with it (default: same name).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Replace the spec's model.")] = None,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N examples.")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="Cap every call's max_tokens.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    logits_cache: Annotated[
        str,
        typer.Option(help="plan, exact, hotspot (APPROXIMATE) or off: as for `hive run`."),
    ] = "plan",
) -> None:
    """Accuracy and cost (calls, tokens, time) of a workflow over a dataset."""
    import asyncio
    import json

    from hive.runtime.evaluate import evaluate, format_report

    try:
        report = asyncio.run(
            evaluate(spec, dataset, expect, output=output, model=model, seed=seed, limit=limit,
                     max_tokens=max_tokens, logits_cache=logits_cache)
        )  # fmt: skip
    except HiveError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        raise typer.Exit(130) from None
    if json_output:
        out.print(json.dumps(report, default=str), markup=False)
    else:
        out.print(format_report(report), markup=False)
    if report["errors"]:
        raise typer.Exit(1)  # the report stands, but some examples failed to run


@bench_app.command("compile")
def bench_compile(
    agents: Annotated[int, typer.Option(min=1, help="Agents in the generated spec.")] = 1000,
    calls: Annotated[int, typer.Option(min=1, help="Calls the generated flow makes.")] = 5000,
    repeat: Annotated[int, typer.Option(min=1, help="Runs; the median is reported.")] = 5,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Time validating and compiling a generated spec (many agents, a long flow)."""
    import json

    from hive.bench.compile_scale import report, run

    result = run(agents, calls, repeat)
    typer.echo(json.dumps(result) if json_output else report(result))


@bench_app.command("engine")
def bench_engine(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    quick: Annotated[bool, typer.Option(help="Smaller workloads.")] = False,
    model: Annotated[str | None, typer.Option(help="Model to run both engines on.")] = None,
    dtype: Annotated[
        str,
        typer.Option(
            help="auto (bfloat16 where the CPU has native bf16, else float32), bfloat16 "
            "(transformers float32 runs too) or float32."
        ),
    ] = "auto",
    repeat: Annotated[
        int, typer.Option(help="Runs of Hive and of generate per workload; medians compared.")
    ] = 1,
) -> None:
    """Hive's engine against transformers generate / generate_batch on the same workloads."""
    try:
        from hive.runtime.engine.cli_support import bench_engine_text

        text = bench_engine_text(
            model=model, quick=quick, as_json=json_output, dtype=dtype, repeat=repeat
        )
    except HiveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(text)


@bench_app.command("agents")
def bench_agents(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    model: Annotated[str | None, typer.Option(help="Model to run on.")] = None,
    repeat: Annotated[
        int, typer.Option(min=1, help="Runs per workload and configuration; median times.")
    ] = 1,
    workload: Annotated[
        list[str] | None,
        typer.Option(help="Run only this workload (coordinator, pipeline, copies, burst)."),
    ] = None,
) -> None:
    """Agent-aware scheduling on multi-agent workloads: lru eviction with fcfs admission (the
    baseline) against lru, lfu, agent, workflow eviction with per-agent shares; belady offline."""
    import json

    try:
        from hive.bench.agents import format_report, run_bench

        results = run_bench(model, repeat=repeat, only=workload or None)
    except HiveError as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(results) if json_output else format_report(results))


@bench_app.command("resample")
def bench_resample(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    model: Annotated[str | None, typer.Option(help="Model to run on.")] = None,
    quick: Annotated[bool, typer.Option(help="2 problems, one temperature (a smoke run).")] = False,
    repeat: Annotated[
        int, typer.Option(min=1, help="Runs per workload and mode; the median time is kept.")
    ] = 1,
    seeds: Annotated[
        int,
        typer.Option(
            min=1,
            help="Base seeds of the re-sampling workload (other paths, other attempts); "
            "with more than one, a resample* row pools them.",
        ),
    ] = 1,
    problems: Annotated[
        int,
        typer.Option(
            min=1,
            help="Problems of the re-sampling workload (the first N of the 40 in "
            "benchmarks/eval/arithmetic.jsonl): more make its accuracy say more.",
        ),
    ] = 8,
) -> None:
    """The Logits Cache (off, exact, hotspot) on re-sampling, parallel samples, a temperature
    sweep: wall time, forward tokens, cached positions, accuracy, the redundancy bound."""
    import json

    try:
        from hive.bench.resample import format_report, run_bench

        results = run_bench(model, quick=quick, repeat=repeat, seeds=seeds, problems=problems)
    except HiveError as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(results) if json_output else format_report(results))


def main() -> None:
    from hive.runtime.engine.host_memory import keep_freed_memory

    keep_freed_memory()  # the application owns process-wide allocator tuning
    app()


if __name__ == "__main__":
    main()

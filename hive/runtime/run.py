"""`hive.run`: execute a spec or a compiled plan on the engine.

    result = hive.run("specs/self_consistency.yaml", {"question": "What is 6 * 7?"}, seed=1)
    result.outputs        # the flow's return record
    result.calls          # one CallRecord per agent call (text, fields, tokens, cache hits)
    result.metrics        # calls, tokens, wall time, engine counters

`arun` is the asyncio form (many inputs can share one engine concurrently:
`await asyncio.gather(*(arun(plan, x, engine=e) for x in inputs))`).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hive.compiler import compile_spec, load_plan, load_spec
from hive.compiler.plan import Plan
from hive.compiler.spec import _is_of_type
from hive.compiler.types import MAX_INT_BITS, MAX_VALUE_SIZE, value_size
from hive.runtime.calls import AgentCaller, EngineLike
from hive.runtime.engine.agent_stats import AgentPrior
from hive.runtime.errors import InputError, RunError
from hive.runtime.interpreter import Interpreter
from hive.runtime.trace import CallRecord, Trace
from hive.runtime.values import describe, plain

DEFAULT_SEED = 0


@dataclass
class Result:
    outputs: dict[str, Any]
    calls: list[CallRecord]
    trace: Trace = field(repr=False)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"outputs": self.outputs, "metrics": self.metrics, **self.trace.to_dict()}


def load(spec_or_plan: str | Path | Plan) -> Plan:
    """A Plan from a Plan, a plan JSON file, or a spec file (compiled here)."""
    if isinstance(spec_or_plan, Plan):
        return spec_or_plan
    path = Path(spec_or_plan)
    if path.suffix.lower() == ".json" and path.is_file():
        try:
            head = path.read_text(encoding="utf-8")[:4096]
        except (OSError, UnicodeDecodeError):
            head = ""  # load_spec reports the file's problem with its position
        if '"hive-plan"' in head:
            return load_plan(path)
    return compile_spec(load_spec(path))


def check_inputs(plan: Plan, inputs: dict[str, Any] | None) -> dict[str, Any]:
    """The inputs with defaults filled in; missing, extra or mistyped ones are errors."""
    inputs = dict(inputs or {})
    declared = plan.spec.input_specs()
    extra = sorted(set(inputs) - set(declared))
    if extra:
        raise InputError(
            f"unknown input(s) {', '.join(extra)}; {plan.spec.name} takes "
            f"{', '.join(declared) or 'no inputs'}"
        )
    checked = {}
    for name, decl in declared.items():
        if name not in inputs:
            if decl.default is None:
                raise InputError(f"missing input '{name}' ({decl.type}); pass --input {name}=...")
            checked[name] = decl.default
            continue
        value = inputs[name]
        if _depth(value) > MAX_INPUT_DEPTH:  # the checks below, and printing, recurse
            raise InputError(f"input '{name}' nests deeper than {MAX_INPUT_DEPTH} lists or records")
        if value_size(value) > MAX_VALUE_SIZE:
            raise InputError(
                f"input '{name}' holds over {MAX_VALUE_SIZE:,} characters or items (the limit)"
            )
        if not _finite(value):
            raise InputError(
                f"input '{name}' must hold finite numbers (integers below 2**{MAX_INT_BITS}), "
                f"got {describe(value)}"
            )
        if decl.type == "number" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not _is_of_type(value, decl.type):
            raise InputError(f"input '{name}' must be {decl.type}, got {value!r:.60}")
        if decl.max_items is not None and isinstance(value, list) and len(value) > decl.max_items:
            raise InputError(
                f"input '{name}' has {len(value)} items; the spec allows at most {decl.max_items}"
            )
        checked[name] = value
    return checked


MAX_INPUT_DEPTH = 100  # lists and records within each other


def _depth(value: Any) -> int:
    """How deep lists and records nest in `value` (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | dict):
            deepest = max(deepest, depth)
            if depth <= MAX_INPUT_DEPTH:
                stack.extend(
                    (v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)
                )
    return deepest


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int):
        return value.bit_length() <= MAX_INT_BITS
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


LOGITS_CACHE_OPTIONS = ("plan", "exact", "hotspot", "off")


def check_logits_cache_option(value: object) -> None:
    if value not in LOGITS_CACHE_OPTIONS:
        raise RunError(
            f"logits cache must be one of {', '.join(LOGITS_CACHE_OPTIONS)}, got {value!r}"
        )


def make_engine(model: str, **options: Any) -> EngineLike:
    """An engine for a plan's calls: with the workflow eviction policy unless told
    otherwise (the plan's priors are what it reads; the engine's own default, for
    requests without a plan, is LRU)."""
    from hive.runtime.engine.engine import Engine

    options.setdefault("eviction_policy", "workflow")
    return Engine.from_pretrained(model, **options)


class EnginePool:
    """The engines of a run, one per model, created on first use."""

    def __init__(self, engine: EngineLike | None, default_model: str, **options: Any) -> None:
        self.default_model = default_model
        self.options = options
        self.engines: dict[str, EngineLike] = {}
        if engine is not None:
            self.engines[default_model] = engine

    def __call__(self, model: str) -> EngineLike:
        if model not in self.engines:
            self.engines[model] = make_engine(model, **self.options)
        return self.engines[model]


async def arun(
    spec_or_plan: str | Path | Plan,
    inputs: dict[str, Any] | None = None,
    engine: EngineLike | None = None,
    *,
    seed: int = DEFAULT_SEED,
    model: str | None = None,
    early_stop: bool = True,
    max_tokens: int | None = None,
    trace: Trace | None = None,
    engines: EnginePool | None = None,
    logits_cache: str = "plan",
    **engine_options: Any,
) -> Result:
    """Run a workflow; `engine_options` go to `Engine.from_pretrained` when Hive makes one.

    `logits_cache`: "plan" uses the Logits Cache where the compiler marked a call (in
    the mode its node names); "exact" or "hotspot" use that mode for those calls; "off"
    never uses it.
    """
    check_logits_cache_option(logits_cache)
    plan = load(spec_or_plan)
    checked = check_inputs(plan, inputs)
    default_model = model or plan.spec.model
    if engines is None:
        engines = EnginePool(engine, default_model, **engine_options)
    trace = trace or Trace()
    priorities = {
        name: p.hint if p.hint is not None else round(10 * p.contribution)
        for name, p in plan.priorities.agents.items()
    }

    def engine_for(agent_model: str) -> EngineLike:
        # --model replaces the spec's default model (agents with their own keep it).
        return engines(default_model if agent_model == plan.spec.model else agent_model)

    caller = AgentCaller(
        plan.spec,
        engine_for,
        trace,
        seed=seed,
        priorities=priorities,
        priors={
            name: AgentPrior(
                p.contribution, p.expected_calls, plan.priorities.expected_calls, p.max_calls
            )
            for name, p in plan.priorities.agents.items()
        },
        max_tokens=max_tokens,
        prefix_groups=plan.call_group(),
        cache_modes={c.target: c.mode for c in plan.graph.cache_nodes},
        logits_cache=logits_cache,
    )
    started = time.perf_counter()
    value = await Interpreter(plan, caller, early_stop=early_stop).run(checked)
    seconds = time.perf_counter() - started
    outputs = plain(value) if isinstance(value, dict) else {"result": plain(value)}
    metrics = {**trace.summary(), "wall_seconds": seconds}
    return Result(outputs, trace.calls, trace, metrics)


def run(
    spec_or_plan: str | Path | Plan,
    inputs: dict[str, Any] | None = None,
    engine: EngineLike | None = None,
    **options: Any,
) -> Result:
    """Run a workflow to completion (see `arun`)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun(spec_or_plan, inputs, engine, **options))
    raise RunError("hive.run() was called inside an event loop; use `await hive.arun(...)`")

"""`hive bench agents`: KV-cache eviction policies on multi-agent workloads, on the model.

Three workloads, each a generated spec run by the executor on the default model
(replies capped at a few tokens: the point is the prefixes, not the answers):

- `coordinator`: a coordinator (1,200-token system prompt) every round and seven
  workers (300-1,500-token system prompts) at skewed rates (every round, every
  2nd, 3rd, 4th, and three once), ten rounds;
- `pipeline`: a writer and a verifier in a loop (at most 4 tries), then an editor;
- `copies`: six concurrent copies of the pipeline with different tasks.

The KV pool holds well under all the distinct prefixes: 3,000 tokens for the
coordinator workload's ~7,500, and 1,750 for the pipeline's ~2,100 (its three
agents never fit together, so one prefix must give way at every call). Per policy (lru, lfu, agent, workflow) the engine runs the
workload with its trace recorded; `belady` replays that trace offline (the replay
reproduces the engine's own counters, a test checks it). Printed per policy:
hotspot miss rate (hotspots: the top quarter of agents by prompt tokens), its
reduction against lru, prefix hit rate, recomputed prefill tokens, wall time, and
whether the outputs are the same for every policy (they must be: the engine's
determinism contract).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from hive.compiler import compile_loaded, load_spec_text
from hive.compiler.plan import Plan
from hive.runtime.engine.agent_stats import hotspot_agents, hotspot_miss_rate
from hive.runtime.engine.bench import system_prompt
from hive.runtime.engine.engine import Engine
from hive.runtime.engine.replay import replay
from hive.runtime.run import arun

POLICIES = ("lru", "lfu", "agent", "workflow")
MAX_TOKENS = 6


@dataclass(frozen=True)
class Workload:
    name: str
    plan: Plan
    inputs: list[dict[str, Any]]
    kv_cache_tokens: int
    prefix_tokens: int  # distinct system-prompt tokens of all agents


def _agent(system: str, prompt: str) -> str:
    indented = "\n".join("      " + line for line in system.splitlines() or [""])
    return (
        f"    system: |\n{indented}\n    prompt: {prompt!r}\n"
        f"    sampling: {{temperature: 0.7, max_tokens: {MAX_TOKENS}}}\n"
    )


def coordinator_spec(tokenizer: Any) -> tuple[str, int]:
    sizes = {"coordinator": 1200, **{f"w{i}": 300 + 200 * i for i in range(7)}}
    agents = ""
    for name, size in sizes.items():
        role = f"You are the {name} of a hardware design team. " + system_prompt(tokenizer, size)
        prompt = "Task: {{ task }} Notes: {{ notes }}" if name == "coordinator" else (
            "Task: {{ task }} Plan: {{ plan }}")  # fmt: skip
        agents += f"  {name}:\n" + _agent(role, prompt)
    schedule = {"w1": "r % 2 == 0", "w2": "r % 3 == 0", "w3": "r % 4 == 0",
                "w4": "r == 5", "w5": "r == 7", "w6": "r == 9"}  # fmt: skip
    body = "".join(
        f"    if {cond}:\n        out = {w}(task, plan=plan.text).text\n"
        for w, cond in schedule.items()
    )
    flow = (
        'notes = ""\nr = 0\nrepeat 10:\n    plan = coordinator(task, notes=notes)\n'
        "    out = w0(task, plan=plan.text).text\n" + body + "    notes = out\n    r = r + 1\n"
        "return {notes: notes, rounds: r}\n"
    )
    return _spec("bench-coordinator", agents, flow), sum(sizes.values())


def pipeline_spec(tokenizer: Any) -> tuple[str, int]:
    sizes = {"writer": 900, "verifier": 700, "editor": 400}
    prompts = {
        "writer": "Task: {{ task }} Previous draft: {{ feedback }}",
        "verifier": "Task: {{ task }} Draft: {{ draft }} Reply PASS or FAIL.",
        "editor": "Task: {{ task }} Draft: {{ draft }}",
    }
    agents = ""
    for name, size in sizes.items():
        role = f"You are the {name}. " + system_prompt(tokenizer, size)
        agents += f"  {name}:\n" + _agent(role, prompts[name])
        if name == "verifier":
            agents += "    extract: {verdict: '(PASS|FAIL)'}\n"
    flow = (
        'ok = false\ndraft = ""\ntries = 0\nwhile not ok max 4:\n'
        "    draft = writer(task, feedback=draft).text\n"
        "    v = verifier(task, draft=draft)\n"
        '    ok = v.verdict == "PASS"\n    tries = tries + 1\n'
        "final = editor(task, draft=draft)\nreturn {text: final.text, tries: tries}\n"
    )
    return _spec("bench-pipeline", agents, flow), sum(sizes.values())


def _spec(name: str, agents: str, flow: str) -> str:
    indented = "".join("  " + line + "\n" for line in flow.splitlines())
    return f"hive: 1\nname: {name}\ninputs:\n  task: string\nagents:\n{agents}flow: |\n{indented}"


def build_workloads(tokenizer: Any) -> list[Workload]:
    coord, coord_prefix = coordinator_spec(tokenizer)
    pipe, pipe_prefix = pipeline_spec(tokenizer)
    coord_plan = compile_loaded(load_spec_text(coord, "bench-coordinator.yaml")).plan
    pipe_plan = compile_loaded(load_spec_text(pipe, "bench-pipeline.yaml")).plan
    tasks = ["a UART", "an 8-bit counter", "a FIFO", "an SPI master", "a PWM block", "a timer"]
    # Pools: about 40% of the coordinator workload's distinct prefixes; for the pipeline,
    # room for the writer's prefix plus one more call (not for all three agents).
    return [
        Workload("coordinator", coord_plan, [{"task": "a UART"}], 3000, coord_prefix),
        Workload("pipeline", pipe_plan, [{"task": "a FIFO"}], 1750, pipe_prefix),
        Workload("copies", pipe_plan, [{"task": t} for t in tasks], 1750, pipe_prefix),
    ]  # fmt: skip


async def _run(engine: Engine, w: Workload) -> list[dict[str, Any]]:
    results = await asyncio.gather(
        *(arun(w.plan, inputs, engine=engine, seed=0, max_tokens=MAX_TOKENS) for inputs in w.inputs)
    )
    return [r.outputs for r in results]


def run_workload(hf: Any, tokenizer: Any, w: Workload) -> dict[str, Any]:
    row: dict[str, Any] = {"kv_cache_tokens": w.kv_cache_tokens, "prefix_tokens": w.prefix_tokens}
    outputs = {}
    trace = None
    for policy in POLICIES:
        engine = Engine.from_hf(
            hf, tokenizer, kv_cache_tokens=w.kv_cache_tokens, eviction_policy=policy,
            record_trace=True,
        )  # fmt: skip
        started = time.perf_counter()
        outputs[policy] = asyncio.run(_run(engine, w))
        seconds = time.perf_counter() - started
        agents = engine.agent_stats()
        hot = hotspot_agents(agents)
        prompt = sum(a.prompt_tokens for a in agents.values())
        row[policy] = {
            "hotspot_miss_rate": hotspot_miss_rate(agents, hot),
            "prefix_hit_rate": sum(a.hit_tokens for a in agents.values()) / prompt if prompt else 0,
            "recomputed_tokens": sum(a.recomputed_tokens for a in agents.values()),
            "seconds": seconds,
            "hotspots": hot,
            "calls": sum(a.calls for a in agents.values()),
        }
        if policy == "lru":
            trace = engine.recorded_trace()
    assert trace is not None
    offline = replay(trace, kv_cache_tokens=w.kv_cache_tokens, policy="belady")
    confirm = replay(trace, kv_cache_tokens=w.kv_cache_tokens, policy="lru")
    row["belady"] = {
        "hotspot_miss_rate": offline.hotspot_miss_rate,
        "prefix_hit_rate": offline.prefix_hit_rate,
        "recomputed_tokens": offline.recomputed_tokens,
        "seconds": None,
        "hotspots": offline.hotspots,
    }
    row["replay_matches_engine"] = confirm.recomputed_tokens == row["lru"]["recomputed_tokens"]
    lru = row["lru"]["hotspot_miss_rate"]
    for policy in (*POLICIES, "belady"):
        row[policy]["reduction_vs_lru"] = 1 - row[policy]["hotspot_miss_rate"] / lru if lru else 0.0
    row["outputs_identical"] = all(outputs[p] == outputs["lru"] for p in POLICIES)
    return row


def run_bench(model: str | None = None) -> dict[str, Any]:
    from hive.runtime.engine.bench import machine
    from hive.runtime.engine.model_loader import load_hf_model, resolve_model

    hf, tokenizer = load_hf_model(resolve_model(model))
    results: dict[str, Any] = {"machine": machine(), "workloads": {}}
    for w in build_workloads(tokenizer):
        results["workloads"][w.name] = run_workload(hf, tokenizer, w)
    return results


def format_report(results: dict[str, Any]) -> str:
    lines = [f"machine: {results['machine']}"]
    for name, row in results["workloads"].items():
        lines.append(
            f"{name}: pool {row['kv_cache_tokens']} tokens for {row['prefix_tokens']} prefix "
            f"tokens; outputs identical across policies: {row['outputs_identical']}; "
            f"replay matches engine: {row['replay_matches_engine']}"
        )
        lines.append(f"  {'policy':9} {'hotspot miss':>12} {'vs lru':>7} {'prefix hit':>10} "
                     f"{'recomputed':>10} {'wall s':>7}")  # fmt: skip
        for policy in (*POLICIES, "belady"):
            r = row[policy]
            wall = f"{r['seconds']:7.2f}" if r["seconds"] is not None else "  (off)"
            lines.append(
                f"  {policy:9} {r['hotspot_miss_rate']:12.3f} {-r['reduction_vs_lru']:+7.0%} "
                f"{r['prefix_hit_rate']:10.3f} {r['recomputed_tokens']:10d} {wall}"
            )
    return "\n".join(lines)
